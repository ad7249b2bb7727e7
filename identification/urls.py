"""Every page of the identification app, one namespace."""

from django.urls import path

from .views import catalogue, curation, models, ops, research, review

app_name = "identification"

urlpatterns = [
    path("individuals/", catalogue.individuals, name="individuals"),
    path("individuals/<str:catalogue_id>/", catalogue.individual_detail, name="individual_detail"),
    path("individuals/<str:catalogue_id>/track.geojson", catalogue.individual_track, name="individual_track"),
    path("sightings/map.geojson", catalogue.sightings_map, name="sightings_map"),
    path("individuals/<str:catalogue_id>/merge/", curation.merge, name="merge"),
    path("photos/<int:photo_id>/", catalogue.photo_detail, name="photo_detail"),
    path("photos/<int:photo_id>/split/", curation.split, name="split"),
    path("review/", review.review_queue, name="review_queue"),
    path("review/start/", review.review_start, name="review_start"),
    path("review/failed/", curation.failed_photos, name="failed_photos"),
    path("review/disputed/", review.disputed, name="disputed"),
    path("review/undo/", review.undo, name="undo"),
    path("review/<int:photo_id>/explain/<int:individual_id>.png", review.explain, name="explain"),
    path("review/<int:photo_id>/points/<int:individual_id>.png", review.matched_points, name="matched_points"),
    path("review/<int:photo_id>/box/", curation.correct_box, name="correct_box"),
    path("review/<int:photo_id>/species/", curation.correct_species, name="correct_species"),
    path("review/<int:photo_id>/", review.review_photo, name="review_photo"),
    path("review/<int:photo_id>/claim/", review.review_claim, name="review_claim"),
    path("review/<int:photo_id>/decide/", review.review_decide, name="review_decide"),
    path("review/<int:photo_id>/retry/", curation.retry, name="retry"),
    path("dashboard/", models.dashboard, name="dashboard"),
    path("dashboard/train/", models.start_training, name="start_training"),
    path("dashboard/runs/<int:run_id>/progress.json", models.run_progress, name="run_progress"),
    path("dashboard/runs/<int:run_id>/cancel/", models.cancel_run, name="cancel_run"),
    path("dashboard/runs/<int:run_id>/send/", models.resend_run, name="resend_run"),
    path("dashboard/models/<int:version_id>/promote/", models.promote, name="promote"),
    path("dashboard/models/rollback/", models.rollback, name="rollback"),
    path("dashboard/models/<int:version_id>/plot/<str:name>.png", models.model_plot, name="model_plot"),
    path("dashboard/models/", models.model_list, name="model_list"),
    path("dashboard/models/<int:version_id>/", models.model_detail, name="model_detail"),
    path("dashboard/models/<int:version_id>/evaluate/", models.evaluate_model, name="evaluate_model"),
    path("dashboard/models/localizer/retrain/", models.retrain_localizer, name="retrain_localizer"),
    path("dashboard/runs/<int:run_id>/", models.run_detail, name="run_detail"),
    path("dashboard/training-data/", ops.training_data, name="training_data"),
    path("dashboard/training-data/update/", ops.training_data_update, name="training_data_update"),
    path("dashboard/training-data/kaggle.zip", ops.export_kaggle, name="export_kaggle"),
    path("dashboard/training-data/coco.json", ops.export_coco, name="export_coco"),
    path("research/", research.research_exports, name="research_exports"),
    path("research/dwca.zip", research.export_dwca, name="export_dwca"),
    path("research/capture-history", research.export_capture, name="export_capture"),
    path("research/sightings.csv", research.export_sightings, name="export_sightings"),
    path("dashboard/health/", ops.health_page, name="health"),
    path("dashboard/health/retry/<int:photo_id>/", ops.health_retry, name="health_retry"),
    path("dashboard/health/retry-all/", ops.retry_all_failed, name="retry_all_failed"),
]

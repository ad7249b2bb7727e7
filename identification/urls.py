from django.urls import path

from . import views

app_name = "identification"

urlpatterns = [
    path("individuals/", views.individuals, name="individuals"),
    path("individuals/<str:catalogue_id>/", views.individual_detail, name="individual_detail"),
    path("individuals/<str:catalogue_id>/merge/", views.merge, name="merge"),
    path("photos/<int:photo_id>/", views.photo_detail, name="photo_detail"),
    path("photos/<int:photo_id>/split/", views.split, name="split"),
    path("review/", views.review_queue, name="review_queue"),
    path("review/start/", views.review_start, name="review_start"),
    path("review/failed/", views.failed_photos, name="failed_photos"),
    path("review/disputed/", views.disputed, name="disputed"),
    path("review/undo/", views.undo, name="undo"),
    path("review/<int:photo_id>/explain/<int:individual_id>.png", views.explain, name="explain"),
    path("review/<int:photo_id>/box/", views.correct_box, name="correct_box"),
    path("review/<int:photo_id>/", views.review_photo, name="review_photo"),
    path("review/<int:photo_id>/decide/", views.review_decide, name="review_decide"),
    path("review/<int:photo_id>/retry/", views.retry, name="retry"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/train/", views.start_training, name="start_training"),
    path("dashboard/runs/<int:run_id>/progress.json", views.run_progress, name="run_progress"),
    path("dashboard/runs/<int:run_id>/cancel/", views.cancel_run, name="cancel_run"),
    path("dashboard/models/<int:version_id>/promote/", views.promote, name="promote"),
    path("dashboard/models/rollback/", views.rollback, name="rollback"),
    path("dashboard/models/<int:version_id>/plot/<str:name>.png", views.model_plot, name="model_plot"),
]

from . import admin_urls  # noqa: E402  (registry, runs, training data, health: the admin pages)

urlpatterns += admin_urls.urlpatterns

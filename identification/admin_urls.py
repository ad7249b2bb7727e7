"""URLs of the administrator pages (joined to ``identification.urls``, same namespace)."""
from django.urls import path

from . import admin_views as v

urlpatterns = [
    path("dashboard/models/", v.model_list, name="model_list"),
    path("dashboard/models/<int:version_id>/", v.model_detail, name="model_detail"),
    path("dashboard/models/<int:version_id>/evaluate/", v.evaluate_model, name="evaluate_model"),
    path("dashboard/models/localizer/retrain/", v.retrain_localizer, name="retrain_localizer"),
    path("dashboard/runs/<int:run_id>/", v.run_detail, name="run_detail"),
    path("dashboard/training-data/", v.training_data, name="training_data"),
    path("dashboard/training-data/update/", v.training_data_update, name="training_data_update"),
    path("dashboard/training-data/kaggle.zip", v.export_kaggle, name="export_kaggle"),
    path("dashboard/training-data/coco.json", v.export_coco, name="export_coco"),
    path("dashboard/health/", v.health_page, name="health"),
    path("dashboard/health/retry/<int:photo_id>/", v.health_retry, name="health_retry"),
    path("dashboard/health/retry-all/", v.retry_all_failed, name="retry_all_failed"),
]

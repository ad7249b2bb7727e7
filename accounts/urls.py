from django.urls import path

from . import views

app_name = "accounts"

urlpatterns = [
    path("profile/", views.profile, name="profile"),
    path("profile/data/", views.download_data, name="download_data"),
    path("profile/delete/", views.delete_account, name="delete"),
]

from django.urls import path

from . import views

app_name = "submissions"

urlpatterns = [
    path("submit/", views.submit, name="submit"),
    path("submit/exif/", views.exif, name="exif"),
    path("me/sightings/", views.my_sightings, name="my_sightings"),
    path("me/sightings/status.json", views.my_sightings_status, name="my_sightings_status"),
    path("sightings/", views.sightings, name="sightings"),
]

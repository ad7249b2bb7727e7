from django.urls import path

from . import views
from .imports import views as imports

app_name = "submissions"

urlpatterns = [
    path("submit/", views.submit, name="submit"),
    path("submit/exif/", views.exif, name="exif"),
    path("submit/species/", views.species, name="species"),
    path("me/sightings/", views.my_sightings, name="my_sightings"),
    path("me/sightings/status.json", views.my_sightings_status, name="my_sightings_status"),
    path("sightings/", views.sightings, name="sightings"),
    path("sightings/map.geojson", views.sightings_map, name="sightings_map"),
    # bulk import (moderators): the prefix is whalesite.middleware.IMPORT_PATH, whose request cap is larger
    path("imports/", imports.import_list, name="imports"),
    path("imports/template.csv", imports.import_template, name="import_template"),
    path("imports/<int:pk>/", imports.import_detail, name="import_detail"),
    path("imports/<int:pk>/progress.json", imports.import_progress, name="import_progress"),
    path("imports/<int:pk>/start/", imports.import_start, name="import_start"),
    path("imports/<int:pk>/resume/", imports.import_resume, name="import_resume"),
]

"""The API under /api/: v1 endpoints (a browsable page each), the OpenAPI schema, Swagger UI, tokens."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from . import pages, views

app_name = "api"

router = DefaultRouter(use_regex_path=True)
router.include_format_suffixes = False
router.register("species", views.SpeciesViewSet, basename="species")
router.register("individuals", views.IndividualViewSet, basename="individual")
router.register("sightings", views.SightingViewSet, basename="sighting")
router.register("photos", views.PhotoViewSet, basename="photo")

urlpatterns = [
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    path("tokens/", pages.tokens, name="tokens"),
    path("tokens/<int:token_id>/revoke/", pages.revoke, name="revoke_token"),
]

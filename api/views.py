"""The REST API's endpoints: reads of the catalogue, sightings and photos; submitting a sighting; polling a
photo; a moderator's decision. Each write calls the site's own service (``submissions.services``,
``identification.review.decisions``), so the API and the pages follow one set of rules."""

from __future__ import annotations

from django.db.models import Count, Max, Min, Q
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, parsers, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from identification.filters import IndividualFilter, SpeciesFilter
from identification.models import Individual, Species
from identification.review import decisions
from submissions import services
from submissions.filters import PhotoFilter, SightingFilter
from submissions.models import Photo, Sighting

from . import serializers as s
from .permissions import IsModerator
from .throttling import TokenRateThrottle, UploadThrottle

ID = r"\d+"


class SpeciesViewSet(viewsets.ReadOnlyModelViewSet):
    """The species sightings may be filed under (``code`` is what a submission names)."""

    queryset = Species.objects.order_by("common_name", "pk")
    serializer_class = s.SpeciesSerializer
    filterset_class = SpeciesFilter
    lookup_value_regex = ID


class IndividualViewSet(viewsets.ReadOnlyModelViewSet):
    """The catalogue: whales not merged into another, with their gallery photo count and first/last sighting."""

    serializer_class = s.IndividualSerializer
    filterset_class = IndividualFilter
    lookup_field = "catalogue_id"
    lookup_value_regex = r"[^/]+"

    def get_queryset(self):
        gallery = Q(photos__status__in=Photo.GALLERY_STATUSES)
        return (
            Individual.objects.active()
            .select_related("species")
            .annotate(
                photo_count=Count("photos", filter=gallery),
                first_seen=Min("photos__sighting__observed_at", filter=gallery),
                last_seen=Max("photos__sighting__observed_at", filter=gallery),
            )
            .order_by("catalogue_id")
        )

    @extend_schema(responses=s.IndividualDetailSerializer)
    def retrieve(self, request, *args, **kwargs):
        individual = self.get_object()
        sightings = (
            Sighting.objects.filter(pk__in=Photo.objects.in_gallery().filter(individual=individual).values("sighting"))
            .select_related("species")
            .order_by("-observed_at", "-pk")
        )
        data = dict(self.get_serializer(individual).data)
        data["sightings"] = s.SightingSerializer(sightings, many=True, context=self.get_serializer_context()).data
        return Response(data)


@extend_schema_view(create=extend_schema(request=s.SubmitSightingSerializer, responses={201: s.SubmitResultSerializer}))
class SightingViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Sightings the caller may see: the public ones (a photo in the gallery), their own, or (moderators)
    all. Positions at the precision the caller may see (``coordinate_decimals``)."""

    serializer_class = s.SightingSerializer
    filterset_class = SightingFilter
    lookup_value_regex = ID
    parser_classes = [parsers.MultiPartParser, parsers.FormParser]

    def get_queryset(self):
        return Sighting.objects.visible_to(self.request.user).select_related("species").order_by("-observed_at", "-pk")

    def get_permissions(self):
        if self.action == "create":
            return [permissions.IsAuthenticated()]
        return super().get_permissions()

    def get_throttles(self):
        if self.action == "create":
            return [TokenRateThrottle(), UploadThrottle()]
        return super().get_throttles()

    def create(self, request, *args, **kwargs):
        form = s.SubmitSightingSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        fields = dict(form.validated_data)
        outcome = services.submit_sighting(user=request.user, files=fields.pop("photos"), **fields)
        body = s.submit_result(outcome, self.get_serializer_context())
        if outcome.sighting is None and not outcome.resumed:
            body["detail"] = "None of the photos could be added; see rejected and duplicates."
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return Response(body, status=status.HTTP_201_CREATED if outcome.accepted else status.HTTP_200_OK)


class PhotoViewSet(viewsets.ReadOnlyModelViewSet):
    """Photos the caller may see (the gallery's, their own, or all for moderators), with their status and,
    for the owner and moderators, the model's suggestions. Poll a photo's own URL until ``status`` leaves
    ``uploaded`` / ``processing``."""

    serializer_class = s.PhotoSerializer
    filterset_class = PhotoFilter
    lookup_value_regex = ID

    def get_queryset(self):
        return (
            Photo.objects.visible_to(self.request.user)
            .select_related("sighting", "individual")
            .order_by("-created_at", "-pk")
        )

    def get_object(self):
        """Another person's photo that is not public is refused by name (403), as on the photo page."""
        photo = get_object_or_404(Photo.objects.select_related("sighting", "individual"), pk=self.kwargs["pk"])
        if not Photo.objects.visible_to(self.request.user).filter(pk=photo.pk).exists():
            if not self.request.user.is_authenticated:
                raise exceptions.NotAuthenticated()
            raise exceptions.PermissionDenied("You can only see your own photos.")
        return photo

    @extend_schema(request=s.DecisionSerializer, responses=s.DecisionResultSerializer)
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[IsModerator],
        parser_classes=[parsers.JSONParser, parsers.FormParser, parsers.MultiPartParser],
    )
    def decision(self, request, pk=None):
        """Record a moderator's decision on a photo awaiting review (the review page's four buttons)."""
        photo = get_object_or_404(Photo, pk=pk)
        form = s.DecisionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        result = decide(photo, request.user, form.validated_data)
        photo.refresh_from_db()
        result["photo"] = s.PhotoSerializer(photo, context=self.get_serializer_context()).data
        return Response(result)


def decide(photo, moderator, data) -> dict:
    """Call the review service for ``data["action"]``; ``final`` is False for a vote awaiting consensus."""
    act = data["action"]
    if act == "confirm":
        decision = decisions.confirm_match(photo=photo, moderator=moderator, individual=data["individual"])
        return {"action": act, "final": not decision.pending, "individual": decision.individual.catalogue_id}
    if act == "new_individual":
        individual = decisions.name_new_individual(photo=photo, moderator=moderator, nickname=data["nickname"])
        return {"action": act, "final": individual is not None, "individual": getattr(individual, "catalogue_id", None)}
    if act == "reject":
        decision = decisions.reject_photo(photo=photo, moderator=moderator, reason=data["reason"])
        return {"action": act, "final": not decision.pending, "individual": None}
    decisions.skip_photo(photo=photo, moderator=moderator)
    return {"action": act, "final": True, "individual": None}

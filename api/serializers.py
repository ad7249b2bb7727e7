"""What the API shows and reads. Who may see what is decided by the querysets (``visible_to``) and by
``sees_private``: a sighting's exact position, notes and observer, and a photo's suggestions and failure
reason, are for its owner, moderators and administrators; others get the public precision."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from identification.models import Decision, Individual, Species, Suggestion
from identification.permissions import is_moderator
from submissions.filters import viewer_decimals
from submissions.forms import NOTES_MAX_CHARS, sighting_time_error
from submissions.models import Licence, Photo, Sighting


def _user(context):
    request = context.get("request")
    return getattr(request, "user", None)


def sees_private(user, sighting) -> bool:
    """The sighting's owner, moderators and administrators."""
    if user is None or not user.is_authenticated:
        return False
    return sighting.submitted_by_id == user.pk or is_moderator(user)


def shown_decimals(user, sighting) -> int | None:
    """Decimals of the position ``user`` may see (None: as recorded). Moderators get theirs from
    ``viewer_decimals`` except on their own sightings, as on the research exports."""
    if user is not None and user.is_authenticated and sighting.submitted_by_id == user.pk:
        return None
    return viewer_decimals(user)


def _rounded(value, decimals):
    if value is None or decimals is None:
        return value
    return round(float(value), decimals)


class SpeciesSerializer(serializers.ModelSerializer):
    class Meta:
        model = Species
        fields = ["id", "code", "common_name", "scientific_name", "scientific_name_id"]


class IndividualSerializer(serializers.ModelSerializer):
    species = serializers.SlugRelatedField(slug_field="code", read_only=True)
    photo_count = serializers.IntegerField(read_only=True)
    first_seen = serializers.DateTimeField(read_only=True, allow_null=True)
    last_seen = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = Individual
        fields = ["id", "catalogue_id", "nickname", "species", "photo_count", "first_seen", "last_seen"]


class SightingSerializer(serializers.ModelSerializer):
    """A sighting; ``photos`` lists the photos the viewer may see (the gallery's, or all for its owner)."""

    species = serializers.SlugRelatedField(slug_field="code", read_only=True)
    latitude = serializers.SerializerMethodField()
    longitude = serializers.SerializerMethodField()
    coordinate_decimals = serializers.SerializerMethodField(help_text="null: as recorded")
    observer_name = serializers.SerializerMethodField()
    notes = serializers.SerializerMethodField()
    photos = serializers.SerializerMethodField()

    class Meta:
        model = Sighting
        fields = [
            "id",
            "species",
            "observed_at",
            "place_name",
            "latitude",
            "longitude",
            "coordinate_decimals",
            "observer_name",
            "notes",
            "photos",
        ]

    def get_coordinate_decimals(self, sighting) -> int | None:
        return shown_decimals(_user(self.context), sighting)

    def get_latitude(self, sighting) -> float | None:
        return _rounded(sighting.latitude, self.get_coordinate_decimals(sighting))

    def get_longitude(self, sighting) -> float | None:
        return _rounded(sighting.longitude, self.get_coordinate_decimals(sighting))

    def get_observer_name(self, sighting) -> str | None:
        return sighting.observer_name if sees_private(_user(self.context), sighting) else None

    def get_notes(self, sighting) -> str | None:
        return sighting.notes if sees_private(_user(self.context), sighting) else None

    def get_photos(self, sighting) -> list[dict]:
        photos = Photo.objects.filter(sighting=sighting).select_related("individual").order_by("pk")
        if not sees_private(_user(self.context), sighting):
            photos = photos.in_gallery()
        return [
            {"id": p.pk, "status": p.status, "individual": p.individual.catalogue_id if p.individual_id else None}
            for p in photos
        ]


class SuggestionSerializer(serializers.ModelSerializer):
    individual = serializers.SlugRelatedField(
        slug_field="catalogue_id", read_only=True, allow_null=True, help_text='null: "new individual"'
    )
    nickname = serializers.SerializerMethodField()
    probability_words = serializers.CharField(read_only=True, allow_null=True)

    class Meta:
        model = Suggestion
        fields = ["rank", "individual", "nickname", "score", "probability", "probability_words", "inliers"]

    def get_nickname(self, suggestion) -> str | None:
        return suggestion.individual.nickname if suggestion.individual_id else None


class PhotoSerializer(serializers.ModelSerializer):
    individual = serializers.SlugRelatedField(slug_field="catalogue_id", read_only=True, allow_null=True)
    image_url = serializers.SerializerMethodField()
    failure_reason = serializers.SerializerMethodField()
    suggestions = serializers.SerializerMethodField(
        help_text="For the photo's owner, moderators and administrators; null for everyone else"
    )

    class Meta:
        model = Photo
        fields = [
            "id",
            "sighting",
            "status",
            "individual",
            "licence",
            "width",
            "height",
            "image_url",
            "reject_reason",
            "failure_reason",
            "created_at",
            "processed_at",
            "decided_at",
            "suggestions",
        ]

    def get_image_url(self, photo) -> str:
        request = self.context.get("request")
        url = photo.image.url
        return request.build_absolute_uri(url) if request is not None else url

    def get_failure_reason(self, photo) -> str | None:
        return photo.failure_reason if sees_private(_user(self.context), photo.sighting) else None

    def get_suggestions(self, photo) -> list[dict] | None:
        """The ranking of the version that ranked the photo (as the review page shows it)."""
        if not sees_private(_user(self.context), photo.sighting):
            return None
        rows = Suggestion.objects.filter(photo=photo).select_related("individual").order_by("rank")
        if photo.model_version_id:
            rows = rows.filter(model_version_id=photo.model_version_id)
        return SuggestionSerializer(rows, many=True).data


class SubmitSightingSerializer(serializers.Serializer):
    """A sighting with its photos (multipart/form-data), checked as the upload form checks it."""

    species = serializers.SlugRelatedField(slug_field="code", queryset=Species.objects.all(), help_text="e.g. HW")
    observed_at = serializers.DateTimeField(help_text="ISO 8601, e.g. 2026-07-14T09:30:00Z")
    latitude = serializers.FloatField(min_value=-90, max_value=90, required=False, allow_null=True)
    longitude = serializers.FloatField(min_value=-180, max_value=180, required=False, allow_null=True)
    place_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    observer_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    notes = serializers.CharField(max_length=NOTES_MAX_CHARS, required=False, allow_blank=True, default="")
    licence = serializers.ChoiceField(choices=Licence.choices, required=False, default="")
    photos = serializers.ListField(
        child=serializers.FileField(allow_empty_file=False), min_length=1, max_length=settings.MAX_PHOTOS_PER_SIGHTING
    )

    def validate_observed_at(self, when):
        if error := sighting_time_error(when):
            raise serializers.ValidationError(error)
        return when

    def validate(self, attrs):
        if (attrs.get("latitude") is None) != (attrs.get("longitude") is None):
            raise serializers.ValidationError({"longitude": "Give both latitude and longitude, or neither."})
        return attrs


class DecisionSerializer(serializers.Serializer):
    ACTIONS = ("confirm", "new_individual", "reject", "skip")

    action = serializers.ChoiceField(choices=ACTIONS)
    individual = serializers.SlugRelatedField(
        slug_field="catalogue_id",
        queryset=Individual.objects.all(),
        required=False,
        allow_null=True,
        help_text="The catalogue id the photo shows (action confirm)",
    )
    nickname = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    reason = serializers.ChoiceField(choices=Decision.RejectReason.choices, required=False, help_text="action reject")

    def validate(self, attrs):
        if attrs["action"] == "confirm" and not attrs.get("individual"):
            raise serializers.ValidationError({"individual": "Name the catalogue id the photo shows."})
        if attrs["action"] == "reject" and not attrs.get("reason"):
            raise serializers.ValidationError({"reason": "Choose a reason to reject the photo."})
        return attrs


class IndividualDetailSerializer(IndividualSerializer):
    """An individual with its sightings (those with a gallery photo of it), newest first."""

    sightings = SightingSerializer(many=True, read_only=True)

    class Meta(IndividualSerializer.Meta):
        fields = [*IndividualSerializer.Meta.fields, "sightings"]


class RejectedFileSerializer(serializers.Serializer):
    name = serializers.CharField()
    error = serializers.CharField()


class SubmitResultSerializer(serializers.Serializer):
    """What happened to each file: added (and queued), already held, sent before and still pending, refused."""

    detail = serializers.CharField(required=False, help_text="Present when nothing was added")
    sighting = SightingSerializer(allow_null=True)
    accepted = PhotoSerializer(many=True)
    resumed = PhotoSerializer(many=True)
    duplicates = serializers.ListField(child=serializers.CharField(), help_text="File names already held")
    rejected = RejectedFileSerializer(many=True)


def submit_result(outcome, context) -> dict:
    return {
        "sighting": SightingSerializer(outcome.sighting, context=context).data if outcome.sighting else None,
        "accepted": PhotoSerializer(outcome.accepted, many=True, context=context).data,
        "resumed": PhotoSerializer(outcome.resumed, many=True, context=context).data,
        "duplicates": [p.original_filename or f"photo {p.pk}" for p in outcome.duplicates],
        "rejected": [{"name": name, "error": error} for name, error in outcome.rejected],
    }


class DecisionResultSerializer(serializers.Serializer):
    action = serializers.CharField()
    final = serializers.BooleanField(help_text="False: a vote recorded, more moderators must agree")
    individual = serializers.CharField(allow_null=True)
    photo = PhotoSerializer()

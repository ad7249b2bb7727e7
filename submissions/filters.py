"""The filters of the sightings and photos lists, one definition for the HTML pages and the REST API
(django-filter ``FilterSet``\\ s: the page renders the form, the API reads the same query parameters).

A coordinate box is compared with each position *as the viewer sees it* (rounded to the decimals their
role gets for other people's sightings, ``viewer_decimals``): with exact comparisons, a few narrowing
queries would find a sighting's exact spot that the page itself only shows to 1 decimal.
"""

from __future__ import annotations

import django_filters
from django import forms
from django.conf import settings
from django.db.models import Q

from identification.maps import seen_coordinate
from identification.models import Individual, Species
from identification.permissions import is_model_admin, is_moderator

from .models import Photo, Sighting

COORDINATE_BOUNDS = {"latitude": 90, "longitude": 180}
MAX_ID = 2**63 - 1  # a bigint: larger ids match nothing instead of overflowing the query
DATE_INPUT = forms.DateInput(attrs={"type": "date"})


def viewer_decimals(user) -> int | None:
    """The decimals at which ``user`` sees other people's positions: administrators as recorded (None),
    moderators ``MODERATOR_COORDINATE_DECIMALS``, everyone else ``PUBLIC_COORDINATE_DECIMALS``."""
    if user is not None and is_model_admin(user):
        return None
    if user is not None and is_moderator(user):
        return int(settings.MODERATOR_COORDINATE_DECIMALS)
    return int(settings.PUBLIC_COORDINATE_DECIMALS)


BOX = {  # filter name: (field, lookup)
    "lat_min": ("latitude", "gte"),
    "lat_max": ("latitude", "lte"),
    "lon_min": ("longitude", "gte"),
    "lon_max": ("longitude", "lte"),
}


def _bound_filter(name: str, label: str):
    limit = COORDINATE_BOUNDS[BOX[name][0]]
    return django_filters.NumberFilter(
        field_name=name, method="filter_coordinate", label=label, min_value=-limit, max_value=limit
    )


class CoordinateBoxMixin(django_filters.FilterSet):
    """``lat_min`` / ``lat_max`` / ``lon_min`` / ``lon_max``, at the viewer's precision. ``prefix`` is the
    path from the filtered model to the sighting ("" for sightings, "sighting__" for photos)."""

    prefix = ""
    lat_min = _bound_filter("lat_min", "Latitude from")
    lat_max = _bound_filter("lat_max", "Latitude to")
    lon_min = _bound_filter("lon_min", "Longitude from")
    lon_max = _bound_filter("lon_max", "Longitude to")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in BOX:  # the box after the subclass's own filters (dates first, on the page's form)
            self.filters[name] = self.filters.pop(name)

    def filter_coordinate(self, queryset, name: str, value):
        field, lookup = BOX[name]
        path = f"{self.prefix}{field}"
        decimals = viewer_decimals(getattr(self.request, "user", None))
        if decimals is None:
            return queryset.filter(**{f"{path}__{lookup}": float(value)})
        seen = seen_coordinate(path, decimals)  # the map's cells group by the same expression
        alias = f"seen_{field}"
        return queryset.alias(**{alias: seen}).filter(**{f"{alias}__{lookup}": float(value)})


class SightingFilterForm(forms.Form):
    """The sightings filter's form: a date range that ends before it starts, or a catalogue id that names no
    whale, is reported on its field (the page shows it, the API and the map answer 400) instead of silently
    matching nothing."""

    def clean_individual(self):
        catalogue_id = (self.cleaned_data.get("individual") or "").strip()
        if catalogue_id and not Individual.objects.filter(catalogue_id__iexact=catalogue_id).exists():
            raise forms.ValidationError(f"No whale in the catalogue has the id “{catalogue_id}”.")
        return catalogue_id

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("observed_after"), cleaned.get("observed_before")
        if start and end and start > end:
            self.add_error("observed_before", "The end date is before the start date.")
        return cleaned


class SightingFilter(CoordinateBoxMixin):
    """Sightings (``/sightings/``, its map's ``/sightings/map.geojson`` and ``/api/v1/sightings/``)."""

    observed_after = django_filters.DateFilter(
        field_name="observed_at", lookup_expr="date__gte", label="From", widget=DATE_INPUT
    )
    observed_before = django_filters.DateFilter(
        field_name="observed_at", lookup_expr="date__lte", label="To", widget=DATE_INPUT
    )
    species = django_filters.ModelChoiceFilter(
        queryset=Species.objects.all(), to_field_name="code", label="Species", empty_label="Any species"
    )
    place = django_filters.CharFilter(field_name="place_name", lookup_expr="icontains", label="Place")
    individual = django_filters.CharFilter(method="filter_individual", label="Individual (catalogue id)")

    class Meta:
        model = Sighting
        form = SightingFilterForm
        fields: list[str] = []

    def filter_individual(self, queryset, name, value):
        """Sightings with a gallery photo of that whale or of one merged into it; a merged whale's id stands
        for the whale it joined (old links and notebooks keep working)."""
        whale = Individual.objects.select_related("merged_into").filter(catalogue_id__iexact=value).first()
        if whale is None:
            return queryset.none()
        whale = whale.merged_into or whale
        # the whale's pk and its merged ones' first: an OR across the join would scan every photo
        whales = Individual.objects.filter(Q(pk=whale.pk) | Q(merged_into=whale)).values("pk")
        photos = Photo.objects.in_gallery().filter(individual__in=whales)
        return queryset.filter(pk__in=photos.values("sighting_id"))


class PhotoFilter(CoordinateBoxMixin):
    prefix = "sighting__"
    status = django_filters.ChoiceFilter(choices=Photo.Status.choices)
    sighting = django_filters.NumberFilter(field_name="sighting_id", min_value=1, max_value=MAX_ID, label="Sighting id")
    individual = django_filters.CharFilter(field_name="individual__catalogue_id", lookup_expr="iexact")
    species = django_filters.ModelChoiceFilter(
        field_name="sighting__species", queryset=Species.objects.all(), to_field_name="code"
    )
    observed_after = django_filters.DateFilter(field_name="sighting__observed_at", lookup_expr="date__gte")
    observed_before = django_filters.DateFilter(field_name="sighting__observed_at", lookup_expr="date__lte")

    class Meta:
        model = Photo
        fields: list[str] = []

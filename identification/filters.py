"""The catalogue's filters, one definition for the individuals page and the REST API (django-filter)."""

import django_filters
from django.db.models import Q

from .models import Individual, Species


class IndividualFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(method="filter_q", label="Catalogue id or nickname")
    species = django_filters.ModelChoiceFilter(queryset=Species.objects.all(), to_field_name="code")

    class Meta:
        model = Individual
        fields: list[str] = []

    def filter_q(self, queryset, name, value):
        value = value.strip()
        return queryset.filter(Q(catalogue_id__icontains=value) | Q(nickname__icontains=value)) if value else queryset


class SpeciesFilter(django_filters.FilterSet):
    code = django_filters.CharFilter(lookup_expr="iexact")
    q = django_filters.CharFilter(method="filter_q", label="Common or scientific name")

    class Meta:
        model = Species
        fields: list[str] = []

    def filter_q(self, queryset, name, value):
        return queryset.filter(Q(common_name__icontains=value) | Q(scientific_name__icontains=value))

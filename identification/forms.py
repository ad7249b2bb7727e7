from django import forms

from .models import Decision, Individual, Species, TrainingExample
from .training import defaults


class ReviewFilterForm(forms.Form):
    species = forms.ModelChoiceField(queryset=Species.objects.all(), required=False, empty_label="All species")
    date_from = forms.DateField(required=False, label="Observed from", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="to", widget=forms.DateInput(attrs={"type": "date"}))
    place = forms.CharField(required=False, max_length=100, label="Place contains")
    lat_min = forms.FloatField(required=False, min_value=-90, max_value=90, label="Lat ≥")
    lat_max = forms.FloatField(required=False, min_value=-90, max_value=90, label="Lat ≤")
    lon_min = forms.FloatField(required=False, min_value=-180, max_value=180, label="Lon ≥")
    lon_max = forms.FloatField(required=False, min_value=-180, max_value=180, label="Lon ≤")
    score_min = forms.FloatField(required=False, label="Top-1 score ≥")
    score_max = forms.FloatField(required=False, label="Top-1 score ≤")
    order = forms.ChoiceField(
        required=False, choices=[("oldest", "Oldest first"), ("confident", "Most confident first")]
    )

    def active_count(self) -> int:
        """How many filters narrow the queue (the order only sorts it)."""
        if not self.is_bound or not self.is_valid():
            return 0
        return sum(1 for name, value in self.cleaned_data.items() if name != "order" and value not in (None, ""))

    def apply(self, queryset):
        """Filter a ``review.queue.review_queue`` QuerySet (annotated with ``top_score``) and order it."""
        if not self.is_valid():
            return queryset
        c = self.cleaned_data
        if c.get("species"):
            queryset = queryset.filter(species=c["species"])  # the photo's own: a sighting can hold two species
        queryset = queryset.observed_between(c.get("date_from"), c.get("date_to")).in_region(
            place=c.get("place", ""),
            lat_min=c.get("lat_min"),
            lat_max=c.get("lat_max"),
            lon_min=c.get("lon_min"),
            lon_max=c.get("lon_max"),
        )
        if c.get("score_min") is not None:
            queryset = queryset.filter(top_score__gte=c["score_min"])
        if c.get("score_max") is not None:
            queryset = queryset.filter(top_score__lte=c["score_max"])
        if c.get("order") == "confident":
            from django.db.models import F

            queryset = queryset.order_by(F("top_score").desc(nulls_last=True), "created_at", "pk")
        return queryset


class BoxForm(forms.Form):
    """A crop box in original-image pixels, drawn by a moderator."""

    x0 = forms.FloatField(min_value=0)
    y0 = forms.FloatField(min_value=0)
    x1 = forms.FloatField(min_value=0)
    y1 = forms.FloatField(min_value=0)

    def box(self):
        from ml.types import Box

        c = self.cleaned_data
        return Box(c["x0"], c["y0"], c["x1"], c["y1"])


class SpeciesForm(forms.Form):
    species = forms.ModelChoiceField(queryset=Species.objects.all(), label="Species")


class MergeForm(forms.Form):
    target = forms.CharField(max_length=20, label="Merge into (catalogue id)")


class NicknameForm(forms.Form):
    nickname = forms.CharField(max_length=100, required=False, label="Nickname")


class ConfirmForm(forms.Form):
    individual = forms.ModelChoiceField(queryset=Individual.objects.active(), to_field_name="pk")


class NewIndividualForm(forms.Form):
    nickname = forms.CharField(max_length=100, required=False)


class RejectForm(forms.Form):
    reason = forms.ChoiceField(choices=Decision.RejectReason.choices)


class TrainingForm(forms.Form):
    """The retrain form: one species' model at a time, among the species with a profile (the humpback by default)."""

    species = forms.ModelChoiceField(
        queryset=Species.objects.identifiable(),
        empty_label=None,
        required=False,  # not posted: the humpback (runs.start_training_run)
        label="Species",
        help_text="Trains this species' model on its own photos; scored on its own holdout.",
        error_messages={"invalid_choice": "Choose a species with a profile: only those have a model to train."},
    )
    epochs = forms.IntegerField(min_value=1, max_value=defaults.MAX_EPOCHS, initial=defaults.FORM_EPOCHS)
    arch = forms.ChoiceField(label="Architecture", choices=defaults.ARCH_CHOICES, initial=defaults.FORM_ARCH)
    image_size = forms.TypedChoiceField(
        label="Image size",
        coerce=int,
        initial=defaults.FORM_IMAGE_SIZE,
        choices=defaults.IMAGE_SIZE_CHOICES,
    )
    fine_tune = forms.BooleanField(
        required=False,
        initial=True,
        label="Fine-tune from the species' active model",
        help_text="Unchecked: train from the backbone's initial weights.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from .training.dataset import default_species

        humpback = default_species()
        if humpback is not None and humpback.profile:
            self.fields["species"].initial = humpback.pk


class TrainingDataFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *TrainingExample.Status.choices])
    individual = forms.CharField(required=False, max_length=20, label="Catalogue id")
    species = forms.ModelChoiceField(queryset=Species.objects.all(), required=False, empty_label="All species")
    date_from = forms.DateField(required=False, label="Observed from", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="to", widget=forms.DateInput(attrs={"type": "date"}))

    def apply(self, queryset):
        if not self.is_valid():
            return queryset
        c = self.cleaned_data
        if c.get("status"):
            queryset = queryset.filter(status=c["status"])
        if c.get("individual"):
            queryset = queryset.filter(individual__catalogue_id__iexact=c["individual"].strip())
        if c.get("species"):
            queryset = queryset.filter(individual__species=c["species"])
        if c.get("date_from"):
            queryset = queryset.filter(photo__sighting__observed_at__date__gte=c["date_from"])
        if c.get("date_to"):
            queryset = queryset.filter(photo__sighting__observed_at__date__lte=c["date_to"])
        return queryset

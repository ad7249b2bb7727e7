import datetime as dt

from django import forms
from django.conf import settings
from django.utils import timezone

from identification.models import Species

from .models import Licence, default_licence

ACCEPT_TYPES = "image/jpeg,image/png,image/webp,image/tiff,image/heic,image/heif"


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data, initial=None):
        files = data if isinstance(data, (list, tuple)) else ([data] if data else [])
        files = [f for f in files if f]
        if not files:
            raise forms.ValidationError("Add at least one photo of a fluke.", code="required")
        limit = settings.MAX_PHOTOS_PER_SIGHTING
        if len(files) > limit:
            raise forms.ValidationError(
                f"At most {limit} photos per sighting; you added {len(files)}.", code="too_many"
            )
        return files


NOTES_MAX_CHARS = 5000
FIRST_PHOTOGRAPH_DATE = dt.date(1826, 1, 1)  # Niépce's view from the window at Le Gras


def date_floor() -> dt.date:
    """The earliest sighting date accepted: settings.SIGHTING_DATE_FLOOR, never before photography."""
    return max(settings.SIGHTING_DATE_FLOOR, FIRST_PHOTOGRAPH_DATE)


def default_species(user=None):
    """The species a new sighting most likely is: the watcher's last one, else humpback (the species
    the catalogue identifies), else the only one. An empty species was the commonest upload error."""
    last = user.sightings.order_by("-created_at").values_list("species", flat=True).first() if user else None
    return (
        (Species.objects.filter(pk=last).first() if last else None)
        or Species.objects.filter(code=Species.HUMPBACK_CODE).first()
        or (Species.objects.first() if Species.objects.count() == 1 else None)
    )


class SightingForm(forms.Form):
    species = forms.ModelChoiceField(queryset=Species.objects.all(), empty_label="Choose a species…")
    observed_date = forms.DateField(label="Date", widget=forms.DateInput(attrs={"type": "date"}))
    observed_time = forms.TimeField(
        label="Time",
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text="Optional; local time of the sighting.",
    )
    latitude = forms.FloatField(
        required=False,
        min_value=-90,
        max_value=90,
        error_messages={
            "min_value": "This latitude is off the map: it must be between -90 (South Pole) and 90 (North Pole).",
            "max_value": "This latitude is off the map: it must be between -90 (South Pole) and 90 (North Pole).",
            "invalid": "Give the latitude as a number of degrees, e.g. 64.1466 (south is negative).",
        },
        widget=forms.NumberInput(attrs={"step": "any", "placeholder": "e.g. 64.1466", "inputmode": "decimal"}),
    )
    longitude = forms.FloatField(
        required=False,
        min_value=-180,
        max_value=180,
        error_messages={
            "min_value": "This longitude is off the map: it must be between -180 and 180 (west is negative).",
            "max_value": "This longitude is off the map: it must be between -180 and 180 (west is negative).",
            "invalid": "Give the longitude as a number of degrees, e.g. -21.9426 (west is negative).",
        },
        widget=forms.NumberInput(attrs={"step": "any", "placeholder": "e.g. -21.9426", "inputmode": "decimal"}),
    )
    place_name = forms.CharField(
        label="Place",
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "e.g. Skjálfandi Bay, Iceland"}),
    )
    observer_name = forms.CharField(
        label="Observer name", max_length=200, required=False, help_text="Who took the photos, if not you."
    )
    notes = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": NOTES_MAX_CHARS}),
        help_text=f"Up to {NOTES_MAX_CHARS} characters.",
    )
    licence = forms.ChoiceField(
        label="Photo licence",
        choices=Licence.choices,
        initial=default_licence,
        required=False,
        help_text="How researchers may reuse your photos; CC BY-NC photos stay out of open data sets.",
    )
    photos = MultipleFileField(
        label="Fluke photos",
        widget=MultipleFileInput(attrs={"accept": ACCEPT_TYPES}),
        help_text="1–20 photos of the underside of the tail (JPEG, PNG, WebP, TIFF or HEIC).",
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("species", default_species(user))

    def clean(self):
        cleaned = super().clean()
        lat, lon = cleaned.get("latitude"), cleaned.get("longitude")
        if (lat is None) != (lon is None) and "latitude" not in self.errors and "longitude" not in self.errors:
            self.add_error("longitude" if lon is None else "latitude", "Give both latitude and longitude, or neither.")
        day = cleaned.get("observed_date")
        if day and day < date_floor():
            self.add_error(
                "observed_date", f"The sighting date can't be before {date_floor():%d %B %Y}: please check the year."
            )
        elif day:
            when = timezone.make_aware(dt.datetime.combine(day, cleaned.get("observed_time") or dt.time(12, 0)))
            if when > timezone.now() + dt.timedelta(days=1):
                self.add_error("observed_date", "The sighting date can't be in the future.")
            cleaned["observed_at"] = when
        return cleaned

    def clean_notes(self) -> str:
        """Notes past the limit are cut, not refused: refusing would lose the photos sent with them (a file
        input cannot be refilled); the view tells the watcher (``notes_cut``)."""
        notes = self.cleaned_data.get("notes") or ""
        self.notes_cut = len(notes) > NOTES_MAX_CHARS
        return notes[:NOTES_MAX_CHARS]

    def service_kwargs(self) -> dict:
        c = self.cleaned_data
        return {
            "species": c["species"],
            "observed_at": c["observed_at"],
            "latitude": c.get("latitude"),
            "longitude": c.get("longitude"),
            "place_name": c.get("place_name", ""),
            "observer_name": c.get("observer_name", ""),
            "notes": c.get("notes", ""),
            "files": c["photos"],
            "licence": c.get("licence", ""),
        }


class ExifForm(forms.Form):
    photo = forms.FileField()

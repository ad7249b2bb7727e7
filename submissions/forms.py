import datetime as dt

from django import forms
from django.conf import settings
from django.utils import timezone

from identification.models import Species

from . import species_guess
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


def sighting_time_error(when: dt.datetime) -> str:
    """Why ``when`` cannot be a sighting's time ("" when it can): the upload form and the API share it."""
    if when.date() < date_floor():
        return f"The sighting date can't be before {date_floor():%d %B %Y}: please check the year."
    if when > timezone.now() + dt.timedelta(days=1):
        return "The sighting date can't be in the future."
    return ""


CONTROL_CHARACTERS = dict.fromkeys(c for c in range(32) if chr(c) not in "\t\n\r")


class PlainTextField(forms.CharField):
    """Text with invisible control characters (NUL and the like, never typed on purpose) taken out rather
    than refused: refusing would lose the photos sent with the form; the form notes it (``notices``)."""

    def to_python(self, value):
        value = super().to_python(value)
        cleaned = value.translate(CONTROL_CHARACTERS)
        self.stripped = cleaned != value
        return cleaned


def coordinate(name: str, limit: int, placeholder: str, negative: str) -> forms.FloatField:
    """A latitude or longitude in decimal degrees, with messages that say what is expected: a value that is
    not a number, or one off the map (the upload form's map says the same)."""
    expected = f"{name} must be a number in decimal degrees between -{limit} and {limit}, e.g. {placeholder}."
    off_map = f"This {name.lower()} is off the map: it must be between -{limit} and {limit} ({negative} is negative)."
    return forms.FloatField(
        required=False,
        min_value=-limit,
        max_value=limit,
        error_messages={"invalid": expected, "min_value": off_map, "max_value": off_map},
        widget=forms.NumberInput(attrs={"step": "any", "placeholder": f"e.g. {placeholder}", "inputmode": "decimal"}),
    )


class SightingForm(forms.Form):
    species = forms.ModelChoiceField(
        queryset=Species.objects.all(),
        empty_label="Choose a species…",
        error_messages={
            "required": "Choose the species you saw.",
            "invalid_choice": "That species is not in our list; choose one from the list.",
        },
    )
    observed_date = forms.DateField(
        label="Date",
        widget=forms.DateInput(attrs={"type": "date"}),
        error_messages={
            "required": "Give the date of the sighting.",
            "invalid": "Enter a valid date, as year-month-day (e.g. 2024-07-01).",
        },
    )
    observed_time = forms.TimeField(
        label="Time",
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        help_text="Optional; local time of the sighting.",
    )
    latitude = coordinate("Latitude", 90, "64.1466", "south")
    longitude = coordinate("Longitude", 180, "-21.9426", "west")
    place_name = PlainTextField(
        label="Place",
        max_length=200,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "e.g. Skjálfandi Bay, Iceland"}),
    )
    observer_name = PlainTextField(
        label="Observer name", max_length=200, required=False, help_text="Who took the photos, if not you."
    )
    notes = PlainTextField(
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
        label="Photos",
        widget=MultipleFileInput(attrs={"accept": ACCEPT_TYPES}),
        help_text="1–20 photos of a fluke's underside or a dorsal fin (JPEG, PNG, WebP, TIFF or HEIC); "
        "each photo's species can be set below it.",
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.notices: list[str] = []  # what cleaning changed, for the watcher (the view shows them)
        if not self.is_bound:
            self.initial.setdefault("species", default_species(user))

    def clean(self):
        cleaned = super().clean()
        lat, lon = cleaned.get("latitude"), cleaned.get("longitude")
        if (lat is None) != (lon is None) and "latitude" not in self.errors and "longitude" not in self.errors:
            self.add_error("longitude" if lon is None else "latitude", "Give both latitude and longitude, or neither.")
        for name in ("place_name", "observer_name", "notes"):
            if getattr(self.fields[name], "stripped", False) and name not in self.errors:
                label = self.fields[name].label or name.replace("_", " ").capitalize()
                self.notices.append(f"{label}: invisible control characters (such as NUL) were removed.")
        cleaned["species_choices"] = self._species_choices()
        day = cleaned.get("observed_date")
        if day:
            when = timezone.make_aware(dt.datetime.combine(day, cleaned.get("observed_time") or dt.time(12, 0)))
            if error := sighting_time_error(when):
                self.add_error("observed_date", error)
            else:
                cleaned["observed_at"] = when
        return cleaned

    def _species_choices(self) -> list:
        """Each photo's species select (``photo_species``, in the order of the files; the page's script adds
        one per photo): a ``Species``, ``SUGGESTED``, ``UNKNOWN`` or None (the sighting's). A value not in
        our list falls back to the sighting's species with a notice: refusing would lose the photos."""
        raw = self.data.getlist("photo_species") if hasattr(self.data, "getlist") else []
        by_pk = {str(s.pk): s for s in Species.objects.all()}
        choices = []
        for value in raw:
            if value in (species_guess.SUGGESTED, species_guess.UNKNOWN) or value in by_pk:
                choices.append(by_pk.get(value, value))
                continue
            if value and not any("species was not in our list" in n for n in self.notices):
                self.notices.append("A photo's species was not in our list; it was given the sighting's species.")
            choices.append(None)
        return choices

    def clean_notes(self) -> str:
        """Notes past the limit are cut, not refused: refusing would lose the photos sent with them (a file
        input cannot be refilled); the view tells the watcher (``notices``)."""
        notes = self.cleaned_data.get("notes") or ""
        if len(notes) > NOTES_MAX_CHARS:
            self.notices.append(
                f"Your notes were longer than {NOTES_MAX_CHARS} characters; the "
                f"first {NOTES_MAX_CHARS} were kept with the sighting."
            )
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
            "species_choices": c.get("species_choices", []),
        }


class ExifForm(forms.Form):
    """One photo, for the upload form's per-file reads (EXIF prefill, species suggestion)."""

    photo = forms.FileField()

"""The research exports page's options: the range and species every export shares, the occasion."""

from django import forms

from ..models import Species
from .capture_history import OCCASIONS
from .common import ExportOptions, coordinate_decimals


class ResearchExportForm(forms.Form):
    species = forms.ModelChoiceField(queryset=Species.objects.all(), required=False, empty_label="All species")
    start = forms.DateField(required=False, label="Observed from", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label="to", widget=forms.DateInput(attrs={"type": "date"}))
    occasion = forms.ChoiceField(
        choices=[(o, o.capitalize()) for o in OCCASIONS],
        required=False,
        initial="month",
        label="Capture occasion",
        help_text="Capture histories only, of one species; a season is RESEARCH_SEASON_MONTHS.",
    )
    format = forms.ChoiceField(
        choices=[("inp", "MARK .inp"), ("csv", "CSV")], required=False, initial="inp", label="Capture history format"
    )

    def options(self, user) -> ExportOptions:
        """The export options; coordinates at the precision ``user`` may see."""
        c = self.cleaned_data
        return ExportOptions(
            start=c.get("start"), end=c.get("end"), species=c.get("species"), decimals=coordinate_decimals(user)
        )

from django import forms

from .models import Decision, Individual, Species


class ReviewFilterForm(forms.Form):
    species = forms.ModelChoiceField(queryset=Species.objects.all(), required=False, empty_label="All species")
    date_from = forms.DateField(required=False, label="Observed from", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="to", widget=forms.DateInput(attrs={"type": "date"}))

    def apply(self, queryset):
        if not self.is_valid():
            return queryset
        c = self.cleaned_data
        if c.get("species"):
            queryset = queryset.filter(sighting__species=c["species"])
        if c.get("date_from"):
            queryset = queryset.filter(sighting__observed_at__date__gte=c["date_from"])
        if c.get("date_to"):
            queryset = queryset.filter(sighting__observed_at__date__lte=c["date_to"])
        return queryset


class ConfirmForm(forms.Form):
    individual = forms.ModelChoiceField(queryset=Individual.objects.active(), to_field_name="pk")


class NewIndividualForm(forms.Form):
    nickname = forms.CharField(max_length=100, required=False)


class RejectForm(forms.Form):
    reason = forms.ChoiceField(choices=Decision.RejectReason.choices)


class TrainingForm(forms.Form):
    epochs = forms.IntegerField(min_value=1, max_value=500, initial=20)
    arch = forms.ChoiceField(
        label="Architecture", choices=[("resnet18", "ResNet-18"), ("resnet34", "ResNet-34"), ("resnet50", "ResNet-50")],
        initial="resnet50",
    )
    image_size = forms.TypedChoiceField(
        label="Image size", coerce=int, initial=224,
        choices=[(128, "128 px"), (160, "160 px"), (224, "224 px"), (288, "288 px"), (384, "384 px"), (448, "448 px")],
    )
    fine_tune = forms.BooleanField(
        required=False, initial=True, label="Fine-tune from the active model",
        help_text="Unchecked: train from the backbone's initial weights.",
    )

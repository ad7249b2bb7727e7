from django import forms


class ImportForm(forms.Form):
    sheet = forms.FileField(
        label="Sheet (CSV or XLSX)", widget=forms.ClearableFileInput(attrs={"accept": ".csv,.xlsx"})
    )
    archive = forms.FileField(label="Photos (ZIP)", widget=forms.ClearableFileInput(attrs={"accept": ".zip"}))

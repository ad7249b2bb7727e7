"""The site's forms on top of allauth's: sign-up in the site's wording, the profile, and the
password-confirmed account deletion."""

from allauth.account.forms import LoginForm as AllauthLoginForm
from allauth.account.forms import SignupForm as AllauthSignupForm
from django import forms
from django.utils.translation import gettext

from .models import Profile

PASSWORDS_DIFFER = "The two passwords don't match."


class LoginForm(AllauthLoginForm):
    """allauth's sign-in by e-mail, its address field focused on arrival (the keyboard-only path)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["login"].label = "Email"
        self.fields["login"].widget.attrs["autofocus"] = True


class SignUpForm(AllauthSignupForm):
    """allauth's sign-up (e-mail, password twice; an address that has an account gets the same answer
    and its owner an e-mail), with the site's wording for two passwords that differ."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["email"].widget.attrs["autofocus"] = True

    def clean(self):
        cleaned = super().clean()
        errors = self._errors.get("password2") if self._errors else None
        if errors:
            allauth_words = gettext("You must type the same password each time.")
            self._errors["password2"] = self.error_class(
                [PASSWORDS_DIFFER if e == allauth_words else e for e in errors]
            )
        elif self.data.get("password1") != self.data.get("password2"):
            self.add_error("password2", PASSWORDS_DIFFER)  # allauth checks only once password1 is valid
        return cleaned


class ProfileForm(forms.ModelForm):
    class Meta:
        model = Profile
        fields = ["display_name", "credit_line"]


class DeleteAccountForm(forms.Form):
    """Deleting an account asks for its password and what becomes of the photos."""

    KEEP, REMOVE = "keep", "remove"
    photos = forms.ChoiceField(
        label="Your photos",
        choices=[
            (KEEP, "Keep them in the catalogue, credited to “former contributor”"),
            (REMOVE, "Remove them, and the sightings they belong to, from the catalogue"),
        ],
        initial=KEEP,
        widget=forms.RadioSelect,
    )
    password = forms.CharField(
        label="Your password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def clean_password(self):
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("That is not your password; nothing was deleted.")
        return password

"""Signing in (allauth's view, with failed sign-ins limited per account and per address), the profile,
the data download and deleting one's account."""

import json

from allauth.account.views import LoginView
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from . import personal_data, ratelimit
from .forms import DeleteAccountForm, ProfileForm
from .models import profile_of


class RateLimitedLoginView(LoginView):
    """After LOGIN_FAILURES_PER_ACCOUNT wrong passwords for one e-mail, or LOGIN_FAILURES_PER_ADDRESS from
    one address, within LOGIN_FAILURE_WINDOW_S, every sign-in is refused with 429 and ``Retry-After``
    (the right password too, so guessing gains nothing) until the window ends."""

    def post(self, request, *args, **kwargs):
        wait = max(
            ratelimit.blocked(self._account_key(), settings.LOGIN_FAILURES_PER_ACCOUNT),
            ratelimit.blocked(self._address_key(), settings.LOGIN_FAILURES_PER_ADDRESS),
        )
        if wait:
            return ratelimit.too_many("Too many failed sign-ins for this account or from this address.", wait)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        window = settings.LOGIN_FAILURE_WINDOW_S
        ratelimit.hit(self._account_key(), window)
        ratelimit.hit(self._address_key(), window)
        return super().form_invalid(form)

    def _account_key(self) -> str:
        return "login-account:" + (self.request.POST.get("login") or "").strip().lower()

    def _address_key(self) -> str:
        return "login-address:" + ratelimit.client_address(self.request)


@login_required
def profile(request):
    form = ProfileForm(request.POST or None, instance=profile_of(request.user))
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Your profile is saved.")
        return redirect("accounts:profile")
    return render(request, "accounts/profile.html", {"form": form})


@login_required
@require_POST
def download_data(request):
    """A JSON file of the account, its sightings, photos' metadata and decisions (POST: it is personal
    data, never fetched by a link a third party could plant)."""
    data = json.dumps(personal_data.export(request.user), indent=2, ensure_ascii=False)
    response = HttpResponse(data, content_type="application/json; charset=utf-8")
    name = f"whalesite-my-data-{timezone.now():%Y-%m-%d}.json"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@login_required
def delete_account(request):
    form = DeleteAccountForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        user = request.user
        logout(request)
        remove = form.cleaned_data["photos"] == form.REMOVE
        removed = personal_data.delete_account(user, remove_photos=remove)
        what = f"{removed} photo(s) removed" if remove else "your photos stay, credited to “former contributor”"
        messages.success(request, f"Your account is deleted; {what}.")
        return redirect("home")
    return render(request, "accounts/delete.html", {"form": form})

"""Signing up (a new account is a watcher, signed in at once) and signing in, with failed sign-ins
limited per account and per address (``ratelimit``)."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.views import LoginView
from django.shortcuts import redirect, render

from . import ratelimit
from .forms import EmailLoginForm, SignUpForm


class RateLimitedLoginView(LoginView):
    """After LOGIN_FAILURES_PER_ACCOUNT wrong passwords for one e-mail, or LOGIN_FAILURES_PER_ADDRESS from
    one address, within LOGIN_FAILURE_WINDOW_S, every sign-in is refused with 429 and ``Retry-After``
    (the right password too, so guessing gains nothing) until the window ends."""

    authentication_form = EmailLoginForm
    redirect_authenticated_user = True

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
        return "login-account:" + (self.request.POST.get("username") or "").strip().lower()

    def _address_key(self) -> str:
        return "login-address:" + ratelimit.client_address(self.request)


def signup(request):
    if request.user.is_authenticated:
        return redirect("home")
    form = SignUpForm(request.POST) if request.method == "POST" else SignUpForm()
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="accounts.backends.EmailBackend")
        messages.success(request, "Welcome aboard! You can now submit your fluke photos.")
        return redirect("submissions:submit")
    return render(request, "registration/signup.html", {"form": form})

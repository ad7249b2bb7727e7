"""allauth, the way this site has always had accounts: the e-mail address is the username, a new account
is a watcher, and the sign-in error wording is the site's own."""

from allauth.account.adapter import DefaultAccountAdapter
from django.contrib.auth.models import Group

from .roles import ROLE_GROUPS


class AccountAdapter(DefaultAccountAdapter):
    error_messages = {
        **DefaultAccountAdapter.error_messages,
        "email_password_mismatch": "That email and password don't match an account.",
        "account_inactive": "This account is inactive.",
    }

    def populate_username(self, request, user):
        user.username = (user.email or "").strip().lower()

    def save_user(self, request, user, form, commit=True):
        user._signed_up = True  # accounts.signals: this address must be verified by e-mail
        user = super().save_user(request, user, form, commit=commit)
        if commit:
            watchers = Group.objects.filter(name=ROLE_GROUPS["watcher"]).first()
            if watchers:
                user.groups.add(watchers)
        return user

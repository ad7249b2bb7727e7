"""Log in by email: usernames are email addresses, matched case-insensitively."""

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend


class EmailBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, email=None, **kwargs):
        login = (email or username or "").strip()
        if not login or password is None:
            return None
        User = get_user_model()
        user = (
            User._default_manager.filter(email__iexact=login).order_by("pk").first()
            or User._default_manager.filter(username__iexact=login).order_by("pk").first()
        )
        if user is None:
            User().set_password(password)  # same cost as a real check: no timing oracle
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None

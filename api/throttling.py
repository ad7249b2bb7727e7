"""Rate limits: per token (a signed-in browser session counts as one), per address without one, and the
site's upload limit (``UPLOADS_PER_HOUR``) per user on submissions. Rates are read from the settings on
each request, so an operator's change (and a test's ``settings`` override) applies at once."""

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from .models import ApiToken


class TokenRateThrottle(SimpleRateThrottle):
    scope = "api"

    def get_rate(self):
        return None  # set per request in allow_request: it depends on who is asking

    def allow_request(self, request, view):
        signed_in = request.user is not None and request.user.is_authenticated
        self.rate = settings.API_TOKEN_RATE if signed_in else settings.API_ANON_RATE
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        if isinstance(request.auth, ApiToken):
            ident = f"token:{request.auth.pk}"
        elif request.user is not None and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"anon:{self.get_ident(request)}"
        return f"throttle:{self.scope}:{ident}"


class UploadThrottle(SimpleRateThrottle):
    scope = "api-upload"

    def get_rate(self):
        return f"{settings.UPLOADS_PER_HOUR}/hour"

    def allow_request(self, request, view):
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        return f"throttle:{self.scope}:user:{request.user.pk}" if request.user.is_authenticated else None

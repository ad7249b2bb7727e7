"""DRF permission classes over the site's own rules (``identification.permissions``): one place says who
may review; these only translate it for the API (401 without a token, 403 with one that may not)."""

from rest_framework.permissions import BasePermission

from identification.permissions import is_moderator


class IsModerator(BasePermission):
    message = "Only moderators and administrators may do this."

    def has_permission(self, request, view):
        return bool(request.user and is_moderator(request.user))

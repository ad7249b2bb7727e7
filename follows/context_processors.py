"""The menu's unread-notifications count, on every page (one COUNT for a signed-in user, none otherwise)."""

from django.utils.functional import SimpleLazyObject

from .notices import unread_count


def notifications(request):
    user = getattr(request, "user", None)
    return {"unread_notifications": SimpleLazyObject(lambda: unread_count(user))}

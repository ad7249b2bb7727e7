"""Template filters for what the public pages show.

``public_coordinate``: a confirmed sighting's position to ``PUBLIC_COORDINATE_DECIMALS`` decimals (1 by
default, about 11 km), so a public page never gives a watcher's exact spot (4 decimals is about 11 m)."""

from django import template
from django.conf import settings

register = template.Library()


@register.filter
def public_coordinate(value):
    if value is None or value == "":
        return "—"
    decimals = int(settings.PUBLIC_COORDINATE_DECIMALS)
    return f"{round(float(value), decimals):.{decimals}f}"

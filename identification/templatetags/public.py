"""Template filters for what the public pages show.

``public_coordinate``: a sighting's position by the one public rule (``identification.maps.public_coordinate``:
``PUBLIC_COORDINATE_DECIMALS`` decimals, 1 by default, about 11 km), so a public page never gives a watcher's
exact spot (4 decimals is about 11 m)."""

from django import template
from django.conf import settings

from ..maps import public_coordinate as rounded

register = template.Library()


@register.filter
def public_coordinate(value):
    value = rounded(value)
    if value is None:
        return "—"
    return f"{value:.{int(settings.PUBLIC_COORDINATE_DECIMALS)}f}"

"""``{% map_attrs %}``: the data attributes every map container carries for ``static/js/maps.js``.

The base layer is the vendored Natural Earth outline (``static/vendor/world-atlas``), so maps work with no
internet; ``MAP_TILE_URL`` (a production setting: OpenStreetMap or self-hosted tiles) replaces it when set.
``data-cell-size`` is the side of the sightings map's cells (the public precision)."""

from django import template
from django.conf import settings
from django.templatetags.static import static
from django.utils.html import format_html

register = template.Library()


@register.simple_tag
def map_attrs():
    return format_html(
        'data-world-url="{}" data-tile-url="{}" data-tile-attribution="{}" data-cell-size="{}"',
        static("vendor/world-atlas/world-50m.geojson"),
        settings.MAP_TILE_URL,
        settings.MAP_TILE_ATTRIBUTION,
        cell_size(),
    )


def cell_size() -> str:
    """The side of the sightings map's cells in degrees (``identification.maps.sighting_cells``): the public
    precision, 0.1° at ``PUBLIC_COORDINATE_DECIMALS = 1``."""
    decimals = int(settings.PUBLIC_COORDINATE_DECIMALS)
    return f"{10**-decimals:.{max(decimals, 0)}f}"

"""``{% map_attrs %}``: the data attributes every map container carries for ``static/js/maps.js``.

The base layer is the vendored Natural Earth outline (``static/vendor/world-atlas``), so maps work with no
internet; ``MAP_TILE_URL`` (a production setting: OpenStreetMap or self-hosted tiles) replaces it when set."""

from django import template
from django.conf import settings
from django.templatetags.static import static
from django.utils.html import format_html

register = template.Library()


@register.simple_tag
def map_attrs():
    return format_html(
        'data-world-url="{}" data-tile-url="{}" data-tile-attribution="{}"',
        static("vendor/world-atlas/world-50m.geojson"),
        settings.MAP_TILE_URL,
        settings.MAP_TILE_ATTRIBUTION,
    )

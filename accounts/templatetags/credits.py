"""``photo_credit`` and ``licence_name`` / ``licence_url`` for the line shown beside every photo: who
took it and under which licence the photographer gave it."""

from django import template

from accounts.models import photo_credit as credit_of

register = template.Library()

LICENCES = {
    "CC0": ("CC0 1.0", "https://creativecommons.org/publicdomain/zero/1.0/"),
    "CC-BY": ("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/"),
    "CC-BY-NC": ("CC BY-NC 4.0", "https://creativecommons.org/licenses/by-nc/4.0/"),
}


@register.filter
def photo_credit(sighting) -> str:
    return credit_of(sighting)


@register.filter
def licence_name(code: str) -> str:
    return LICENCES.get(code, (code, ""))[0]


@register.filter
def licence_url(code: str) -> str:
    return LICENCES.get(code, ("", ""))[1]

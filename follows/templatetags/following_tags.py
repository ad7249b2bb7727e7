"""``{% follow_state individual as following %}``: whether the signed-in user follows a whale, so the
individual page's follow button needs nothing from its view."""

from django import template

from ..following import is_following

register = template.Library()


@register.simple_tag(takes_context=True)
def follow_state(context, individual) -> bool:
    request = context.get("request")
    return is_following(getattr(request, "user", None), individual)

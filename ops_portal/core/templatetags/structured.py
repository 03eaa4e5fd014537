"""{% structured value "json" %}, {% structured_inline value %}, {% structured_diff before after "yaml" %} and
{% text_diff unified_text %}: see core.structured."""
from django import template

from ops_portal.core import structured as rendering

register = template.Library()


@register.simple_tag
def structured(value, fmt="json"):
    return rendering.render(value, fmt)


@register.simple_tag
def structured_inline(value):
    return rendering.render_inline(value)


@register.simple_tag
def structured_diff(before, after, fmt="yaml"):
    return rendering.render_diff(before, after, fmt)


@register.simple_tag
def text_diff(text):
    return rendering.render_text_diff(text)

"""{% structured value "json" %}, {% structured_inline value %} and {% structured_diff before after "yaml" %}:
see core.structured."""
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

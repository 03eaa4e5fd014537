"""Form rendering for every form of the portal: help texts are text, never HTML.

Django's form templates print `{{ field.help_text|safe }}`, trusting help texts as markup written by
developers; the portal also builds fields from what users wrote (a template parameter's `help`), so
the bound field escapes its help text once, and the templates' `|safe` then has nothing to trust.
"""
from django import forms
from django.forms.boundfield import BoundField
from django.forms.renderers import DjangoTemplates
from django.utils.html import conditional_escape


class EscapedBoundField(BoundField):
    def __init__(self, form, field, name):
        super().__init__(form, field, name)
        self.help_text = conditional_escape(self.help_text)


class PortalFormRenderer(DjangoTemplates):
    bound_field_class = EscapedBoundField


class NamesField(forms.CharField):
    """A list of names typed comma-separated (template names, actions, risk tags)."""

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, (list, tuple)) else value

    def to_python(self, value):
        value = super().to_python(value)
        return [name.strip() for name in (value or "").split(",") if name.strip()]

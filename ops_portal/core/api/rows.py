"""Large list pages written from values() rows instead of model instances.

A 1,000-row page through a ModelSerializer builds three model instances per row (the row and the
relations it names) and runs DRF's per-field machinery (get_attribute, None checks,
to_representation) for every field of every row: 100–300 ms of Python at 1,000 rows. `Rows`
reads the serializer's fields once per request and compiles, for each, the values() path it
comes from and the function that writes it, so a page is one values() query and a loop of plain
function calls. The JSON is the serializer's: the same fields in the same order with the same
values (tests compare both on the same rows).

Fields that are not a column (a property, a SerializerMethodField) name the columns they need and
a function of the row in `computed`: {field name: ([paths], function(row))}. For a
SerializerMethodField the function returns the field's final value; for any other field it
returns the attribute, which the field then writes as usual. A field that is neither is refused
when the page is compiled (ImproperlyConfigured), never written wrongly.
"""
import datetime

from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db.models import ForeignObjectRel
from rest_framework import ISO_8601, serializers
from rest_framework.relations import ManyRelatedField, PrimaryKeyRelatedField, RelatedField, SlugRelatedField
from rest_framework.settings import api_settings


def _identity(value):
    return value


def _boolean(field):
    def write(value):
        return value if value is True or value is False else field.to_representation(value)
    return write


def _datetime(field):
    """DRF's DateTimeField.to_representation for aware datetimes (ISO 8601, 'Z' for UTC), with
    its time zone looked up once per page instead of once per value."""
    if getattr(field, "format", api_settings.DATETIME_FORMAT) != ISO_8601:
        return field.to_representation
    zone = field.timezone if hasattr(field, "timezone") else field.default_timezone()
    if zone is None:
        return field.to_representation

    def write(value):
        if type(value) is not datetime.datetime or value.tzinfo is None:
            return field.to_representation(value)
        text = value.astimezone(zone).isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    return write


def _writer(field):
    """How a field writes a non-null attribute: the field's own to_representation, or a plain
    function that gives the same answer."""
    if isinstance(field, serializers.SerializerMethodField):
        return _identity  # `computed` gave the final value
    if isinstance(field, PrimaryKeyRelatedField) and field.pk_field is None:
        return _identity  # values() gives the related row's key
    if isinstance(field, SlugRelatedField):
        return _identity  # getattr(related, slug_field)
    if isinstance(field, ManyRelatedField) and isinstance(field.child_relation, SlugRelatedField):
        return list  # `computed` gave the related rows' slugs
    if isinstance(field, serializers.CharField):
        return str
    if type(field) is serializers.IntegerField:
        return int
    if type(field) is serializers.FloatField:
        return float
    if isinstance(field, serializers.BooleanField):
        return _boolean(field)
    if type(field) is serializers.JSONField and not field.binary:
        return _identity
    if type(field) is serializers.ReadOnlyField:
        return _identity
    if type(field) is serializers.DateTimeField:
        return _datetime(field)
    return field.to_representation  # choices, lists, decimals…: exactly as the serializer does


def _path(model, field):
    """The values() path of a field whose source is a column of the model or of a row it points
    to; None when it is not one."""
    attrs = list(field.source_attrs)
    if isinstance(field, SlugRelatedField):
        attrs.append(field.slug_field)
    if not attrs:
        return None
    current = model
    for i, attr in enumerate(attrs):
        try:
            found = current._meta.get_field(attr)
        except FieldDoesNotExist:
            return None
        if isinstance(found, ForeignObjectRel) or found.many_to_many:
            return None  # a reverse or many-valued relation is not one value per row
        last = i == len(attrs) - 1
        if found.is_relation and not last:
            current = found.related_model
        elif not last:
            return None
    return "__".join(attrs)


class Rows:
    """The values() paths of a serializer's readable fields and a writer of their rows."""

    def __init__(self, serializer, computed=None):
        computed = computed or {}
        model = serializer.Meta.model
        self.fields = []  # (name, key in the row or None, getter for computed, writer)
        paths = []
        for name, field in serializer.fields.items():
            if field.write_only:
                continue
            if name in computed:
                needs, function = computed[name]
                paths.extend(needs)
                self.fields.append((name, None, function, _writer(field)))
                continue
            if isinstance(field, RelatedField) and not isinstance(field, PrimaryKeyRelatedField | SlugRelatedField):
                path = None
            else:
                path = _path(model, field)
            if path is None:
                raise ImproperlyConfigured(f"{type(serializer).__name__}.{name} is not a column: give it in computed.")
            paths.append(path)
            self.fields.append((name, path, None, _writer(field)))
        self.paths = list(dict.fromkeys(paths))

    def write(self, rows):
        """[{field: value}] in the serializer's field order from values() dicts."""
        fields = self.fields
        out = []
        for row in rows:
            item = {}
            for name, key, function, write in fields:
                value = row[key] if function is None else function(row)
                item[name] = None if value is None else write(value)
            out.append(item)
        return out

import django_filters
from django.db import connection

from ops_portal.core.api.filters import PortalFilterSet

from .choices import Reachability, Transport
from .models import Credential, Host, HostGroup, Site


class SiteFilterSet(PortalFilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Site
        fields = ["name"]


class CredentialFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="environment__name")
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Credential
        fields = ["environment", "name"]


class HostGroupFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="environment__name")
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = HostGroup
        fields = ["environment", "name"]


class HostFilterSet(PortalFilterSet):
    environment = django_filters.CharFilter(field_name="environment__name")
    name = django_filters.CharFilter(lookup_expr="icontains")
    group = django_filters.CharFilter(field_name="groups__name")
    site = django_filters.CharFilter(method="filter_site", help_text="A site's name, or - for hosts on no site.")
    tag = django_filters.CharFilter(method="filter_tag")
    transport = django_filters.ChoiceFilter(choices=Transport.choices)
    reachability = django_filters.ChoiceFilter(choices=Reachability.choices)

    class Meta:
        model = Host
        fields = ["environment", "name", "group", "site", "tag", "transport", "reachability", "enabled"]

    def filter_site(self, queryset, name, value):
        return queryset.filter(site__isnull=True) if value == "-" else queryset.filter(site__name=value)

    def filter_tag(self, queryset, name, value):
        # JSON containment is not portable to SQLite; match the quoted tag in the JSON text.
        if connection.vendor == "postgresql":
            return queryset.filter(tags__contains=[value])
        return queryset.filter(tags__icontains=f'"{value}"')

"""The global search in the API (GET /api/search/?q=): the same groups as the page."""
from dataclasses import asdict

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from . import search


class HitSerializer(serializers.Serializer):
    name = serializers.CharField()
    url = serializers.CharField(help_text="The object's page.")
    detail = serializers.CharField()
    environment = serializers.CharField()


class GroupSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=[kind[0] for kind in search.KINDS])
    label = serializers.CharField()
    hits = HitSerializer(many=True)
    more = serializers.BooleanField(help_text=f"More than {search.LIMIT} matched: narrow the words.")
    more_url = serializers.CharField(help_text="A list page with every match, when the kind has one.")


class SearchResultSerializer(serializers.Serializer):
    q = serializers.CharField()
    groups = GroupSerializer(many=True)


class SearchView(APIView):
    """Objects whose name starts with `q` (a job also by its number: `#42`), by kind, at most
    10 of each kind, only those the caller may view."""

    @extend_schema(
        parameters=[OpenApiParameter("q", str, required=True, description=f"What to look for (at most "
                                     f"{search.MAX_QUERY} characters; case does not matter).")],
        responses={200: SearchResultSerializer})
    def get(self, request):
        text = search.clean(request.query_params.get("q"))
        if not text:
            raise serializers.ValidationError({"q": ["Give something to look for."]})
        return Response({"q": text, "groups": [asdict(group) for group in search.search(request.user, text)]})

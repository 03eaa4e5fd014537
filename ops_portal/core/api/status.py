import time

from django.db import transaction
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from ops_portal.accounts.choices import Action
from ops_portal.accounts.models import Environment
from ops_portal.accounts.permissions import restrict
from ops_portal.core import tasks


class PingSerializer(serializers.Serializer):
    environment = serializers.CharField(required=False, help_text="Also answer on this environment's stream.")


class PingView(APIView):
    """Ask a worker to answer on your status stream (and an environment's, if given)."""

    @extend_schema(request=PingSerializer,
                   responses={202: inline_serializer("PingAccepted", {"request_id": serializers.CharField()})})
    def post(self, request):
        serializer = PingSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        environment_id = None
        name = serializer.validated_data.get("environment")
        if name:
            environment = restrict(Environment.objects.filter(name=name), request.user, Action.VIEW).first()
            if environment is None:
                raise serializers.ValidationError({"environment": ["No such environment."]})
            environment_id = environment.pk
        with transaction.atomic():
            tasks.ping.delay_on_commit(request.user.pk, request.request_id, environment_id, time.time())
        return Response({"request_id": request.request_id}, status=status.HTTP_202_ACCEPTED)

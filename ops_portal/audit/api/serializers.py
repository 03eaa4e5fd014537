from rest_framework import serializers

from ..models import AuditEvent


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", "time", "actor_id", "actor_name", "action", "object_type", "object_id", "object_repr",
                  "environment_name", "before", "after", "extra", "request_id", "source", "client_address"]
        read_only_fields = fields

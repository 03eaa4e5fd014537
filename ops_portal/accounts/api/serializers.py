from django.contrib.auth import get_user_model
from rest_framework import serializers

from ops_portal.core.api.fields import VisibleSlugRelatedField

from ..choices import Role
from ..models import APIToken, Environment, RoleBinding, Team

User = get_user_model()


class EnvironmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Environment
        fields = ["id", "name", "description", "is_production", "allow_adhoc_jobs", "created"]
        read_only_fields = ["created"]


class TeamSerializer(serializers.ModelSerializer):
    members = serializers.SlugRelatedField(
        many=True, slug_field="username", queryset=User.objects.all(), required=False
    )

    class Meta:
        model = Team
        fields = ["id", "name", "description", "members", "created"]
        read_only_fields = ["created"]


class RoleBindingSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", queryset=User.objects.all(), required=False,
                                        allow_null=True)
    team = serializers.SlugRelatedField(slug_field="name", queryset=Team.objects.all(), required=False,
                                        allow_null=True)
    environment = VisibleSlugRelatedField(
        slug_field="name", queryset=Environment.objects.all(), required=False, allow_null=True,
        help_text="Environment name; empty for all environments.",
    )
    role = serializers.ChoiceField(choices=Role.choices)

    class Meta:
        model = RoleBinding
        fields = ["id", "user", "team", "role", "environment", "created"]
        read_only_fields = ["created"]
        validators = []  # uniqueness is checked by the model on save (a clear 400)

    def validate(self, attrs):
        if self.instance is not None:  # an update changes the role or environment; the service refuses a new subject
            return attrs
        if bool(attrs.get("user")) == bool(attrs.get("team")):
            raise serializers.ValidationError({"non_field_errors": ["Give exactly one of user or team."]})
        return attrs


class UserSerializer(serializers.ModelSerializer):
    password = serializers.CharField(write_only=True, required=False, style={"input_type": "password"},
                                     help_text="Optional; without one the user cannot sign in yet.")

    class Meta:
        model = User
        fields = ["id", "username", "email", "first_name", "last_name", "is_active", "is_superuser",
                  "date_joined", "last_login", "password"]
        read_only_fields = ["is_superuser", "date_joined", "last_login"]


class SetPasswordSerializer(serializers.Serializer):
    password = serializers.CharField(write_only=True)


class ChangePasswordSerializer(serializers.Serializer):
    old_password = serializers.CharField(write_only=True)
    new_password = serializers.CharField(write_only=True)


class APITokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = APIToken
        fields = ["id", "name", "key_prefix", "created", "expires", "last_used", "revoked"]
        read_only_fields = ["key_prefix", "created", "last_used", "revoked"]


class NewAPITokenSerializer(APITokenSerializer):
    key = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(APITokenSerializer.Meta):
        fields = APITokenSerializer.Meta.fields + ["key"]


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    is_superuser = serializers.BooleanField()
    permissions = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="For each action, the environment names where it is allowed ('*' for all).",
    )

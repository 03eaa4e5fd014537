from rest_framework import serializers

from ops_portal.inventory.api.serializers import EnvironmentField

from .. import evidence, services
from ..choices import Decision
from ..models import ApprovalComment, ApprovalDecision, ApprovalPolicy, ApprovalRequest


class ApprovalPolicySerializer(serializers.ModelSerializer):
    environment = EnvironmentField()
    templates = serializers.ListField(child=serializers.CharField(max_length=128), required=False)
    actions = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    risks = serializers.ListField(child=serializers.CharField(max_length=64), required=False)

    class Meta:
        model = ApprovalPolicy
        fields = ["id", "name", "environment", "enabled", "all_work", "templates", "actions", "risks", "min_targets",
                  "approvals_required", "timeout_minutes", "timeout_outcome", "schedule_mode", "created"]
        read_only_fields = ["created"]
        validators = []


class DecisionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApprovalDecision
        fields = ["user_name", "decision", "comment", "created"]


class CommentSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApprovalComment
        fields = ["user_name", "text", "created"]


class ApprovalRequestSerializer(serializers.ModelSerializer):
    environment = serializers.SlugRelatedField(slug_field="name", read_only=True)
    approvals = serializers.SerializerMethodField()

    class Meta:
        model = ApprovalRequest
        fields = ["id", "environment", "subject_type", "subject_id", "title", "plan_hash", "requested_by_name",
                  "required", "approvals", "policies", "state", "reason", "expires_at", "timeout_outcome", "created",
                  "decided_at"]
        read_only_fields = fields

    def get_approvals(self, obj) -> int:
        return sum(1 for d in obj.decisions.all() if d.decision == Decision.APPROVE)


class ApprovalRequestDetailSerializer(ApprovalRequestSerializer):
    decisions = DecisionSerializer(many=True, read_only=True)
    comments = CommentSerializer(many=True, read_only=True)
    approvers = serializers.SerializerMethodField(
        help_text="Who could still decide on a pending request (not the requester, not those who decided).")
    evidence = serializers.SerializerMethodField(
        help_text="What approvers see besides the plan: for a job, {\"dry_run\": {job, state, finished}}, the "
                  "read-only dry run launched when the request opened (its per-host diffs are in that job's "
                  "targets' data.diff); {} when there is none.")

    class Meta(ApprovalRequestSerializer.Meta):
        fields = ApprovalRequestSerializer.Meta.fields + ["plan", "decisions", "comments", "approvers", "evidence"]
        read_only_fields = fields

    def get_approvers(self, obj) -> list[str]:
        return services.approvers(obj)

    def get_evidence(self, obj) -> dict:
        return evidence.note(obj)


class DecideSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=4000)


class AddCommentSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=4000)

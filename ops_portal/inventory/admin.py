from ops_portal.core.admin import register_read_only

from .models import Artifact, ComplianceResult, Credential, FactsChange, Host, HostGroup

register_read_only(Host, HostGroup, Credential, FactsChange, ComplianceResult, Artifact)

from ops_portal.audit.registry import register, register_crud

register_crud("host", "Host")
register_crud("site", "Site")
register_crud("hostgroup", "Host group")
register_crud("credential", "Credential")
register("credential.rotate", "Credential's key replaced")
register("host.accept_host_key", "Host's new SSH host key accepted")
register("host.import", "Hosts imported")
register_crud("artifact", "Release artifact")

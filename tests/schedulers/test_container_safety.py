"""The safety check: privileged features of container and service specs, for refusing them to
non-administrators (Portainer's hole: anyone who may mount / is root on the host)."""
import pytest

from schedulers.container import ContainerSpec, Mount, ServiceSpec, containers, path_allowed, privileged_features
from schedulers.container.compose import load

ALLOWED = ["/srv/data", "/var/lib/app/"]


def _features(spec):
    return [(f.feature, f.field) for f in privileged_features(spec, ALLOWED)]


def test_a_plain_container_uses_no_privileged_feature():
    spec = ContainerSpec(image="web:v1", mounts=[Mount("/data", "named"), Mount("/cache", type="tmpfs"),
                                                 Mount("/in", "/srv/data/in", type="bind")],
                         network_mode="bridge", security_opt=["no-new-privileges"], cap_drop=["ALL"])
    assert privileged_features(spec, ALLOWED) == []


def test_lists_every_privileged_container_feature():
    spec = ContainerSpec(image="x", privileged=True, network_mode="host", pid_mode="host", ipc_mode="host",
                         uts_mode="host", userns_mode="host", cap_add=["SYS_ADMIN", "NET_RAW"],
                         devices=["/dev/sda:/dev/xvda:rwm"], security_opt=["seccomp=unconfined", "apparmor:unconfined",
                                                                           "label=disable"],
                         mounts=[Mount("/host", "/", type="bind")])
    assert _features(spec) == [
        ("privileged", "privileged"), ("host_network", "network_mode"), ("host_pid", "pid_mode"),
        ("host_ipc", "ipc_mode"), ("host_uts", "uts_mode"), ("host_userns", "userns_mode"),
        ("cap_add", "cap_add[0]"), ("cap_add", "cap_add[1]"), ("device", "devices[0]"),
        ("security_opt", "security_opt[0]"), ("security_opt", "security_opt[1]"), ("security_opt", "security_opt[2]"),
        ("bind_mount", "mounts[0].source")]
    details = {f.field: f.detail for f in privileged_features(spec, ALLOWED)}
    assert details["devices[0]"] == "maps the host device /dev/sda"
    assert details["mounts[0].source"] == "bind-mounts the host path /, outside the allowed paths"


def test_joining_another_containers_namespace_is_flagged():
    spec = ContainerSpec(image="x", pid_mode="container:db", network_mode="container:db")
    assert {f.feature for f in privileged_features(spec)} == {"shared_namespace"}


@pytest.mark.parametrize(("path", "allowed"), [
    ("/srv/data", True), ("/srv/data/x/y", True), ("/var/lib/app", True), ("/var/lib/app/sub", True),
    ("/srv/database", False), ("/srv", False), ("/", False), ("/etc", False),
    ("/srv/data/../../etc", False), ("/srv/data/./x/../y", True), ("//srv//data", True),
])
def test_allow_list_matches_whole_components_after_normalising(path, allowed):
    assert path_allowed(path, ALLOWED) is allowed


def test_an_empty_allow_list_flags_every_bind_mount_and_root_allows_all():
    spec = ContainerSpec(image="x", mounts=[Mount("/d", "/srv/data", type="bind")])
    assert _features(spec) == []
    assert [f.feature for f in privileged_features(spec, [])] == ["bind_mount"]
    assert privileged_features(spec, ["/"]) == []


def test_a_volume_bound_to_a_host_path_is_a_bind_mount_in_disguise():
    disguised = Mount("/host-etc", "innocent", type="volume", volume_driver="local",
                      volume_options={"type": "none", "o": "bind", "device": "/etc"})
    assert _features(ContainerSpec(image="x", mounts=[disguised])) == [("bind_mount", "mounts[0].volume_options")]
    assert _features(ServiceSpec(name="s", image="x", mounts=[disguised])) == [
        ("bind_mount", "mounts[0].volume_options")]
    allowed = Mount("/d", "v", volume_options={"type": "none", "o": "bind", "device": "/srv/data/v"})
    assert _features(ContainerSpec(image="x", mounts=[allowed])) == []
    nfs = Mount("/d", "v", volume_options={"type": "nfs", "o": "addr=10.0.0.1", "device": ":/export"})
    assert _features(ContainerSpec(image="x", mounts=[nfs])) == []


def test_service_features_and_a_stack_from_compose():
    spec = ServiceSpec(name="s", image="x", networks=["host"], cap_add=["CAP_SYS_PTRACE"],
                       mounts=[Mount("/var/run/docker.sock", "/var/run/docker.sock", type="bind")])
    assert _features(spec) == [("host_network", "networks[0]"), ("cap_add", "cap_add[0]"),
                               ("bind_mount", "mounts[0].source")]
    stack = load("""
services:
  sneaky:
    image: x
    cap_add: [SYS_ADMIN]
    volumes: ["root:/host"]
volumes:
  root:
    driver_opts: {type: none, o: bind, device: /}
""", "st")
    (service,) = stack.services.values()
    assert {f.feature for f in privileged_features(service, ALLOWED)} == {"cap_add", "bind_mount"}


@pytest.mark.fleet
def test_the_disguised_volume_really_reaches_the_host_path(engine, ct_images, prefix, tmp_path):
    """Why the check looks into volume options: the engine mounts the host directory."""
    secret = tmp_path / "host-only"
    secret.mkdir()
    (secret / "marker").write_text("from the host\n")
    disguised = Mount("/peek", f"{prefix}-vol", volume_driver="local",
                      volume_options={"type": "none", "o": "bind", "device": str(secret)})
    spec = ContainerSpec(image=ct_images["web:v1"], name=f"{prefix}-peek", mounts=[disguised])
    assert [f.feature for f in privileged_features(spec, ALLOWED)] == ["bind_mount"]
    info = containers.run(engine, spec)
    lines = []
    containers.exec_run(engine, info.id, ["cat", "/peek/marker"], on_line=lambda s, t: lines.append(t))
    assert lines == ["from the host"]


def test_refuses_other_kinds():
    with pytest.raises(TypeError):
        privileged_features({"privileged": True})

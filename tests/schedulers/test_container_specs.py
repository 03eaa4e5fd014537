"""Spec checks before anything reaches an engine: image references, durations, sizes, ports,
and building specs from plain data with field errors."""
import pickle

import pytest

from schedulers.container import ContainerSpec, PortSpec, ServiceSpec, SpecError, check_container, check_service
from schedulers.container import validate as v


@pytest.mark.parametrize("ref", [
    "web", "opsportal/web:v1", "opsportal/web:v1-274f82de9f5e", "localhost:5000/team/app", "registry.example.com/a/b/c",
    "Registry.Example.com:443/app:1.0", "[::1]:5000/app:tag", f"app@sha256:{'a' * 64}", f"a/b:1@sha256:{'0' * 64}",
    "a__b/c-d.e:T_9.x-y", "UPPER/case",  # an upper-case first component is a registry host to Docker
])
def test_accepts_image_references(ref):
    errors = v.Errors()
    v.image_reference(ref, errors)
    assert not errors, errors.errors


@pytest.mark.parametrize("ref", [
    "", "upper/CASE", "web:", "web:-tag", "web:" + "t" * 129, "web@sha256:abc", f"web@sha256:{'a' * 63}", "a//b",
    "with space", "web:v1;rm -rf /", "-web", "web/", "a" * 256, "ex ample.com/app",
])
def test_refuses_image_references(ref):
    errors = v.Errors()
    v.image_reference(ref, errors)
    assert "image" in errors.errors


@pytest.mark.parametrize(("value", "nanos"), [
    (0, 0), (1, 10**9), (0.5, 5 * 10**8), ("1s", 10**9), ("1m30s", 90 * 10**9), ("500ms", 5 * 10**8),
    ("2h", 7200 * 10**9), ("1.5s", 15 * 10**8), ("10us", 10**4),
])
def test_reads_durations(value, nanos):
    errors = v.Errors()
    assert v.duration(value, errors, "d") == nanos and not errors


@pytest.mark.parametrize("value", ["soon", "1 s", "-1s", "s", "1d", -1, True, "", float("nan"), 10**9])
def test_refuses_durations(value):
    errors = v.Errors()
    v.duration(value, errors, "d", optional=False)
    assert "d" in errors.errors


@pytest.mark.parametrize(("value", "size"), [("64m", 64 * 2**20), ("1g", 2**30), ("512MB", 512 * 2**20),
                                             ("1.5g", int(1.5 * 2**30)), (8 * 2**20, 8 * 2**20), ("64MiB", 64 * 2**20)])
def test_reads_sizes(value, size):
    errors = v.Errors()
    assert v.size(value, errors, "s") == size and not errors


def test_service_spec_errors_come_all_at_once():
    spec = ServiceSpec(name="bad name", image="ok", replicas=-1, mode="sideways", env={"1X": "y", "OK": 3},
                       ports=[PortSpec(0), PortSpec(80, 99999, "icmp", "nowhere"), PortSpec(81, 8080),
                              PortSpec(82, 8080)], endpoint_mode="dnsrr", labels={"": "x"},
                       cap_add=["not a cap"], workdir="relative", stop_grace_period="forever")
    with pytest.raises(SpecError) as err:
        check_service(spec)
    assert set(err.value.errors) == {
        "name", "mode", "env.1X", "env.OK", "ports[0].target", "ports[0].mode", "ports[1].published",
        "ports[1].protocol", "ports[1].mode", "ports[2].mode", "ports[3].published", "ports[3].mode", "labels.",
        "cap_add[0]", "workdir", "stop_grace_period"}
    assert "routing mesh" in err.value.errors["ports[0].mode"][0]
    copy = pickle.loads(pickle.dumps(err.value))
    assert copy.errors == err.value.errors and str(copy) == str(err.value)


def test_builds_nested_specs_from_plain_data():
    spec = ServiceSpec.from_dict({
        "name": "web", "image": "opsportal/web:v1", "replicas": 2, "endpoint_mode": "dnsrr",
        "ports": [{"target": 8080, "mode": "host"}], "resources": {"cpu_limit": 0.5, "memory_limit": "64m"},
        "update_config": {"parallelism": 1, "delay": "2s", "failure_action": "rollback"},
        "healthcheck": {"test": ["CMD", "true"], "interval": 1}, "mounts": [{"target": "/d", "source": "v"}]})
    assert check_service(spec) is spec
    assert spec.ports[0].mode == "host" and spec.update_config.delay == "2s" and spec.mounts[0].type == "volume"
    with pytest.raises(SpecError) as err:
        ServiceSpec.from_dict({"name": "web", "ports": [{"target": 1, "colour": "red"}], "resources": 5})
    assert err.value.errors == {"ports[0].colour": ["unknown field"], "resources": ["must be an object, not int"],
                                "image": ["this field is required"]}


def test_container_spec_checks():
    spec = ContainerSpec(image="web", ports=[{"container_port": 80}], restart="always")
    with pytest.raises(SpecError) as err:
        check_container(spec)
    assert "ports[0]" in err.value.errors  # a dict where a ContainerPort belongs, when not built from_dict
    good = ContainerSpec.from_dict({"image": "web", "ports": [{"container_port": 80, "host_port": 8080}],
                                    "restart": "on-failure", "restart_max_retries": 3, "cpus": 0.5})
    assert check_container(good).ports[0].host_ip == "127.0.0.1"
    with pytest.raises(SpecError) as err:
        check_container(ContainerSpec(image="web", network="a", network_mode="host", restart="no",
                                      restart_max_retries=2, ports=[], devices=["relative"],
                                      healthcheck=None, cap_add=["ALL"]))
    assert set(err.value.errors) == {"network", "restart_max_retries", "devices[0]"}

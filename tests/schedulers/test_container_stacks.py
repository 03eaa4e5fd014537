"""Stacks: a Compose file checked against the Compose specification and what Swarm can do,
deployed, changed in place and removed on the real engine."""
import pytest

from schedulers.container import SpecError, check_balance, endpoints, load_compose, stacks, wait_converged
from schedulers.container.compose import IMAGE_LABEL
from schedulers.container.inventory import STACK_LABEL

pytestmark = pytest.mark.fleet

COMPOSE = """
services:
  web:
    image: {web}
    environment:
      GREETING: hello
    ports:
      - target: 8080
        mode: host
    deploy:
      replicas: 2
      update_config: {{parallelism: 1, delay: 0s, order: start-first, failure_action: rollback, monitor: 2s}}
      restart_policy: {{condition: on-failure, max_attempts: 3}}
      resources:
        limits: {{cpus: "0.5", memory: 64M}}
    healthcheck:
      test: ["CMD", "true"]
      interval: 2s
    labels:
      role: frontend
  worker:
    image: {burner}
    command: ["sleep", "3600"]
    entrypoint: ["/bin/sh", "-c", "exec \\"$$@\\"", "sh"]
    networks: [back]
    volumes:
      - data:/data
    healthcheck:
      disable: true
networks:
  back:
    driver: overlay
volumes:
  data: {{}}
"""


def _compose(ct_images, **replace):
    text = COMPOSE.format(web=ct_images["web:v1"], burner=ct_images["burner"])
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


def _services(docker_client, stack):
    return {s["Spec"]["Name"]: s for s in docker_client.api.services(filters={"label": f"{STACK_LABEL}={stack}"})}


def test_deploy_change_and_remove_a_stack(engine, docker_client, ct_images, prefix):
    stack = load_compose(_compose(ct_images), prefix, default_publish_mode="host")
    web, worker = f"{prefix}_web", f"{prefix}_worker"
    assert set(stack.services) == {web, worker}
    plan = stacks.diff(stacks.current(engine, prefix), stack)
    assert plan.added == [web, worker] and not plan.changed and not plan.removed

    result = stacks.deploy(engine, stack)
    assert sorted(result.created) == [web, worker] and sorted(result.networks_created) == [
        f"{prefix}_back", f"{prefix}_default"]
    for change in result.changes:
        assert wait_converged(engine, change, timeout=90, stable_for=0).ok
    running = _services(docker_client, prefix)
    assert running[web]["Spec"]["Labels"][IMAGE_LABEL] == ct_images["web:v1"]
    container = running[web]["Spec"]["TaskTemplate"]["ContainerSpec"]
    assert container["Labels"] == {"role": "frontend", STACK_LABEL: prefix}
    assert container["Env"] == ["GREETING=hello"]
    assert running[worker]["Spec"]["TaskTemplate"]["ContainerSpec"]["Command"] == ["/bin/sh", "-c", 'exec "$@"', "sh"]
    mount = running[worker]["Spec"]["TaskTemplate"]["ContainerSpec"]["Mounts"][0]
    assert (mount["Source"], mount["Target"]) == (f"{prefix}_data", "/data")
    assert check_balance(endpoints(engine, web), 10).distinct == 2
    assert stacks.diff(stacks.current(engine, prefix), stack).empty  # what runs is what the file says

    changed = load_compose(_compose(ct_images, **{"replicas: 2": "replicas: 3", "hello": "bonjour",
                                                     ct_images["web:v1"]: ct_images["web:v2"]}),
                           prefix, default_publish_mode="host")
    plan = stacks.diff(stacks.current(engine, prefix), changed)
    assert plan.unchanged == [worker] and list(plan.changed) == [web]
    assert {(c.field, c.old, c.new) for c in plan.changed[web]} >= {
        ("replicas", 2, 3), ("env.GREETING", "hello", "bonjour"),
        ("image", ct_images["web:v1"], ct_images["web:v2"])}
    result = stacks.deploy(engine, changed)
    assert (result.updated, result.unchanged, result.created) == ([web], [worker], [])
    assert wait_converged(engine, result.changes[0], timeout=120).ok
    versions = {e.port for e in endpoints(engine, web).endpoints}
    assert len(versions) == 3

    only_web = load_compose(_compose(ct_images).split("  worker:")[0] + "networks:\n  back: {}\n"
                            "volumes:\n  data: {}\n", prefix, default_publish_mode="host")
    assert stacks.diff(stacks.current(engine, prefix), only_web).removed == [worker]
    assert stacks.deploy(engine, only_web, prune=True).removed == [worker]

    removed = stacks.remove(engine, prefix)
    assert removed["services"] == [web] and sorted(removed["networks"]) == [f"{prefix}_back", f"{prefix}_default"]
    assert _services(docker_client, prefix) == {}
    assert not [n for n in docker_client.networks.list() if n.name.startswith(prefix)]


def test_a_stack_that_clashes_with_running_services_changes_nothing(engine, docker_client, ct_images, prefix):
    from schedulers.container import PortSpec, ServiceSpec
    from schedulers.container import services as svc

    svc.create(engine, ServiceSpec(name=f"{prefix}-other", image=ct_images["web:v1"],
                                   endpoint_mode="dnsrr", ports=[PortSpec(8080, 38291, mode="host")]))
    text = _compose(ct_images, **{"target: 8080\n": "target: 8080\n        published: 38291\n"})
    stack = load_compose(text, prefix, default_publish_mode="host")
    with pytest.raises(SpecError) as err:
        stacks.deploy(engine, stack)
    assert "published by service" in err.value.errors[f"services.{prefix}_web.ports"][0]
    assert _services(docker_client, prefix) == {}
    assert not [n for n in docker_client.networks.list() if n.name.startswith(f"{prefix}_")]


@pytest.mark.parametrize(("text", "field", "words"), [
    ("services: {web: {image: 5}}", "services.web.image", "is not of type 'string'"),
    ("services: {web: {image: x, deploy: {replicas: many}}}", "services.web.deploy.replicas", "not a whole number"),
    ("services: {web: {image: x, bogus: 1}}", "services.web", "does not match any of the regexes"),
    ("services: {web: {image: x, privileged: true}}", "services.web.privileged", "refused rather than ignored"),
    ("services: {web: {image: x, network_mode: host}}", "services.web.network_mode", "refused rather than ignored"),
    ("services: {web: {build: .}}", "services.web.build", "refused rather than ignored"),
    ("services: {web: {image: 'x:${TAG}'}}", "services.web.image", "variable interpolation"),
    ("services: {web: {image: x, environment: [SECRET]}}", "services.web.environment.SECRET", "deploying shell"),
    ("services: {web: {image: x, ports: ['127.0.0.1:80:80']}}", "services.web.ports[0]", "host address"),
    ("services: {web: {image: x, volumes: ['./data:/data']}}", "services.web.volumes[0].source", "absolute"),
    ("services: {web: {image: x, volumes: ['data:/data']}}", "services.web.volumes[0].source", "not declared"),
    ("services: {web: {image: x, networks: [back]}}", "services.web.networks", "not declared"),
    ("services: {web: {image: 'Not An Image'}}", "services.web.image", "not an image reference"),
    ("services: {web: {image: x, deploy: {update_config: {delay: soon}}}}",
     "services.web.deploy.update_config.delay", "not a duration"),
    ("services: {web: {image: x, deploy: {resources: {limits: {memory: 1k}}}}}",
     "services.web.deploy.resources.limits.memory", "too small"),
    ("services: {web: {image: x, ports: [{target: 80, published: 80}, {target: 81, published: 80}]}}",
     "services.web.ports[1].published", "already published"),
    ("services: {}", "services", "no services"),
    ("services: [", "compose", "not valid YAML (line 1"),
    ("configs: {}\nservices: {web: {image: x}}", "configs", "not supported for a stack"),
])
def test_refuses_bad_compose_files_with_field_errors(text, field, words):
    with pytest.raises(SpecError) as err:
        load_compose(text, "st")
    assert field in err.value.errors, err.value.errors
    assert any(words in message for message in err.value.errors[field]), err.value.errors[field]


def test_maps_compose_fields_to_service_specs():
    stack = load_compose("""
services:
  api:
    image: registry.example.com:5000/team/api:1.2@sha256:%s
    command: serve --port 80
    environment: ["MODE=prod", "PRICE=$$5"]
    ports: ["8080:80", "9000:9000/udp"]
    deploy:
      mode: replicated
      replicas: 4
      endpoint_mode: vip
      placement: {constraints: [node.role==worker]}
      resources: {reservations: {cpus: "0.25", memory: 32M}}
      rollback_config: {parallelism: 2, failure_action: continue}
      labels: [tier=api]
    healthcheck: {test: "wget -q -O- localhost/health", retries: 2, start_period: 1m}
    stop_grace_period: 30s
""" % ("a" * 64), "shop")
    spec = stack.services["shop_api"]
    assert spec.args == ["serve", "--port", "80"] and spec.env == {"MODE": "prod", "PRICE": "$5"}
    assert [(p.target, p.published, p.protocol, p.mode) for p in spec.ports] == [
        (80, 8080, "tcp", "ingress"), (9000, 9000, "udp", "ingress")]
    assert spec.replicas == 4 and spec.endpoint_mode == "vip" and spec.constraints == ["node.role==worker"]
    assert spec.resources.cpu_reservation == 0.25 and spec.resources.memory_reservation == "32M"
    assert spec.rollback_config.parallelism == 2 and spec.rollback_config.failure_action == "continue"
    assert spec.labels == {"tier": "api", STACK_LABEL: "shop", IMAGE_LABEL: spec.image}
    assert spec.healthcheck.test == ["CMD-SHELL", "wget -q -O- localhost/health"]
    assert spec.networks == ["shop_default"] and list(stack.networks) == ["shop_default"]
    assert stacks.load is load_compose

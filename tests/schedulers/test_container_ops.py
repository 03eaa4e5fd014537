"""Container operations against the real engine: lifecycle, logs, stats, exec with cancel, and
creating a container from a checked spec (refused specs create nothing)."""
import threading
import time

import docker
import pytest

from schedulers.base import CancelToken
from schedulers.container import ContainerPort, ContainerSpec, SpecError, containers
from schedulers.container.containers import ContainerError, compute_stats
from tests.helpers import wait_until
from tests.schedulers.container_rigs import http_get

pytestmark = pytest.mark.fleet

TICKER = ["sh", "-c", "i=0; while :; do echo tick $i; echo tock $i >&2; i=$((i+1)); sleep 0.2; done"]


def _names(docker_client, prefix):
    return sorted(c.name for c in docker_client.containers.list(all=True) if c.name.startswith(prefix))


@pytest.fixture
def web(engine, ct_images, prefix):
    info = containers.run(engine, ContainerSpec(image=ct_images["web:v1"], name=f"{prefix}-web",
                                                ports=[ContainerPort(8080)], labels={"opsportal.test": "ops"}))
    return info


def test_runs_a_container_from_a_spec_published_on_loopback(engine, web, prefix):
    assert web.state == "running" and web.name == f"{prefix}-web" and web.labels["opsportal.test"] == "ops"
    (port,) = [p for p in web.ports if p["ip"] == "127.0.0.1"]
    status, body = wait_until(lambda: _try_get(port["public"]), 10, what="web answering")
    assert status == 200 and '"version": "v1"' in body


def _try_get(port):
    try:
        return http_get(port)
    except OSError:
        return None


def test_lifecycle_operations_report_the_new_state(engine, web):
    assert containers.pause(engine, web.id).state == "paused"
    assert containers.unpause(engine, web.id).state == "running"
    stopped = containers.stop(engine, web.id, timeout=1)
    assert stopped.state == "exited" and stopped.finished_at
    assert containers.start(engine, web.id).state == "running"
    restarted = containers.restart(engine, web.id, timeout=1)
    assert restarted.state == "running" and restarted.started_at > stopped.finished_at
    killed = containers.kill(engine, web.id, "TERM")
    assert wait_until(lambda: containers.inspect_info(engine, web.id).state == "exited", 5)
    assert killed.id == web.id
    containers.remove(engine, web.id)
    with pytest.raises(ContainerError, match="not found"):
        containers.start(engine, web.id)


def test_refuses_an_unknown_signal_before_sending_anything(engine, web):
    with pytest.raises(SpecError) as err:
        containers.kill(engine, web.id, "SIGNOPE")
    assert "signal" in err.value.errors
    assert containers.inspect_info(engine, web.id).state == "running"


def test_logs_tail_and_follow_with_cancel(engine, ct_images, prefix):
    ticker = containers.run(engine, ContainerSpec(image=ct_images["web:v1"], name=f"{prefix}-tick",
                                                  entrypoint=TICKER))
    wait_until(lambda: len(containers.logs(engine, ticker.id, tail=None)) >= 6, 10)
    tail = containers.logs(engine, ticker.id, tail=4)
    assert len(tail) == 4 and {s for s, _ in tail} == {"stdout", "stderr"}
    assert all(text.startswith("tick") for s, text in tail if s == "stdout")

    followed, cancel = [], CancelToken()
    thread = threading.Thread(target=containers.logs, args=(engine, ticker.id),
                              kwargs={"tail": 0, "follow": True, "cancel": cancel,
                                      "on_line": lambda stream, text: followed.append((time.monotonic(), text))})
    thread.start()
    wait_until(lambda: len(followed) >= 6, 5, what="followed lines")
    canceled_at = time.monotonic()
    cancel.cancel()
    thread.join(3)
    assert not thread.is_alive()
    assert not [t for t, _ in followed if t > canceled_at + 0.5]  # nothing read after the cancel took effect


def test_follow_ends_when_the_container_stops(engine, ct_images, prefix):
    ticker = containers.run(engine, ContainerSpec(image=ct_images["web:v1"], name=f"{prefix}-tick2",
                                                  entrypoint=TICKER))
    done = threading.Event()

    def follow():
        containers.logs(engine, ticker.id, tail=0, follow=True, on_line=lambda *a: None)
        done.set()

    threading.Thread(target=follow, daemon=True).start()
    time.sleep(0.5)
    containers.kill(engine, ticker.id)
    assert done.wait(5)


def test_stats_sample_from_a_busy_container(engine, ct_images, prefix):
    burner = containers.run(engine, ContainerSpec(image=ct_images["burner"], name=f"{prefix}-burn",
                                                  env={"BURN_SECONDS": "30", "BURN_WORKERS": "1"},
                                                  memory_limit="64m"))
    resting = containers.run(engine, ContainerSpec(image=ct_images["burner"], name=f"{prefix}-rest",
                                                   memory_limit="64m"))
    time.sleep(1)
    sample = containers.stats(engine, burner.id)
    idle = containers.stats(engine, resting.id)
    assert sample.running and sample.online_cpus >= 1
    # One busy loop is about one CPU on a calm machine; a loaded one gives it less, so it is compared
    # with the same image at rest, sampled the same way at the same time.
    assert sample.cpu_percent <= 100 * sample.online_cpus + 5
    assert sample.cpu_percent > max(5, 5 * idle.cpu_percent), (sample.cpu_percent, idle.cpu_percent)
    assert sample.memory_limit == 64 * 2**20 and 0 < sample.memory_usage < sample.memory_limit
    assert sample.pids >= 1 and sample.net_rx >= 0 and sample.block_read >= 0


def test_stats_arithmetic_matches_the_docker_cli():
    raw = {"read": "2026-01-01T00:00:01Z",
           "cpu_stats": {"cpu_usage": {"total_usage": 3_000_000_000}, "system_cpu_usage": 20_000_000_000,
                         "online_cpus": 2},
           "precpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000}, "system_cpu_usage": 18_000_000_000},
           "memory_stats": {"usage": 50 * 2**20, "limit": 100 * 2**20, "stats": {"total_inactive_file": 10 * 2**20}},
           "networks": {"eth0": {"rx_bytes": 100, "tx_bytes": 10}, "eth1": {"rx_bytes": 5, "tx_bytes": 1}},
           "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 7}, {"op": "Write", "value": 3},
                                                          {"op": "read", "value": 1}]},
           "pids_stats": {"current": 4}}
    sample = compute_stats(raw)
    assert sample.cpu_percent == 100.0  # 1 s of CPU in 2 s of two CPUs' time: one CPU's worth
    assert (sample.memory_usage, sample.memory_percent) == (40 * 2**20, 40.0)
    assert (sample.net_rx, sample.net_tx, sample.block_read, sample.block_write) == (105, 11, 8, 3)


def test_exec_streams_output_and_returns_the_exit_code(engine, web):
    lines = []
    result = containers.exec_run(engine, web.id, ["sh", "-c", "echo out; echo err >&2; echo more; exit 3"],
                                 on_line=lambda stream, text: lines.append((stream, text)))
    assert result.exit_code == 3 and not result.canceled and not result.error
    assert [t for s, t in lines if s == "stdout"] == ["out", "more"] and ("stderr", "err") in lines
    assert not any("opsportal-exec" in text for _, text in lines)  # the wrapper's pid line is not output
    missing = containers.exec_run(engine, web.id, ["no-such-program"])
    assert missing.exit_code == 127


def test_exec_cancel_ends_the_whole_process_group(engine, web):
    cancel, lines = CancelToken(), []
    threading.Timer(1.0, cancel.cancel).start()
    started = time.monotonic()
    result = containers.exec_run(engine, web.id, ["sh", "-c", "echo started; sleep 300 & sleep 301; echo never"],
                                 cancel=cancel, on_line=lambda s, t: lines.append(t))
    assert result.canceled and not result.error and time.monotonic() - started < 6
    assert lines == ["started"]
    ps = []
    containers.exec_run(engine, web.id, ["ps", "-o", "args"], on_line=lambda s, t: ps.append(t))
    assert not [line for line in ps if "sleep 30" in line]  # both sleeps, the background one too


def test_exec_timeout(engine, web):
    result = containers.exec_run(engine, web.id, ["sleep", "60"], timeout=1)
    assert result.timed_out and not result.canceled and result.exit_code != 0 and not result.error


def test_exec_refuses_a_shell_line(engine, web):
    with pytest.raises(SpecError):
        containers.exec_run(engine, web.id, "echo hi; rm -rf /")


def test_refused_specs_create_nothing(engine, docker_client, ct_images, prefix):
    bad = {"image": "Not An Image!", "name": f"{prefix}-bad", "ports": [{"container_port": 70000}],
           "restart": "sometimes", "memory_limit": "lots", "command": "echo hi"}
    with pytest.raises(SpecError) as err:
        containers.run(engine, ContainerSpec.from_dict(bad))
    assert set(err.value.errors) >= {"image", "ports[0].container_port", "restart", "memory_limit", "command"}
    with pytest.raises(SpecError, match="not on this engine"):
        containers.run(engine, ContainerSpec(image=f"{prefix}/missing:1", name=f"{prefix}-missing"))
    assert _names(docker_client, prefix) == []


def test_a_container_that_cannot_start_is_removed_again(engine, web, docker_client, ct_images, prefix):
    (port,) = [p["public"] for p in web.ports if p["ip"] == "127.0.0.1"]
    clash = ContainerSpec(image=ct_images["web:v1"], name=f"{prefix}-clash",
                          ports=[ContainerPort(8080, host_port=port)])
    with pytest.raises(ContainerError, match="already allocated|address already in use"):
        containers.run(engine, clash)
    assert _names(docker_client, prefix) == [f"{prefix}-web"]
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(f"{prefix}-clash")


def test_tells_when_a_containers_tag_now_points_to_another_image(engine, docker_client, ct_images, prefix):
    from schedulers.container import container_image_update

    v1, v2 = docker_client.images.get(ct_images["web:v1"]), docker_client.images.get(ct_images["web:v2"])
    tag = f"{prefix}-img:stable"
    v1.tag(tag)
    info = containers.run(engine, ContainerSpec(image=tag, name=f"{prefix}-tagged"))
    before = container_image_update(engine, info.id)
    assert (before.update_available, before.current, before.running) == (False, v1.id, [v1.id])
    v2.tag(tag)
    after = container_image_update(engine, info.id)
    assert (after.update_available, after.current, after.running) == (True, v2.id, [v1.id])
    assert after.reference == tag and not after.pinned
    offline = container_image_update(engine, info.id, check_registry=True)
    assert offline.registry_error and offline.update_available  # no registry here: said, not hidden

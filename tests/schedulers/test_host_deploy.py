"""Deploys on real hosts: unpack, atomic switch, restart hook, rollback, pruning, refusals."""

import io
import tarfile

import pytest

from schedulers.host import CancelToken, deploy_release, rollback_release

pytestmark = pytest.mark.fleet


def archive(files, links=()):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(content), 0o755
            tar.addfile(info, io.BytesIO(content))
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def app(version):
    return archive({"VERSION": f"{version}\n".encode(), "bin/start": f"#!/bin/sh\necho starting {version}\n".encode()})


def current(fleet, host, base):
    """Where base/current points, read on the host itself (docker exec), not through the backend."""
    return fleet.exec(host, ["readlink", f"{base}/current"]).check().stdout.strip()


def releases(fleet, host, base):
    return sorted(fleet.exec(host, ["ls", f"{base}/releases"]).check().stdout.split())


@pytest.fixture
def base(unique):
    return f"/srv/{unique}"


def test_deploy_twice_then_roll_back(fleet, pool, target, base, lines):
    hook = "sh bin/start; echo release=$RELEASE_ID previous=$PREVIOUS_RELEASE cwd=$(pwd)"
    first = deploy_release(pool, target, base_dir=base, release_id="v1", archive=app("v1"), restart_hook=hook,
                           on_line=lines)
    assert (first.ok, first.changed, first.data["release"], first.data["previous"]) == (True, True, "v1", None)
    assert current(fleet, target.name, base) == "releases/v1"
    assert lines.texts("stdout") == ["starting v1", f"release=v1 previous= cwd={base}/releases/v1"]

    second = deploy_release(pool, target, base_dir=base, release_id="v2", archive=app("v2"), restart_hook=hook,
                            on_line=lines)
    assert (second.ok, second.data["release"], second.data["previous"]) == (True, "v2", "v1")
    assert current(fleet, target.name, base) == "releases/v2"
    assert fleet.exec(target.name, ["cat", f"{base}/current/VERSION"]).check().stdout == "v2\n"
    assert fleet.exec(target.name, ["stat", "-c", "%U", f"{base}/current/VERSION"]).check().stdout.strip() == "root"

    back = rollback_release(pool, target, base_dir=base, on_line=lines)
    assert (back.ok, back.changed, back.data["release"], back.data["previous"]) == (True, True, "v1", "v2")
    assert current(fleet, target.name, base) == "releases/v1"
    nothing_left = rollback_release(pool, target, base_dir=base, on_line=lines)
    assert not nothing_left.ok and "no release before v1" in nothing_left.error
    assert current(fleet, target.name, base) == "releases/v1"


def test_keeps_the_last_n_releases(fleet, pool, target, base, lines):
    for version in ("v1", "v2", "v3", "v4"):
        result = deploy_release(pool, target, base_dir=base, release_id=version, archive=app(version), keep=2,
                                on_line=lines)
        assert result.ok
    assert result.data["pruned"] == ["v2"] and result.data["releases"] == ["v3", "v4"]
    assert releases(fleet, target.name, base) == ["v3", "v4"]
    assert current(fleet, target.name, base) == "releases/v4"
    hidden = fleet.exec(target.name, ["ls", "-A", f"{base}/releases"]).check().stdout.split()
    assert sorted(hidden) == [".v3.sha256", ".v4.sha256", "v3", "v4"]  # no partial dirs or uploads left


def test_redeploying_the_current_release_changes_nothing_and_another_archive_is_refused(fleet, pool, target, base,
                                                                                         lines):
    assert deploy_release(pool, target, base_dir=base, release_id="v1", archive=app("v1"), on_line=lines).ok
    assert deploy_release(pool, target, base_dir=base, release_id="v2", archive=app("v2"), on_line=lines).ok
    again = deploy_release(pool, target, base_dir=base, release_id="v2", archive=app("v2"), on_line=lines)
    assert (again.ok, again.changed, again.data["reused"], again.data["previous"]) == (True, False, True, "v1")
    other = deploy_release(pool, target, base_dir=base, release_id="v2", archive=app("v2-other"), on_line=lines)
    assert not other.ok and "already exists" in other.error
    assert fleet.exec(target.name, ["cat", f"{base}/current/VERSION"]).check().stdout == "v2\n"


def test_a_failing_restart_hook_is_reported_and_current_stays_on_the_new_release(fleet, pool, target, base, lines):
    result = deploy_release(pool, target, base_dir=base, release_id="v1", archive=app("v1"),
                            restart_hook="echo cannot start >&2; exit 4", on_line=lines)
    assert not result.ok and result.exit_code == 4 and result.changed
    assert "restart hook failed" in result.error
    assert lines.texts("stderr") == ["cannot start"]
    assert current(fleet, target.name, base) == "releases/v1"


def test_a_canceled_restart_hook_is_ended(fleet, pool, target, base, lines, unique):
    token = CancelToken()

    def cancel_when_started(stream, text):
        lines(stream, text)
        if text == "hook running":
            token.cancel()

    result = deploy_release(pool, target, base_dir=base, release_id="v1", archive=app("v1"),
                            restart_hook=f"echo hook running; python3 -c 'import time; time.sleep(300)' {unique}",
                            on_line=cancel_when_started, cancel=token)
    assert result.canceled and not result.ok
    assert fleet.exec(target.name, ["pgrep", "-f", unique]).exit_code == 1


@pytest.mark.parametrize("bad", [
    archive({"/etc/cron.d/evil": b"x"}),
    archive({"../../etc/cron.d/evil": b"x"}),
    archive({}, links=[("etc", "/etc")]),
    archive({}, links=[("up", "../../../")]),
])
def test_a_dangerous_archive_never_reaches_the_host(fleet, pool, target, base, lines, bad):
    with pytest.raises(ValueError):
        deploy_release(pool, target, base_dir=base, release_id="v1", archive=bad, on_line=lines)
    assert fleet.exec(target.name, ["test", "-e", base]).exit_code == 1
    assert pool.stats()["opened"] == 0


@pytest.mark.parametrize("release_id", ["$(touch /tmp/pwned)", "v1;touch /tmp/pwned", "`touch /tmp/pwned`", "..",
                                        "../v1", ".hidden"])
def test_hostile_release_ids_are_refused(fleet, pool, target, base, lines, release_id):
    with pytest.raises(ValueError):
        deploy_release(pool, target, base_dir=base, release_id=release_id, archive=app("v1"), on_line=lines)
    assert fleet.exec(target.name, ["test", "-e", "/tmp/pwned"]).exit_code == 1


def test_a_hostile_base_dir_stays_a_literal_directory_name(fleet, pool, target, unique, lines):
    fleet.exec(target.name, "rm -f /tmp/pwned; echo alive > /root/canary").check()
    base = f"/srv/{unique}$(touch pwned)`touch pwned`; touch pwned"
    result = deploy_release(pool, target, base_dir=base, release_id="v1", archive=app("v1"), on_line=lines)
    assert result.ok, result.error
    assert current(fleet, target.name, base) == "releases/v1"
    # An injected `touch pwned` would have made a file named exactly "pwned" wherever it ran.
    assert fleet.exec(target.name, ["find", "/", "-xdev", "-name", "pwned"]).check().stdout == ""
    assert fleet.exec(target.name, ["cat", "/root/canary"]).check().stdout == "alive\n"
    with pytest.raises(ValueError):
        deploy_release(pool, target, base_dir="/srv/../etc", release_id="v1", archive=app("v1"), on_line=lines)

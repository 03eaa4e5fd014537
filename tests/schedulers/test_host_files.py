"""Files on real hosts over SFTP: atomic writes, idempotent configuration files, drift, injection."""

import posixpath

import pytest

from schedulers.host import apply_file, put_file, read_file, run_capture, stat

pytestmark = pytest.mark.fleet

HOSTILE_NAMES = ["root; touch /tmp/pwned", "$(touch /tmp/pwned)", "`touch /tmp/pwned`", "root\ntouch"]


@pytest.fixture
def canary(fleet, target):
    """A file that must survive every injection attempt, and no /tmp/pwned afterwards."""
    fleet.exec(target.name, "rm -f /tmp/pwned; echo alive > /root/canary").check()
    yield
    assert fleet.exec(target.name, "cat /root/canary").check().stdout == "alive\n"
    assert fleet.exec(target.name, ["test", "-e", "/tmp/pwned"]).exit_code == 1, "an injected command ran"


def test_put_read_and_stat_a_file(pool, target, unique):
    path = f"/tmp/{unique}.bin"
    with pool.connection(target) as conn:
        assert read_file(conn, path) is None and stat(conn, path) is None
        put_file(conn, path, b"\x00binary\xff", mode=0o600)
        assert read_file(conn, path) == b"\x00binary\xff"
        info = stat(conn, path)
        assert (info["type"], info["mode"], info["size"], info["uid"]) == ("file", 0o600, 8, 0)
        put_file(conn, path, b"second")  # keeps the mode of the file it replaces
        assert (read_file(conn, path), stat(conn, path)["mode"]) == (b"second", 0o600)
        leftovers = conn.sftp().listdir("/tmp")
    assert not [name for name in leftovers if ".opsportal-" in name and name.endswith(".tmp")]


@pytest.mark.parametrize("path", ["relative/file", "/etc/../etc/passwd", "/tmp/a\x00b", "/tmp/..", ""])
def test_path_traversal_and_odd_paths_are_refused_before_anything_is_sent(pool, target, path):
    with pool.connection(target) as conn:
        with pytest.raises(ValueError):
            put_file(conn, path, b"x")
        with pytest.raises(ValueError):
            read_file(conn, path)
    with pytest.raises(ValueError):
        apply_file(pool, target, path=path, content=b"x")
    assert pool.stats()["opened"] == 1  # only the connection above: apply_file never connected


def test_apply_file_twice_changes_once(fleet, pool, target, unique):
    path = f"/etc/{unique}.conf"
    first = apply_file(pool, target, path=path, content=b"a=1\n", mode=0o640, owner="daemon", group="adm")
    assert (first.ok, first.changed, first.data["changes"]) == (True, True, ["created"])
    again = apply_file(pool, target, path=path, content=b"a=1\n", mode=0o640, owner="daemon", group="adm")
    assert (again.ok, again.changed, again.data["diff"]) == (True, False, "")
    assert fleet.exec(target.name, ["stat", "-c", "%a %U %G", path]).check().stdout.split() == ["640", "daemon", "adm"]


def test_apply_file_notices_mode_and_owner_alone(fleet, pool, target, unique):
    path = f"/etc/{unique}.conf"
    fleet.exec(target.name, f"printf 'a=1\\n' > {path}; chmod 644 {path}").check()
    result = apply_file(pool, target, path=path, content=b"a=1\n", mode=0o600, owner="daemon")
    assert result.changed and result.data["diff"] == ""
    assert result.data["changes"] == ["mode 0644 -> 0600", "owner 0 -> 1 (daemon)"]
    assert fleet.exec(target.name, ["stat", "-c", "%a %U", path]).check().stdout.split() == ["600", "daemon"]


def test_a_dry_run_shows_the_diff_and_changes_nothing(fleet, pool, target, unique):
    path = f"/etc/{unique}.conf"
    fleet.exec(target.name, f"printf 'a=1\\nb=2\\n' > {path}; chmod 644 {path}").check()
    result = apply_file(pool, target, path=path, content=b"a=1\nb=3\n", mode=0o600, dry_run=True)
    assert (result.ok, result.changed, result.data["dry_run"]) == (True, True, True)
    assert result.data["diff"] == f"--- {path}\n+++ {path}\n@@ -1,2 +1,2 @@\n a=1\n-b=2\n+b=3\n"
    assert "mode 0644 -> 0600" in result.data["changes"]
    after = fleet.exec(target.name, f"cat {path}; stat -c %a {path}").check().stdout
    assert after == "a=1\nb=2\n644\n"


def test_drift_made_behind_the_portals_back_shows_up_in_a_dry_run(fleet, pool, target, unique):
    path = f"/etc/{unique}.conf"
    assert apply_file(pool, target, path=path, content=b"listen 80\n", mode=0o644).changed
    fleet.exec(target.name, f"echo 'listen 8080' > {path}").check()  # someone edits the host by hand
    drift = apply_file(pool, target, path=path, content=b"listen 80\n", mode=0o644, dry_run=True)
    assert drift.changed and drift.data["changes"] == ["content"]
    assert "-listen 8080\n+listen 80\n" in drift.data["diff"]
    assert apply_file(pool, target, path=path, content=b"listen 80\n", mode=0o644).changed
    assert not apply_file(pool, target, path=path, content=b"listen 80\n", mode=0o644, dry_run=True).changed


def test_refuses_to_replace_a_symlink_or_write_into_a_missing_directory(fleet, pool, target, unique):
    link = f"/tmp/{unique}.link"
    fleet.exec(target.name, f"ln -s /etc/passwd {link}").check()
    result = apply_file(pool, target, path=link, content=b"x")
    assert not result.ok and "is a symlink" in result.error
    missing = apply_file(pool, target, path=f"/nonexistent-{unique}/app.conf", content=b"x")
    assert not missing.ok and "does not exist" in missing.error
    assert fleet.exec(target.name, f"readlink {link}").check().stdout.strip() == "/etc/passwd"


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_owner_and_group_names_are_refused(pool, target, canary, name, unique):
    for field in ("owner", "group"):
        with pytest.raises(ValueError):
            apply_file(pool, target, path=f"/tmp/{unique}", content=b"x", **{field: name})


def test_an_unknown_owner_is_an_error_not_a_guess(pool, target, unique):
    result = apply_file(pool, target, path=f"/tmp/{unique}", content=b"x", owner="nosuchuser")
    assert not result.ok and result.error == f"no user 'nosuchuser' on {target.name}"


def test_shell_characters_in_paths_stay_literal(fleet, pool, target, canary, unique):
    """Each path is a real (odd) file name; its directories are made with an argv, not a shell."""
    paths = [f"/tmp/{unique} ; touch /tmp/pwned", f"/tmp/{unique}$(touch /tmp/pwned)",
             f"/tmp/{unique}`touch /tmp/pwned`", f"/tmp/{unique}' && touch /tmp/pwned '"]
    for path in paths:
        fleet.exec(target.name, ["mkdir", "-p", posixpath.dirname(path)]).check()
        assert apply_file(pool, target, path=path, content=b"literal\n", owner="root", mode=0o600).changed
        assert fleet.exec(target.name, ["cat", path]).check().stdout == "literal\n"
        with pool.connection(target) as conn:
            assert read_file(conn, path) == b"literal\n"
        result, out, _ = run_capture(pool, target, "pwd", cwd=posixpath.dirname(path))
        assert (result.ok, out) == (True, posixpath.dirname(path))


def test_refuses_a_directory_reached_through_a_symlink(fleet, pool, target, unique):
    """/etc/app -> /root/.ssh must not let a configuration land in (or be read from) /root/.ssh."""
    real, link = f"/tmp/{unique}-real", f"/tmp/{unique}-link"
    fleet.exec(target.name, f"mkdir {real} && printf 'secret\\n' > {real}/app.conf && ln -s {real} {link} "
                            f"&& mkdir {real}/sub && ln -s {real}/sub {real}/via").check()
    for path in (f"{link}/app.conf", f"{link}/new.conf", f"{real}/via/app.conf"):
        for dry_run in (True, False):
            result = apply_file(pool, target, path=path, content=b"pwned\n", dry_run=dry_run)
            assert not result.ok and "through a symlink" in result.error, (path, result)
            assert "secret" not in result.data.get("diff", "")
    assert fleet.exec(target.name, f"cat {real}/app.conf; ls {real}; ls {real}/sub").check().stdout.split() == [
        "secret", "app.conf", "sub", "via"]
    assert apply_file(pool, target, path=f"{real}/app.conf", content=b"ok\n").ok  # the real path works

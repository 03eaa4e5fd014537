"""Running commands on real sshd hosts: streaming, exit codes, cancel and timeout that really end things."""

import threading
import time

import pytest

from schedulers.host import CancelToken, ConnectionLost, SSHPool, connect, end_remote_session, run_capture, run_command

pytestmark = pytest.mark.fleet

# A process whose command line carries the marker, so `pgrep -f` finds it and its children.
SLEEPER = "python3 -c 'import time; time.sleep(300)' {marker}"


def remote_matches(fleet, host, marker):
    """Processes on the host whose command line contains marker, seen through docker exec (not SSH)."""
    found = fleet.exec(host, ["pgrep", "-af", marker])  # pgrep never matches itself
    return found.stdout.strip().splitlines() if found.exit_code == 0 else []


def test_streams_each_line_as_it_arrives(pool, target, lines):
    result = run_command(pool, target, "echo a; sleep 2; echo b", on_line=lines)
    finished = time.monotonic() - lines.started
    assert result.ok and result.exit_code == 0
    (t_a, _, a), (t_b, _, b) = lines.seen
    assert (a, b) == ("a", "b")
    assert t_b - t_a > 1.5, "b came with a: output was not streamed"
    assert finished - t_a > 1.5, "a arrived only when the command ended"


def test_keeps_stdout_and_stderr_apart_and_reports_the_exit_code(pool, target, lines):
    result = run_command(pool, target, "echo out; echo err >&2; printf 'no newline'; exit 3", on_line=lines)
    assert (result.exit_code, result.ok, result.error) == (3, False, "")
    assert lines.texts("stdout") == ["out", "no newline"]
    assert lines.texts("stderr") == ["err"]


def test_an_endless_line_arrives_in_pieces_and_utf8_survives(pool, target, lines):
    result = run_command(pool, target, "head -c 200000 /dev/zero | tr '\\0' x; echo; echo 'größe ✓'",
                         on_line=lines)
    assert result.ok
    *pieces, last = lines.texts("stdout")
    assert "".join(pieces) == "x" * 200000 and max(len(p) for p in pieces) <= 64 * 1024
    assert last == "größe ✓"


def test_passes_environment_and_working_directory_as_data(pool, target, lines):
    value = "it's $(touch /tmp/pwned) `id` ; rm -rf /"
    result = run_command(pool, target, 'printf "%s\\n" "$SECRET_VALUE"; pwd', on_line=lines,
                         env={"SECRET_VALUE": value}, cwd="/etc")
    assert result.ok
    assert lines.texts("stdout") == [value, "/etc"]


def test_reuses_the_pooled_connection_across_commands(pool, target):
    for _ in range(3):
        assert run_capture(pool, target, "true")[0].ok
    assert pool.stats()["opened"] == 1


def test_cancel_ends_the_whole_remote_process_group(fleet, pool, target, unique, lines):
    """A command with children; cancel returns only once nothing of it is left on the host."""
    command = f"{SLEEPER.format(marker=unique)} & {SLEEPER.format(marker=unique)}; echo never"
    token = CancelToken()
    timer = threading.Thread(target=lambda: (time.sleep(1.0), token.cancel()))
    timer.start()
    started = time.monotonic()
    result = run_command(pool, target, command, on_line=lines, cancel=token)
    timer.join()
    assert result.canceled and not result.timed_out and not result.error
    assert 1.0 <= time.monotonic() - started < 6
    assert "never" not in lines.texts()
    assert remote_matches(fleet, target.name, unique) == []


def test_a_timeout_kills_what_ignores_term(fleet, pool, target, unique, lines):
    stubborn = (f"trap '' TERM; python3 -c 'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                f"print(\"up\", flush=True); time.sleep(300)' {unique}")
    started = time.monotonic()
    result = run_command(pool, target, stubborn, on_line=lines, timeout=1.5, kill_grace=0.5)
    assert result.timed_out and not result.canceled
    assert result.error == "timed out after 1.5s"
    assert result.exit_code == 137  # SIGKILL: TERM was ignored
    assert 1.5 <= time.monotonic() - started < 8
    assert lines.texts("stdout") == ["up"]
    assert remote_matches(fleet, target.name, unique) == []


def test_background_leftovers_end_with_their_command(fleet, pool, target, unique):
    result, out, _ = run_capture(pool, target, f"{SLEEPER.format(marker=unique)} >/dev/null 2>&1 & echo started")
    assert (result.ok, out) == (True, "started")
    assert remote_matches(fleet, target.name, unique) == []


def test_a_failing_callback_still_ends_the_remote_command(fleet, pool, target, unique):
    def explode(stream, text):
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        run_command(pool, target, f"echo hello; {SLEEPER.format(marker=unique)}", on_line=explode)
    assert remote_matches(fleet, target.name, unique) == []


def test_many_threads_share_the_pool_safely(pool, targets):
    """24 commands from 12 threads over 8 connections: every output lands with its own call."""
    jobs = [(targets[i % len(targets)], i) for i in range(24)]
    results = {}

    def one(job):
        target, index = job
        result, out, _ = run_capture(pool, target, f"echo {index} $(hostname)")
        results[index] = (result.ok, out)

    threads = [threading.Thread(target=lambda chunk=jobs[n::12]: [one(j) for j in chunk]) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {index: (True, f"{index} {target.name}") for target, index in jobs}
    assert pool.stats()["leased"] == 0 and pool.stats()["idle"] <= 8


def test_a_host_stopped_mid_command_is_a_lost_connection_in_plain_words(fleet, targets, lines):
    """Not exit -1 and silence: the caller learns the connection went, and marks the host unreachable."""
    target = targets[-1]
    outcome = {}

    def run():
        with SSHPool(2) as pool:
            try:
                outcome["result"] = run_command(pool, target, "echo begun; sleep 60", on_line=lines)
            except Exception as exc:  # noqa: BLE001 (the assertion below says which)
                outcome["error"] = exc

    runner = threading.Thread(target=run)
    runner.start()
    deadline = time.monotonic() + 30
    while "begun" not in lines.texts() and time.monotonic() < deadline:
        time.sleep(0.1)
    fleet.stop_host(target.name, timeout=1)
    try:
        runner.join(60)
    finally:
        fleet.start_host(target.name)
    assert not runner.is_alive()
    error = outcome.get("error")
    assert isinstance(error, ConnectionLost), outcome
    assert f"connection to {target.name} lost during the command" in str(error)
    assert lines.texts("stdout") == ["begun"]


def _left_running(target, command, tag):
    """Start a command, learn its session, then drop the connection as a dying worker would."""
    sessions = []
    conn = connect(target)

    def run():
        try:
            run_command(conn, target, command, on_line=lambda *a: None, env=dict([tag.split("=", 1)]),
                        on_session=sessions.append)
        except ConnectionLost:
            pass

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    deadline = time.monotonic() + 30
    while not sessions and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sessions, "no session id was reported"
    conn.transport.sock.close()  # no goodbye: the process that held it is gone
    runner.join(30)
    conn.close()
    return sessions[0]


def test_a_session_left_by_a_dead_caller_is_ended_by_its_id(fleet, pool, target, unique):
    sid = _left_running(target, SLEEPER.format(marker=unique), "OPSPORTAL_JOB=4242")
    assert remote_matches(fleet, target.name, unique), "the command should outlive its connection"
    gone, evidence = end_remote_session(pool, target, sid, tag="OPSPORTAL_JOB=4242", grace=0.5)
    assert (gone, evidence) == (True, "")
    assert remote_matches(fleet, target.name, unique) == []
    # Ending it again finds nothing left.
    assert end_remote_session(pool, target, sid, tag="OPSPORTAL_JOB=4242")[0] is True


def test_a_session_of_another_job_is_left_alone(fleet, pool, target, unique):
    sid = _left_running(target, SLEEPER.format(marker=unique), "OPSPORTAL_JOB=5151")
    try:
        gone, evidence = end_remote_session(pool, target, sid, tag="OPSPORTAL_JOB=9999", grace=0.5)
        assert gone is False and "left alone" in evidence
        assert remote_matches(fleet, target.name, unique), "a session without the tag must survive"
    finally:
        assert end_remote_session(pool, target, sid, tag="OPSPORTAL_JOB=5151", grace=0.5)[0]

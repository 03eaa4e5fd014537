"""Shells run argv lists, locally and over SSH, with stdin, and end what they started on cancel."""

import threading
import time

import pytest

from schedulers.base import BackendError, CancelToken
from schedulers.process.shells import LocalShell, SSHShell, decode_payload, python_argv

HOSTILE = "a b; echo pwned > /tmp/pwned-$$ `id` $(id) 'quote' \"dq\" \\ *"


def test_local_shell_passes_argv_untouched_and_feeds_stdin():
    shell = LocalShell()
    result = shell.run(["python3", "-c", "import sys; print(sys.argv[1:]); print(sys.stdin.read())", HOSTILE],
                       stdin=b"from stdin\n")
    assert result.ok
    assert result.text() == f"{[HOSTILE]!r}\nfrom stdin\n\n"


def test_local_shell_reports_exit_code_and_stderr_and_env():
    result = LocalShell().run(["sh", "-c", 'echo "$X" >&2; exit 4'], env={"X": "given"})
    assert (result.exit_code, result.stdout, result.stderr) == (4, b"", b"given\n")


def test_local_shell_timeout_ends_the_process_group(tmp_path):
    marker = tmp_path / "alive"
    started = time.monotonic()
    with pytest.raises(BackendError, match="timed out after 0.5s"):
        LocalShell().run(["sh", "-c", f"(sleep 3; touch {marker}) & sleep 30"], timeout=0.5)
    assert time.monotonic() - started < 10
    time.sleep(3.5)
    assert not marker.exists(), "a child of the timed out command survived it"


def test_local_shell_stream_stops_on_cancel():
    seen, cancel = [], CancelToken()
    threading.Timer(1.0, cancel.cancel).start()
    code = LocalShell().stream(["sh", "-c", "while true; do echo tick; sleep 0.2; done"],
                               on_line=lambda stream, text: seen.append((stream, text)), cancel=cancel)
    assert code != 0 and ("stdout", "tick") in seen


def test_unknown_program_is_a_backend_error():
    with pytest.raises(BackendError, match="could not start /nonexistent/program"):
        LocalShell().run(["/nonexistent/program"])


def test_argv_must_be_a_list_of_strings():
    for bad in ("echo hi", [], ["echo", 3], ["echo", "a\x00b"]):
        with pytest.raises(ValueError):
            LocalShell().run(bad)


def test_python_argv_runs_a_compressed_script_with_arguments():
    source = ("import sys, json, gzip, base64\n"
              "doc = json.dumps({'args': sys.argv[1:], 'main': __name__}).encode()\n"
              "print('OPSPORTAL-PAYLOAD'); print(base64.encodebytes(gzip.compress(doc)).decode())\n")
    result = LocalShell().run(python_argv(source, "x y", HOSTILE))
    assert decode_payload(result.text()) == {"args": ["x y", HOSTILE], "main": "__main__"}


@pytest.mark.fleet
def test_ssh_shell_quotes_argv_and_feeds_stdin(fleet, pool, target):
    shell = SSHShell(pool, target)
    result = shell.run(["python3", "-c", "import sys; print(sys.argv[1:]); print(sys.stdin.read())", HOSTILE],
                       stdin=b"line one\nline two")
    assert result.ok and result.text() == f"{[HOSTILE]!r}\nline one\nline two\n"
    assert fleet.exec(target.name, "ls /tmp | grep -c pwned || true").stdout.strip() == "0"
    assert shell.run(["cat"]).stdout == b"", "without stdin a command reads end of file"
    failed = shell.run(["sh", "-c", 'echo "$X" >&2; exit 5'], env={"X": "v"})
    assert (failed.exit_code, failed.stderr) == (5, b"v\n")


@pytest.mark.fleet
def test_ssh_shell_timeout_raises_and_leaves_nothing_running(fleet, pool, target, unique):
    shell = SSHShell(pool, target)
    with pytest.raises(BackendError, match="timed out"):
        shell.run(["sh", "-c", f"sleep 60 # {unique}"], timeout=1)
    assert fleet.exec(target.name, ["pgrep", "-f", unique]).exit_code == 1


@pytest.mark.fleet
def test_ssh_shell_stream_cancel_ends_the_remote_command(fleet, pool, target, unique):
    shell, seen, cancel = SSHShell(pool, target), [], CancelToken()
    threading.Timer(1.5, cancel.cancel).start()
    shell.stream(["sh", "-c", f"while true; do echo {unique}; sleep 0.2; done"],
                 on_line=lambda stream, text: seen.append(text), cancel=cancel)
    assert unique in seen
    assert fleet.exec(target.name, ["pgrep", "-f", unique]).exit_code == 1

"""The command-line client (cli/): importable from its source tree without installing it, run as
a subprocess against a live portal the way a pipeline runs it."""
import os
import subprocess
import sys
import threading

import pytest

from tests.helpers import ROOT
from tests.jobs.conftest import fleet_env  # noqa: F401 (the fleet hosts in the inventory, for tests/cli too)
from tests.schedulers.conftest import ct_images, engine, local_engine_spec, prefix  # noqa: F401 (engine, images)

CLI_SRC = ROOT / "cli" / "src"
if str(CLI_SRC) not in sys.path:
    sys.path.insert(0, str(CLI_SRC))


def cli_env(url, token, home):
    """The environment of a pipeline step: the portal's address and token, nothing of Django's."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "PYTHONPATH": str(CLI_SRC),
           "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
    if url is not None:
        env["PORTAL_URL"] = url
    if token is not None:
        env["PORTAL_TOKEN"] = token
    return env


class Run:
    """A running `opsportal`: its stdout and stderr lines collected as they come."""

    def __init__(self, args, env):
        self.proc = subprocess.Popen([sys.executable, "-m", "opsportal_cli", *args], env=env, cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out, self.err = [], []
        self.readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.out), daemon=True),
                        threading.Thread(target=self._read, args=(self.proc.stderr, self.err), daemon=True)]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(pipe, lines):
        for line in pipe:
            lines.append(line.rstrip("\n"))

    def wait(self, timeout=180):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"opsportal did not end in {timeout}s:\n{self.text()}") from None
        for reader in self.readers:
            reader.join(5)
        return self.proc.returncode

    def text(self):
        return "stdout:\n" + "\n".join(self.out) + "\nstderr:\n" + "\n".join(self.err)

    @property
    def stdout(self):
        return "\n".join(self.out) + ("\n" if self.out else "")

    @property
    def stderr(self):
        return "\n".join(self.err) + ("\n" if self.err else "")


@pytest.fixture
def opsportal(tmp_path):
    """opsportal(*args, url=, token=, wait=True) -> a finished (or, wait=False, running) Run."""

    def run(*args, url, token, wait=True, timeout=180):
        process = Run([str(a) for a in args], cli_env(url, token, tmp_path))
        if wait:
            process.wait(timeout)
        return process

    return run

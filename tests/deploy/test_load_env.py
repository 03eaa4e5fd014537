"""scripts/load-env.sh: var/portal.env fills in what the environment does not set, and only that."""
import subprocess

from tests.helpers import ROOT


def _load(tmp_path, text, env):
    env_file = tmp_path / "portal.env"
    env_file.write_text(text)
    script = f'set -euo pipefail; . scripts/load-env.sh "{env_file}"; env'
    result = subprocess.run(["bash", "-c", script], cwd=ROOT, env={"PATH": "/usr/bin:/bin", **env},
                            capture_output=True, text=True, check=True, timeout=30)
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line), result.stderr


def test_the_environment_wins_over_the_file(tmp_path):
    values, _ = _load(tmp_path, "DEBUG=false\nALLOWED_HOSTS=127.0.0.1\nHTTPS=false\n",
                      {"DEBUG": "true", "ALLOWED_HOSTS": "portal.example"})
    assert values["DEBUG"] == "true" and values["ALLOWED_HOSTS"] == "portal.example"
    assert values["HTTPS"] == "false"  # not set outside: the file's value


def test_the_file_is_read_not_executed(tmp_path):
    marker = tmp_path / "ran"
    text = (f"# comment\n\nQUOTED=\"two words\"\nexport EXPORTED=1\nINJECTED=$(touch {marker})\n"
            f"touch {marker}\nSECRET_KEY=a=b=c\n")
    values, stderr = _load(tmp_path, text, {})
    assert values["QUOTED"] == "two words" and values["EXPORTED"] == "1" and values["SECRET_KEY"] == "a=b=c"
    assert values["INJECTED"] == f"$(touch {marker})"
    assert not marker.exists()
    assert "not KEY=value" in stderr

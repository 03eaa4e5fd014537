"""The layer contracts (pyproject.toml, [tool.importlinter]) hold for the code as it is, and an
import that runs the wrong way breaks them: lint-imports, as `make test` and CI run it."""
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
WRONG_WAY = {  # file -> an import against the layers, and the contract it breaks
    "ops_portal/jobs/lifecycle.py": ("from ops_portal.jobs import tasks", "The jobs engine imports only downward"),
    "ops_portal/inventory/services.py": ("from ops_portal.jobs.models import Job", "Apps import only downward"),
    "schedulers/base.py": ("import django", "Backends know nothing of Django or the portal"),
}


def lint(tree):
    result = subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=tree, capture_output=True, text=True,
                            timeout=300)
    return result.returncode, result.stdout + result.stderr


def copy_tree(tmp_path):
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("ops_portal", "schedulers"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_code_keeps_every_layer_contract():
    code, output = lint(ROOT)
    assert code == 0, output
    assert "0 broken" in output


def test_an_import_against_the_layers_breaks_its_contract(tmp_path):
    tree = copy_tree(tmp_path)
    for path, (statement, _) in WRONG_WAY.items():
        with open(tree / path, "a") as module:
            module.write(f"\n{statement}  # noqa\n")
    code, output = lint(tree)
    assert code == 1, output
    for _, contract in WRONG_WAY.values():
        assert f"{contract} BROKEN" in output, output
    assert "Inside the foundation: permission layer < core < audit < managing access KEPT" in output

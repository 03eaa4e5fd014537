"""Recipe hashes: the Python and shell implementations agree, and follow the recipe files."""

import shutil
import subprocess

import pytest

from fleet.recipes import RECIPES, REPO_ROOT, image_tags, recipe_files, recipe_hash


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_python_and_shell_hash_agree(recipe):
    shell = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "recipe-hash.sh"), recipe], capture_output=True, text=True, check=True
    )
    assert shell.stdout.strip() == recipe_hash(recipe)


def _copy_recipe(recipe, root):
    for rel in RECIPES[recipe]:
        src, dst = REPO_ROOT / rel, root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, symlinks=True)
        else:
            shutil.copy2(src, dst)


def test_hash_changes_with_any_recipe_file_and_only_then(tmp_path):
    _copy_recipe("host", tmp_path)
    before = recipe_hash("host", tmp_path)
    assert before == recipe_hash("host")

    (tmp_path / "fleet/images/host/__pycache__").mkdir()
    (tmp_path / "fleet/images/host/__pycache__/x.pyc").write_bytes(b"junk")
    assert recipe_hash("host", tmp_path) == before

    packages = tmp_path / "fleet/images/host/packages"
    packages.write_text(packages.read_text() + "curl\n")
    assert recipe_hash("host", tmp_path) != before


def test_recipe_covers_its_build_script_and_files():
    files = recipe_files("host")
    assert "scripts/build-host-image.sh" in files
    assert "fleet/images/host/rootfs/usr/local/sbin/fleet-init" in files
    assert files == sorted(files)


def test_images_are_tagged_with_their_recipe_hash():
    tags = image_tags()
    assert tags["host"] == (f"opsportal/host:{recipe_hash('host')}", "opsportal/host:latest")
    assert tags["systemd"] == (f"opsportal/host-systemd:{recipe_hash('systemd')}", "opsportal/host-systemd:latest")
    assert tags["pm2"] == (f"opsportal/host-pm2:{recipe_hash('pm2')}", "opsportal/host-pm2:latest")
    assert tags["puppet"] == (f"opsportal/host-puppet:{recipe_hash('puppet')}", "opsportal/host-puppet:latest")
    assert tags["web:v1"][1] == "opsportal/web:v1"
    assert tags["web:v2"][1] == "opsportal/web:v2"
    assert tags["burner"][1] == "opsportal/burner:latest"
    assert tags["crasher"][1] == "opsportal/crasher:latest"

"""Build the fleet images when their recipe changed, reuse them otherwise."""

import subprocess

import docker

from .engine import docker_client
from .recipes import BUILD_SCRIPTS, RECIPES, REPO_ROOT, image_tags, recipe_hash, recipe_of


class ImageBuildError(RuntimeError):
    """A build script failed."""


def _image_id(client, ref):
    try:
        return client.images.get(ref).id
    except docker.errors.ImageNotFound:
        return None


def missing_images(client=None):
    """Return the recipes (keys of RECIPES) whose images or stable tags are not in place."""
    client = client or docker_client()
    tags = image_tags({name: recipe_hash(name) for name in RECIPES})
    stale = set()
    for image, (hash_tag, stable_tag) in tags.items():
        built = _image_id(client, hash_tag)
        if built is None or _image_id(client, stable_tag) != built:
            stale.add(recipe_of(image))
    return sorted(stale)


def build(recipe, force=False, timeout=1800):
    """Run the recipe's build script; return the tags it printed."""
    script, *args = BUILD_SCRIPTS[recipe]
    script = REPO_ROOT / script
    cmd = ["bash", str(script), *args] + (["--force"] if force else [])
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ImageBuildError(f"{script} did not complete: {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
        raise ImageBuildError(f"{script} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout.split()


def ensure_images(force=False, client=None):
    """Build the fleet images that are missing (or all, with force); return {image: hash tag}.

    Images are keyed "host", "systemd", "pm2", "puppet" (the host kinds), "web:v1", "web:v2", "burner",
    "crasher". When every image of the current recipes exists, this only asks the engine and
    builds nothing.
    """
    client = client or docker_client()
    todo = sorted(RECIPES) if force else missing_images(client)
    for recipe in todo:
        build(recipe, force=force)
    return {image: hash_tag for image, (hash_tag, _) in image_tags().items()}

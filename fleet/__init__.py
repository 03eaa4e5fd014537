"""Fleet tooling for the ops portal's tests and demo: a Docker engine, images, and sshd hosts.

Django-free. The public API:

    ensure_engine()                      make sure dockerd answers, in Swarm mode
    ensure_images(force=False)           build the images whose recipe changed
    Fleet.up(n, run_id=None, name_prefix="host") -> Fleet
    Fleet.load(run_id=None) -> Fleet     from var/fleet/<run id or current>/inventory.json
    cleanup_leftovers()                  remove what crashed runs left behind

See docs/FLEET.md.
"""

from .engine import EngineError, docker_client, ensure_engine, swarm_state
from .hosts import Fleet, FleetError, Host, cleanup_leftovers, list_runs, remove_run
from .images import ImageBuildError, ensure_images
from .recipes import image_tags, recipe_hash
from .ssh import CommandResult

__all__ = [
    "CommandResult",
    "EngineError",
    "Fleet",
    "FleetError",
    "Host",
    "ImageBuildError",
    "cleanup_leftovers",
    "docker_client",
    "ensure_engine",
    "ensure_images",
    "image_tags",
    "list_runs",
    "recipe_hash",
    "remove_run",
    "swarm_state",
]

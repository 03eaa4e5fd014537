"""Image recipes: the files that define each fleet image, and their hash.

An image is tagged with the hash of its recipe and rebuilt only when that hash has no
image yet. scripts/lib/fleet-common.sh computes the same hash in shell (the build
scripts tag with it); tests/fleet checks that both agree.
"""

import hashlib
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# Keep in step with fleet_recipe_paths in scripts/lib/fleet-common.sh. The host kinds other
# than "host" are the base host plus their own directory.
RECIPES = {
    "host": ("fleet/images/host", "scripts/build-host-image.sh", "scripts/lib/fleet-common.sh"),
    "systemd": ("fleet/images/host", "fleet/images/systemd", "scripts/build-host-image.sh",
                "scripts/lib/fleet-common.sh"),
    "pm2": ("fleet/images/host", "fleet/images/pm2", "scripts/build-host-image.sh", "scripts/lib/fleet-common.sh"),
    "puppet": ("fleet/images/host", "fleet/images/puppet", "scripts/build-host-image.sh",
               "scripts/lib/fleet-common.sh"),
    "apps": ("fleet/images/apps", "scripts/build-app-images.sh", "scripts/lib/fleet-common.sh"),
}

# The build command of each recipe: script and arguments (--force is added when asked).
BUILD_SCRIPTS = {
    "host": ("scripts/build-host-image.sh", "host"),
    "systemd": ("scripts/build-host-image.sh", "systemd"),
    "pm2": ("scripts/build-host-image.sh", "pm2"),
    "puppet": ("scripts/build-host-image.sh", "puppet"),
    "apps": ("scripts/build-app-images.sh",),
}

# Host kinds, each an image of its own (its key in image_tags() is the kind):
#   host     tini runs fleet-init: supervisord with demo programs, then sshd
#   systemd  systemd as PID 1; sshd and supervisord are its units
#   pm2      as host, plus Node.js and a PM2 daemon started at boot
#   puppet   as host, plus Debian's puppet-agent (puppet, facter, Ruby); no agent configured
HOST_KINDS = ("host", "systemd", "pm2", "puppet")


def var_dir():
    """Return the project's var/ directory (FLEET_VAR overrides it)."""
    return Path(os.environ.get("FLEET_VAR") or REPO_ROOT / "var")


def recipe_files(name, root=REPO_ROOT):
    """Return the recipe's files as sorted paths relative to root (as `find -type f` sees them)."""
    found = []
    for rel in RECIPES[name]:
        path = root / rel
        if path.is_file() and not path.is_symlink():
            found.append(rel)
            continue
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for filename in filenames:
                full = Path(dirpath) / filename
                if filename.endswith(".pyc") or full.is_symlink() or not full.is_file():
                    continue
                found.append(full.relative_to(root).as_posix())
    return sorted(found, key=lambda p: p.encode())


def recipe_hash(name, root=REPO_ROOT):
    """Return the 12-hex-digit hash of the recipe `name` (a key of RECIPES)."""
    lines = []
    for rel in recipe_files(name, root):
        digest = hashlib.sha256((root / rel).read_bytes()).hexdigest()
        lines.append(f"{digest}  {rel}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()[:12]


def image_tags(hashes=None):
    """Return {image: (hash tag, stable tag)} for every fleet image."""
    hashes = hashes or {name: recipe_hash(name) for name in RECIPES}
    apps = hashes["apps"]
    return {
        "host": (f"opsportal/host:{hashes['host']}", "opsportal/host:latest"),
        "systemd": (f"opsportal/host-systemd:{hashes['systemd']}", "opsportal/host-systemd:latest"),
        "pm2": (f"opsportal/host-pm2:{hashes['pm2']}", "opsportal/host-pm2:latest"),
        "puppet": (f"opsportal/host-puppet:{hashes['puppet']}", "opsportal/host-puppet:latest"),
        "web:v1": (f"opsportal/web:v1-{apps}", "opsportal/web:v1"),
        "web:v2": (f"opsportal/web:v2-{apps}", "opsportal/web:v2"),
        "burner": (f"opsportal/burner:{apps}", "opsportal/burner:latest"),
        "crasher": (f"opsportal/crasher:{apps}", "opsportal/crasher:latest"),
    }


def recipe_of(image):
    """Return the recipe name that builds the image key from image_tags()."""
    return image if image in HOST_KINDS else "apps"

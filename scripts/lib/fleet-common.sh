# Shared helpers for the fleet scripts. Source it; do not run it.
# shellcheck shell=bash

FLEET_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
FLEET_VAR="${FLEET_VAR:-$FLEET_ROOT/var}"

fleet_log() { printf '%s %s\n' "[$(date +%H:%M:%S)] ${FLEET_LOG_TAG:-fleet}:" "$*" >&2; }
fleet_die() { fleet_log "error: $*"; exit 1; }

# Run a command as root: directly when we are root, else through sudo.
fleet_as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

# Print the recipe hash of the given paths (relative to the repository root).
#
# The hash covers the relative path and content of every file below the paths,
# in byte order of the path; fleet/recipes.py computes the same value in Python
# and tests/fleet checks that both agree. Twelve hex digits are enough to tell
# recipes apart and short enough for an image tag.
fleet_recipe_hash() {
    (
        cd "$FLEET_ROOT" || exit 1
        find "$@" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
            | LC_ALL=C sort -z \
            | xargs -0 -r sha256sum \
            | sha256sum | cut -c1-12
    )
}

# The paths that define each recipe. Keep in step with fleet/recipes.py.
fleet_recipe_paths() {
    case "$1" in
        host) echo "fleet/images/host scripts/build-host-image.sh scripts/lib/fleet-common.sh" ;;
        # The other host kinds are the base host plus their own directory.
        systemd) echo "fleet/images/host fleet/images/systemd scripts/build-host-image.sh scripts/lib/fleet-common.sh" ;;
        pm2) echo "fleet/images/host fleet/images/pm2 scripts/build-host-image.sh scripts/lib/fleet-common.sh" ;;
        puppet) echo "fleet/images/host fleet/images/puppet scripts/build-host-image.sh scripts/lib/fleet-common.sh" ;;
        apps) echo "fleet/images/apps scripts/build-app-images.sh scripts/lib/fleet-common.sh" ;;
        *) fleet_die "unknown recipe: $1" ;;
    esac
}

fleet_image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# Serialise builds: two sessions building the same recipe would waste minutes.
fleet_build_lock() {
    mkdir -p "$FLEET_VAR/cache/fleet"
    exec 9>"$FLEET_VAR/cache/fleet/build.lock"
    flock 9
}

# Untag images of REPO built from other recipes than HASH. An image that a
# container still uses keeps its layers (docker only drops the tag).
fleet_prune_old_tags() {
    local repo="$1" hash="$2" tag
    docker image ls --format '{{.Tag}}' "$repo" | while read -r tag; do
        case "$tag" in
            *"$hash"*) ;;
            *[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f])
                if docker image rm "$repo:$tag" >/dev/null 2>&1; then fleet_log "untagged old $repo:$tag"; fi
                ;;
        esac
    done
}

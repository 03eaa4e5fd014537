#!/usr/bin/env bash
# Build the fleet host image (Debian bookworm with sshd, python3, supervisord) offline
# of any image registry: mmdebstrap makes the root filesystem on a tmpfs from Debian's
# mirror (with a cache of .deb files under var/cache/fleet/apt), docker import loads it.
#
# Tags: opsportal/host:<recipe hash> and opsportal/host:latest. When the hash tag
# exists already, only `latest` is (re)pointed at it, unless --force is given.
#
# Environment: FLEET_DEBIAN_MIRROR (default http://deb.debian.org/debian),
# FLEET_DEBIAN_SECURITY (default http://deb.debian.org/debian-security),
# FLEET_BUILD_TMP (tmpfs for the build, default /dev/shm).
set -euo pipefail
export FLEET_LOG_TAG=build-host-image
# shellcheck source=lib/fleet-common.sh
. "$(dirname "$0")/lib/fleet-common.sh"

FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

REPO=opsportal/host
RECIPE="$FLEET_ROOT/fleet/images/host"
# shellcheck disable=SC2046
HASH="$(fleet_recipe_hash $(fleet_recipe_paths host))"
TAG="$REPO:$HASH"
MIRROR="${FLEET_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY="${FLEET_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}"
CACHE="$FLEET_VAR/cache/fleet/apt"
BUILD_TMP="${FLEET_BUILD_TMP:-/dev/shm}"

fleet_build_lock
if [ "$FORCE" -eq 0 ] && fleet_image_exists "$TAG"; then
    docker tag "$TAG" "$REPO:latest"
    fleet_prune_old_tags "$REPO" "$HASH"
    fleet_log "$TAG exists; tagged latest"
    echo "$TAG"
    exit 0
fi

command -v mmdebstrap >/dev/null || fleet_die "mmdebstrap missing: run scripts/ensure-docker.sh"
mkdir -p "$CACHE"
WORK="$(mktemp -d "$BUILD_TMP/opsportal-host.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

LOG="$FLEET_VAR/cache/fleet/build-host.log"
packages="$(grep -v '^\s*#' "$RECIPE/packages" | grep -v '^\s*$' | paste -sd, -)"
started=$SECONDS
fleet_log "building $TAG (packages: $packages)"

# SOURCE_DATE_EPOCH: the same mtimes for files the build makes, so rebuilds from the
# same packages give the same tree.
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1700000000}" TMPDIR="$WORK" mmdebstrap \
    ${FLEET_MMDEBSTRAP_VERBOSITY:---quiet} \
    --variant=minbase \
    --include="$packages" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --aptopt='Acquire::Languages "none"' \
    --skip=download/empty \
    --skip=essential/unlink \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in '$CACHE' /var/cache/apt/archives/" \
    --customize-hook="sync-out /var/cache/apt/archives '$CACHE'" \
    --customize-hook="'$RECIPE/customize.sh' \"\$1\"" \
    --format=tar \
    bookworm "$WORK/rootfs.tar" \
    "deb $MIRROR bookworm main" \
    "deb $MIRROR bookworm-updates main" \
    "deb $SECURITY bookworm-security main" \
    >"$LOG" 2>&1 || { tail -n 40 "$LOG" >&2; fleet_die "mmdebstrap failed (log: $LOG)"; }
built=$SECONDS

docker import \
    --change 'ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/sbin/fleet-init"]' \
    --change 'EXPOSE 22' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL org.opencontainers.image.title=opsportal-host opsportal.recipe=$HASH" \
    "$WORK/rootfs.tar" "$TAG" >/dev/null
docker tag "$TAG" "$REPO:latest"
fleet_prune_old_tags "$REPO" "$HASH"
size="$(docker image inspect -f '{{.Size}}' "$TAG")"
fleet_log "built $TAG in $((SECONDS - started))s (rootfs $((built - started))s, import $((SECONDS - built))s, $((size / 1000000)) MB)"
echo "$TAG"

#!/usr/bin/env bash
# Build a fleet host image (Debian bookworm with sshd, python3, supervisord) offline
# of any image registry: mmdebstrap makes the root filesystem on a tmpfs from Debian's
# mirror (with a cache of .deb files under var/cache/fleet/apt), docker import loads it.
#
#   build-host-image.sh [--force] [KIND]
#
# KIND is one of
#   host     the base host: tini runs fleet-init (supervisord, then sshd)   opsportal/host
#   systemd  the base host booting systemd as PID 1, sshd and supervisord
#            as units                                                      opsportal/host-systemd
#   pm2      the base host plus Debian's nodejs and PM2 from the npm
#            registry (pinned by fleet/images/pm2/npm/package-lock.json)   opsportal/host-pm2
#   puppet   the base host plus Debian's puppet-agent (puppet, facter)     opsportal/host-puppet
#
# Tags: <repo>:<recipe hash> and <repo>:latest. When the hash tag exists already, only
# `latest` is (re)pointed at it, unless --force is given. A kind other than host is
# fleet/images/host plus fleet/images/<kind>: its `packages` are added to the host's, its
# customize.sh runs after the host's.
#
# Environment: FLEET_DEBIAN_MIRROR (default http://deb.debian.org/debian),
# FLEET_DEBIAN_SECURITY (default http://deb.debian.org/debian-security),
# FLEET_BUILD_TMP (tmpfs for the build, default /dev/shm).
set -euo pipefail
export FLEET_LOG_TAG=build-host-image
# shellcheck source=lib/fleet-common.sh
. "$(dirname "$0")/lib/fleet-common.sh"

FORCE=0
KIND=host
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        host | systemd | pm2 | puppet) KIND="$arg" ;;
        *) fleet_die "usage: $0 [--force] [host|systemd|pm2|puppet]" ;;
    esac
done
export FLEET_LOG_TAG="build-host-image[$KIND]"

case "$KIND" in
    host) REPO=opsportal/host ;;
    *) REPO="opsportal/host-$KIND" ;;
esac
BASE="$FLEET_ROOT/fleet/images/host"
KIND_DIR="$FLEET_ROOT/fleet/images/$KIND"
# shellcheck disable=SC2046
HASH="$(fleet_recipe_hash $(fleet_recipe_paths "$KIND"))"
TAG="$REPO:$HASH"
MIRROR="${FLEET_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY="${FLEET_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}"
CACHE="$FLEET_VAR/cache/fleet/apt"
BUILD_TMP="${FLEET_BUILD_TMP:-/dev/shm}"

# npm ci of a lock file into STAGE with the npm cache CACHE: offline when every tarball is
# cached, fetching only what is missing otherwise. Needs the build machine's npm (any
# version that reads lockfileVersion 3); PM2 is plain JavaScript, so the builder's Node.js
# need not match the image's.
fleet_npm_stage() {
    local src="$1" stage="$2" cache="$3" log="$FLEET_VAR/cache/fleet/build-$KIND-npm.log"
    command -v npm >/dev/null || fleet_die "npm missing on the build machine: apt-get install npm"
    mkdir -p "$stage" "$cache"
    cp "$src/package.json" "$src/package-lock.json" "$stage/"
    local args=(ci --omit=dev --ignore-scripts --no-audit --no-fund --no-update-notifier --cache "$cache")
    if (cd "$stage" && npm "${args[@]}" --offline) >"$log" 2>&1; then
        fleet_log "npm: installed from the cache"
    else
        fleet_log "npm: fetching what the cache lacks"
        (cd "$stage" && npm "${args[@]}" --prefer-offline) >>"$log" 2>&1 || fleet_die "npm ci failed (log: $log)"
    fi
}

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
WORK="$(mktemp -d "$BUILD_TMP/opsportal-$KIND.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

LOG="$FLEET_VAR/cache/fleet/build-$KIND.log"
package_files=("$BASE/packages")
[ "$KIND" = host ] || package_files+=("$KIND_DIR/packages")
packages="$(cat "${package_files[@]}" | grep -v '^\s*#' | grep -v '^\s*$' | paste -sd, -)"
started=$SECONDS
fleet_log "building $TAG (packages: $packages)"

# What each kind's image starts with.
entrypoint='["/usr/bin/tini", "--", "/usr/local/sbin/fleet-init"]'
customize=("--customize-hook='$BASE/customize.sh' \"\$1\"")
case "$KIND" in
    systemd)
        # systemd is PID 1 (it reaps). It halts on SIGRTMIN+3, which `docker import` cannot
        # set as the image's stop signal: the fleet passes it when it runs the container.
        entrypoint='["/usr/local/sbin/fleet-boot"]'
        customize+=("--customize-hook='$KIND_DIR/customize.sh' \"\$1\"")
        ;;
    pm2)
        # PM2 and its dependencies, exactly as the lock file pins them, from the npm cache
        # (var/cache/fleet/npm): once every tarball is cached, no network is needed.
        fleet_npm_stage "$KIND_DIR/npm" "$WORK/pm2" "$FLEET_VAR/cache/fleet/npm"
        customize+=("--customize-hook='$KIND_DIR/customize.sh' \"\$1\" '$WORK/pm2'")
        ;;
    puppet)
        customize+=("--customize-hook='$KIND_DIR/customize.sh' \"\$1\"")
        ;;
esac

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
    "${customize[@]}" \
    --format=tar \
    bookworm "$WORK/rootfs.tar" \
    "deb $MIRROR bookworm main" \
    "deb $MIRROR bookworm-updates main" \
    "deb $SECURITY bookworm-security main" \
    >"$LOG" 2>&1 || { tail -n 40 "$LOG" >&2; fleet_die "mmdebstrap failed (log: $LOG)"; }
built=$SECONDS

docker import \
    --change "ENTRYPOINT $entrypoint" \
    --change 'EXPOSE 22' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL org.opencontainers.image.title=opsportal-$KIND opsportal.recipe=$HASH opsportal.kind=$KIND" \
    "$WORK/rootfs.tar" "$TAG" >/dev/null
docker tag "$TAG" "$REPO:latest"
fleet_prune_old_tags "$REPO" "$HASH"
size="$(docker image inspect -f '{{.Size}}' "$TAG")"
fleet_log "built $TAG in $((SECONDS - started))s (rootfs $((built - started))s, import $((SECONDS - built))s, $((size / 1000000)) MB)"
echo "$TAG"

#!/usr/bin/env bash
# Build the fleet's app images FROM scratch with the build machine's static busybox
# (Debian's busybox-static): no image registry needed.
#
#   opsportal/web:v1, opsportal/web:v2   HTTP service answering hostname + version
#   opsportal/burner:latest              burns CPU on demand (autoscaling)
#   opsportal/crasher:latest             exits non-zero after a while (self-healing)
#
# Each also gets a recipe-hash tag (web:v1-<hash>, burner:<hash>, crasher:<hash>).
# When all hash tags exist, only the stable tags are (re)pointed, unless --force.
set -euo pipefail
export FLEET_LOG_TAG=build-app-images
# shellcheck source=lib/fleet-common.sh
. "$(dirname "$0")/lib/fleet-common.sh"

FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

RECIPE="$FLEET_ROOT/fleet/images/apps"
# shellcheck disable=SC2046
HASH="$(fleet_recipe_hash $(fleet_recipe_paths apps))"
BUSYBOX="${FLEET_BUSYBOX:-/bin/busybox}"

# image-with-hash-tag  stable-tag  role  version
IMAGES=(
    "opsportal/web:v1-$HASH opsportal/web:v1 web v1"
    "opsportal/web:v2-$HASH opsportal/web:v2 web v2"
    "opsportal/burner:$HASH opsportal/burner:latest burner v1"
    "opsportal/crasher:$HASH opsportal/crasher:latest crasher v1"
)

fleet_build_lock

all_exist=1
for spec in "${IMAGES[@]}"; do
    read -r tag _ <<<"$spec"
    fleet_image_exists "$tag" || all_exist=0
done

started=$SECONDS
if [ "$FORCE" -eq 1 ] || [ "$all_exist" -eq 0 ]; then
    [ -x "$BUSYBOX" ] || fleet_die "$BUSYBOX missing: run scripts/ensure-docker.sh"
    file -b "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' \
        || ldd "$BUSYBOX" 2>&1 | grep -q 'not a dynamic' \
        || fleet_die "$BUSYBOX is not static (install busybox-static)"

    ctx="$(mktemp -d "${FLEET_BUILD_TMP:-/dev/shm}/opsportal-apps.XXXXXX")"
    trap 'rm -rf "$ctx"' EXIT
    cp -r "$RECIPE/rootfs" "$RECIPE/Dockerfile" "$ctx/"
    mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/tmp" "$ctx/rootfs/root"
    cp "$BUSYBOX" "$ctx/rootfs/bin/busybox"
    for applet in $("$BUSYBOX" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$ctx/rootfs/bin/$applet"
    done
    # Modes from the checkout depend on its umask; set them.
    chmod -R u=rwX,go=rX "$ctx/rootfs"
    chmod 0755 "$ctx/rootfs/usr/local/bin/app-entrypoint" "$ctx"/rootfs/www/cgi-bin/*
    chmod 1777 "$ctx/rootfs/tmp"
    # Same mtimes every build: layers depend on content, not on the checkout's age.
    find "$ctx" -exec touch -h -d @1700000000 {} +

    for spec in "${IMAGES[@]}"; do
        read -r tag stable role version <<<"$spec"
        fleet_log "building $tag"
        # The classic builder: FROM scratch needs nothing else, and it is what an
        # engine without buildx (Debian's docker.io) has.
        if ! out="$(DOCKER_BUILDKIT=0 docker build -q \
            --build-arg "APP_ROLE=$role" --build-arg "APP_VERSION=$version" \
            --build-arg "RECIPE=$HASH" -t "$tag" "$ctx" 2>&1)"; then
            printf '%s\n' "$out" >&2
            fleet_die "docker build of $tag failed"
        fi
    done
fi

for spec in "${IMAGES[@]}"; do
    read -r tag stable _ <<<"$spec"
    docker tag "$tag" "$stable"
    echo "$tag"
done
for repo in opsportal/web opsportal/burner opsportal/crasher; do
    fleet_prune_old_tags "$repo" "$HASH"
done
fleet_log "app images ready (recipe $HASH) in $((SECONDS - started))s"

#!/usr/bin/env bash
# Build the images of the portal's own deployment (docker-compose.yml, deploy/stack.yml) offline of
# any image registry, as the fleet's host image is built (scripts/build-host-image.sh):
#
#   opsportal/postgres     Debian's postgresql-15 (deploy/images/postgres)
#   opsportal/redis        Debian's redis-server 7 (deploy/images/redis)
#   opsportal/portal-base  Debian's python3.11 and a venv with the pinned requirements.txt
#                          (deploy/images/portal-base)
#   opsportal/lb           Debian's haproxy 2.6 with the portal's haproxy.cfg, in front of the web
#                          replicas (deploy/images/lb)
#   opsportal/portal       the project's code and its collected static files on portal-base
#                          (deploy/images/portal/Dockerfile, `docker build` of a local image)
#
# mmdebstrap makes each Debian root filesystem on a tmpfs (the .deb files cached under
# var/cache/fleet/apt, shared with the fleet), `docker import` loads it. The wheels come from PyPI
# through the build machine's pip (cached under var/cache/portal/wheels; versions constrained to
# what .venv runs, so the image runs what the tests ran).
#
#   build-portal-images.sh [--force] [--tags]
#
# Tags: <repo>:<recipe hash> and <repo>:latest; a recipe whose hash tag exists is not rebuilt
# (--force: rebuild all). --tags prints the tags without building. The portal's hash covers its
# base's recipe and the code (ops_portal, schedulers, templates, static, manage.py), so any change
# of code gives a new image, in seconds: only the top layer is built again.
set -euo pipefail
export FLEET_LOG_TAG=build-portal-images
# shellcheck source=lib/fleet-common.sh
. "$(dirname "$0")/lib/fleet-common.sh"

FORCE=0
TAGS_ONLY=0
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        --tags) TAGS_ONLY=1 ;;
        *) fleet_die "usage: $0 [--force] [--tags]" ;;
    esac
done

COMMON="scripts/build-portal-images.sh scripts/lib/fleet-common.sh"
CODE="ops_portal schedulers templates static manage.py"
# shellcheck disable=SC2086
{
    H_POSTGRES="$(fleet_recipe_hash deploy/images/postgres $COMMON)"
    H_REDIS="$(fleet_recipe_hash deploy/images/redis $COMMON)"
    H_LB="$(fleet_recipe_hash deploy/images/lb $COMMON)"
    H_BASE="$(fleet_recipe_hash deploy/images/portal-base requirements.txt $COMMON)"
    H_PORTAL="$(fleet_recipe_hash deploy/images/portal-base deploy/images/portal requirements.txt $CODE $COMMON)"
}
if [ "$TAGS_ONLY" -eq 1 ]; then
    printf '%s\n' "opsportal/postgres:$H_POSTGRES" "opsportal/redis:$H_REDIS" "opsportal/lb:$H_LB" \
        "opsportal/portal-base:$H_BASE" "opsportal/portal:$H_PORTAL"
    exit 0
fi

MIRROR="${FLEET_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY="${FLEET_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}"
APT_CACHE="$FLEET_VAR/cache/fleet/apt"
WHEELS="$FLEET_VAR/cache/portal/wheels"
BUILD_TMP="${FLEET_BUILD_TMP:-/dev/shm}"
LOGS="$FLEET_VAR/cache/portal"
PIP="${PORTAL_BUILD_PIP:-$FLEET_ROOT/.venv/bin/python -m pip}"
mkdir -p "$APT_CACHE" "$WHEELS" "$LOGS"

WORK="$(mktemp -d "$BUILD_TMP/opsportal-portal.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# Point <repo>:latest at <repo>:<hash>, untag older hashes, print the tag.
finish() {
    local repo="$1" hash="$2"
    docker tag "$repo:$hash" "$repo:latest"
    fleet_prune_old_tags "$repo" "$hash"
    echo "$repo:$hash"
}

# mmdebstrap a Debian root filesystem with NAME's packages, run its customize.sh with ARGS, import
# it as REPO:HASH with the --change instructions CHANGES (newline-separated).
debian_image() {
    local name="$1" repo="$2" hash="$3" changes="$4"
    shift 4
    local recipe="$FLEET_ROOT/deploy/images/$name" log="$LOGS/build-$name.log" started=$SECONDS
    local packages customize=() change_args=()
    packages="$(grep -v '^\s*#' "$recipe/packages" | grep -v '^\s*$' | paste -sd, -)"
    customize=("--customize-hook=sh '$recipe/customize.sh' \"\$1\" $*")
    while IFS= read -r line; do
        [ -n "$line" ] && change_args+=(--change "$line")
    done <<<"$changes"
    command -v mmdebstrap >/dev/null || fleet_die "mmdebstrap missing: run scripts/ensure-docker.sh"
    fleet_log "building $repo:$hash (packages: $packages)"
    SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-1700000000}" TMPDIR="$WORK" mmdebstrap \
        ${FLEET_MMDEBSTRAP_VERBOSITY:---quiet} \
        --variant=minbase \
        --include="$packages" \
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --aptopt='Acquire::Languages "none"' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --skip=download/empty \
        --skip=essential/unlink \
        --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
        --setup-hook="sync-in '$APT_CACHE' /var/cache/apt/archives/" \
        --customize-hook="sync-out /var/cache/apt/archives '$APT_CACHE'" \
        "${customize[@]}" \
        --format=tar \
        bookworm "$WORK/$name.tar" \
        "deb $MIRROR bookworm main" \
        "deb $MIRROR bookworm-updates main" \
        "deb $SECURITY bookworm-security main" \
        >"$log" 2>&1 || { tail -n 40 "$log" >&2; fleet_die "mmdebstrap of $name failed (log: $log)"; }
    docker import "${change_args[@]}" \
        --change "LABEL org.opencontainers.image.title=opsportal-$name opsportal.recipe=$hash" \
        "$WORK/$name.tar" "$repo:$hash" >/dev/null
    rm -f "$WORK/$name.tar"
    fleet_log "built $repo:$hash in $((SECONDS - started))s ($(( $(docker image inspect -f '{{.Size}}' "$repo:$hash") / 1000000 )) MB)"
}

# The wheels of requirements.txt and their dependencies for the image's interpreter (Debian's
# python3.11, 3.11.2 in bookworm), into $WHEELS: from the cache when it holds them all, else fetching
# what is missing from PyPI. pip resolves as that interpreter (`pip --python`, the build machine's
# Debian python3.11 when it has one): markers such as python_full_version < "3.11.3" depend on it.
# Versions not pinned by requirements.txt follow .venv (its `pip freeze` is the constraints file),
# so the image runs what the tests ran. Binary wheels only: nothing is compiled for the image.
IMAGE_PYTHON="${PORTAL_IMAGE_PYTHON:-3.11.2}"
stage_wheels() {
    local stage="$1" log="$LOGS/build-wheels.log"
    mkdir -p "$stage"
    cp "$FLEET_ROOT/requirements.txt" "$stage/requirements.txt"
    $PIP freeze --exclude-editable 2>/dev/null | grep -E '^[A-Za-z0-9._-]+==' >"$stage/constraints.txt" || true
    local as_image=()
    if [ -x /usr/bin/python3.11 ] && [ "$(/usr/bin/python3.11 -c 'import platform; print(platform.python_version())')" = "$IMAGE_PYTHON" ]; then
        as_image=(--python /usr/bin/python3.11)
    else
        fleet_log "warning: no Debian python3.11 $IMAGE_PYTHON here; dependency markers follow $PIP's interpreter"
    fi
    local target=(--python-version "$IMAGE_PYTHON" --implementation cp --abi cp311 --only-binary=:all:)
    local platform
    for platform in manylinux_2_36_x86_64 manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
        manylinux2010_x86_64 manylinux1_x86_64 linux_x86_64 any; do
        target+=(--platform "$platform")
    done
    local args=("${as_image[@]}" download --quiet --disable-pip-version-check "${target[@]}" --find-links "$WHEELS"
                -r "$stage/requirements.txt" -c "$stage/constraints.txt")
    if $PIP "${args[@]}" --dest "$WHEELS" --no-index >"$log" 2>&1; then
        fleet_log "wheels: all from the cache"
    else
        fleet_log "wheels: fetching what the cache lacks from PyPI"
        $PIP "${args[@]}" --dest "$WHEELS" >>"$log" 2>&1 || { tail -n 20 "$log" >&2; fleet_die "pip download failed (log: $log)"; }
    fi
    # Only the wheels this resolution needs (the cache may hold older versions).
    $PIP "${args[@]}" --dest "$stage" --no-index >>"$log" 2>&1 \
        || { tail -n 20 "$log" >&2; fleet_die "staging the wheels failed (log: $log)"; }
}

fleet_build_lock
started=$SECONDS

if [ "$FORCE" -eq 1 ] || ! fleet_image_exists "opsportal/postgres:$H_POSTGRES"; then
    debian_image postgres opsportal/postgres "$H_POSTGRES" \
        "$(printf '%s\n' 'USER postgres' 'ENV LANG=C.UTF-8' 'ENV PGDATA=/var/lib/postgresql/data' 'EXPOSE 5432' \
            'ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/portal-postgres"]')" \
        "'$FLEET_ROOT/deploy/images/postgres'"
fi
finish opsportal/postgres "$H_POSTGRES"

if [ "$FORCE" -eq 1 ] || ! fleet_image_exists "opsportal/redis:$H_REDIS"; then
    debian_image redis opsportal/redis "$H_REDIS" \
        "$(printf '%s\n' 'USER redis' 'ENV LANG=C.UTF-8' 'WORKDIR /data' 'EXPOSE 6379' \
            'ENTRYPOINT ["/usr/bin/tini", "--"]' \
            'CMD ["redis-server", "--protected-mode", "no", "--dir", "/data", "--appendonly", "yes"]')"
fi
finish opsportal/redis "$H_REDIS"

if [ "$FORCE" -eq 1 ] || ! fleet_image_exists "opsportal/lb:$H_LB"; then
    debian_image lb opsportal/lb "$H_LB" \
        "$(printf '%s\n' 'USER haproxy' 'ENV LANG=C.UTF-8' 'EXPOSE 8000' \
            'ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/portal-lb"]')" \
        "'$FLEET_ROOT/deploy/images/lb'"
fi
finish opsportal/lb "$H_LB"

if [ "$FORCE" -eq 1 ] || ! fleet_image_exists "opsportal/portal-base:$H_BASE"; then
    stage_wheels "$WORK/wheels"
    debian_image portal-base opsportal/portal-base "$H_BASE" \
        "$(printf '%s\n' 'ENV LANG=C.UTF-8' 'ENV PATH=/srv/portal/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')" \
        "'$WORK/wheels'"
fi
finish opsportal/portal-base "$H_BASE"

if [ "$FORCE" -eq 1 ] || ! fleet_image_exists "opsportal/portal:$H_PORTAL"; then
    portal_started=$SECONDS
    ctx="$WORK/portal"
    mkdir -p "$ctx/app"
    cp "$FLEET_ROOT/deploy/images/portal/Dockerfile" "$FLEET_ROOT/deploy/images/portal/probe.py" "$ctx/"
    chmod 0755 "$ctx/probe.py"
    for path in $CODE; do
        cp -r "$FLEET_ROOT/$path" "$ctx/app/"
    done
    find "$ctx/app" \( -name __pycache__ -o -name '*.pyc' \) -prune -exec rm -rf {} +
    chmod -R u=rwX,go=rX "$ctx/app"
    # Same mtimes every build: the layer depends on content, not on the checkout's age.
    find "$ctx" -exec touch -h -d @1700000000 {} +
    fleet_log "building opsportal/portal:$H_PORTAL on opsportal/portal-base:$H_BASE"
    # The classic builder: FROM a local image needs no registry, and Debian's docker.io has no buildx.
    if ! out="$(DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=opsportal/portal-base:$H_BASE" \
        --build-arg "RECIPE=$H_PORTAL" -t "opsportal/portal:$H_PORTAL" "$ctx" 2>&1)"; then
        printf '%s\n' "$out" >&2
        fleet_die "docker build of opsportal/portal:$H_PORTAL failed"
    fi
    fleet_log "built opsportal/portal:$H_PORTAL in $((SECONDS - portal_started))s"
fi
finish opsportal/portal "$H_PORTAL"
fleet_log "portal images ready in $((SECONDS - started))s"

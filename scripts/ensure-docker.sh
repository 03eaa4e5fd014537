#!/usr/bin/env bash
# Make sure a Docker engine answers, in Swarm mode, with the image build tools at hand.
#
# Idempotent and safe to run twice (concurrent runs queue on a lock):
#   - installs Debian packages only when they are missing: docker.io (only when no
#     engine answers and no dockerd is installed), mmdebstrap, busybox-static;
#   - starts dockerd in the background only when no engine answers (there is no
#     systemd on these machines), daemonised into its own session, logging to
#     $FLEET_DOCKERD_LOG (default /var/log/dockerd.log), and waits until it answers;
#   - initialises Swarm mode (advertised and listening on 127.0.0.1) only when the
#     node is inactive.
# An engine that already answers is never restarted or reconfigured.
#
# Environment (all optional, mostly for testing this script against a second engine):
#   DOCKER_HOST              engine to talk to (the docker CLI honours it)
#   FLEET_DOCKERD_ARGS       extra arguments for a dockerd this script starts
#   FLEET_DOCKERD_PIDFILE    pid file of that dockerd (default /var/run/docker.pid)
#   FLEET_DOCKERD_LOG        its log file
#   FLEET_DOCKERD_WAIT       seconds to wait for it to answer (default 60)
#   FLEET_SWARM_LISTEN       swarm listen address (default 127.0.0.1:2377)
#   FLEET_SWARM_INIT_ARGS    extra arguments for docker swarm init
#   FLEET_SKIP_PACKAGES=1    do not check or install the build tools
set -euo pipefail
export FLEET_LOG_TAG=ensure-docker
# shellcheck source=lib/fleet-common.sh
. "$(dirname "$0")/lib/fleet-common.sh"

DOCKERD_LOG="${FLEET_DOCKERD_LOG:-/var/log/dockerd.log}"
DOCKERD_PIDFILE="${FLEET_DOCKERD_PIDFILE:-/var/run/docker.pid}"
DOCKERD_WAIT="${FLEET_DOCKERD_WAIT:-60}"
SWARM_LISTEN="${FLEET_SWARM_LISTEN:-127.0.0.1:2377}"
LOCK_FILE="${FLEET_ENSURE_LOCK:-/var/lock/opsportal-ensure-docker.lock}"

[ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null || fleet_die "run as root (or install sudo)"

pkg_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

APT_UPDATED=0
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    local apt=(apt-get -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0 -q -y)
    if [ "$APT_UPDATED" -eq 0 ]; then
        fleet_log "apt-get update"
        fleet_as_root "${apt[@]}" update >&2
        APT_UPDATED=1
    fi
    fleet_log "installing: $*"
    fleet_as_root "${apt[@]}" install --no-install-recommends "$@" >&2
}

engine_answers() { timeout 15 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

dockerd_alive() {
    local pid
    [ -s "$DOCKERD_PIDFILE" ] || return 1
    pid="$(cat "$DOCKERD_PIDFILE")"
    [ -n "$pid" ] && [ -d "/proc/$pid" ] && grep -q dockerd "/proc/$pid/comm" 2>/dev/null
}

# Debian starts daemons from maintainer scripts; we start dockerd ourselves, below,
# the same way on every machine, so keep the package's init script from racing us.
with_daemons_held() {
    local made=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | fleet_as_root tee /usr/sbin/policy-rc.d >/dev/null
        fleet_as_root chmod 0755 /usr/sbin/policy-rc.d
        made=1
    fi
    local rc=0
    "$@" || rc=$?
    [ "$made" -eq 0 ] || fleet_as_root rm -f /usr/sbin/policy-rc.d
    return "$rc"
}

ensure_cgroups() {
    # dockerd needs cgroups mounted; without an init system nobody may have done it.
    if [ -e /sys/fs/cgroup/cgroup.controllers ] || grep -q ' /sys/fs/cgroup/[a-z]' /proc/mounts; then
        return 0
    fi
    pkg_installed cgroupfs-mount || apt_install cgroupfs-mount
    fleet_log "mounting cgroups"
    fleet_as_root cgroupfs-mount
}

start_dockerd() {
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    fleet_log "starting dockerd (log: $DOCKERD_LOG)"
    # setsid: own session, so it survives the shell (and CI step) that started it.
    # shellcheck disable=SC2086
    fleet_as_root setsid nohup dockerd --pidfile "$DOCKERD_PIDFILE" ${FLEET_DOCKERD_ARGS:-} \
        >>"$DOCKERD_LOG" 2>&1 </dev/null 8>&- &
    disown || true
}

wait_for_engine() {
    local deadline=$((SECONDS + DOCKERD_WAIT))
    until engine_answers; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            fleet_log "dockerd did not answer within ${DOCKERD_WAIT}s; last log lines:"
            tail -n 30 "$DOCKERD_LOG" >&2 || true
            exit 1
        fi
        sleep 0.3
    done
}

ensure_swarm() {
    local state
    state="$(docker info --format '{{.Swarm.LocalNodeState}}')"
    case "$state" in
        active) ;;
        inactive)
            fleet_log "initialising swarm on 127.0.0.1"
            # shellcheck disable=SC2086
            docker swarm init --advertise-addr 127.0.0.1 --listen-addr "$SWARM_LISTEN" \
                ${FLEET_SWARM_INIT_ARGS:-} >/dev/null
            ;;
        *) fleet_die "swarm is '$state' on this engine; fix it by hand (docker swarm leave --force?)" ;;
    esac
}

main() {
    mkdir -p "$(dirname "$LOCK_FILE")"
    exec 8>"$LOCK_FILE"
    flock 8

    if [ "${FLEET_SKIP_PACKAGES:-0}" != 1 ]; then
        local missing=()
        for p in mmdebstrap busybox-static; do pkg_installed "$p" || missing+=("$p"); done
        [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
    fi

    if command -v docker >/dev/null && engine_answers; then
        fleet_log "engine answers; leaving it alone"
    else
        if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
            with_daemons_held apt_install docker.io
        fi
        if command -v docker >/dev/null && engine_answers; then
            fleet_log "engine answers after install"
        else
            ensure_cgroups
            if dockerd_alive; then
                fleet_log "dockerd is running but not answering yet; waiting"
            else
                start_dockerd
            fi
            wait_for_engine
        fi
    fi

    ensure_swarm
    fleet_log "engine $(docker version --format '{{.Server.Version}}') ready, swarm $(docker info --format '{{.Swarm.LocalNodeState}}')"
}

main "$@"

#!/usr/bin/env bash
# Start web (daphne), worker, beat and the container watcher in the foreground and keep them up: a
# process that exits is started again after a delay that doubles while it keeps failing
# (RESTART_DELAY up to RESTART_DELAY_MAX seconds), the others run on. Ctrl-C (or SIGTERM) stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
env_file=${PORTAL_ENV_FILE:-var/portal.env}
# What the environment sets wins over the file (DEBUG=true make run).
. scripts/load-env.sh "$env_file"
HOST=${PORTAL_HOST:-127.0.0.1}
PORT=${PORTAL_PORT:-8000}
# Links in notifications and emails follow the port unless PORTAL_URL says otherwise.
export PORTAL_URL=${PORTAL_URL:-http://$HOST:$PORT}
RESTART_DELAY=${RESTART_DELAY:-1}
RESTART_DELAY_MAX=${RESTART_DELAY_MAX:-60}
STOP_TIMEOUT=${STOP_TIMEOUT:-30}
# A process that ran this long before exiting counts as healthy: its next restart is quick again.
STABLE_AFTER=${STABLE_AFTER:-60}
mkdir -p var/log
# web and worker processes count into files here and /metrics sums them (emptied at each start).
export PROMETHEUS_MULTIPROC_DIR="$PWD/var/metrics"
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

declare -A cmd pid_of started delay
cmd[web]=".venv/bin/daphne -b $HOST -p $PORT ops_portal.asgi:application"
cmd[worker]=".venv/bin/celery -A ops_portal worker -l INFO --concurrency ${WORKER_CONCURRENCY:-4} --hostname worker@%h -Q ${WORKER_QUEUES:-default}"
cmd[beat]=".venv/bin/celery -A ops_portal beat -l INFO --pidfile="
cmd[watcher]=".venv/bin/python manage.py container_watcher"

say() { echo "$(date '+%Y-%m-%d %H:%M:%S') run-portal: $*" >&2; }

start() {
  local name=$1
  ${cmd[$name]} &
  pid_of[$name]=$!
  started[$name]=$SECONDS
  say "started $name (pid ${pid_of[$name]})"
}

stopping=0
sleeper=""
stop_all() {
  stopping=1
  trap - INT TERM
  say "stopping web, worker, beat and watcher"
  local name pids=()
  for name in "${!pid_of[@]}"; do
    [ -n "${pid_of[$name]}" ] && pids+=("${pid_of[$name]}")
  done
  [ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  for p in "${pids[@]}"; do
    while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    kill -0 "$p" 2>/dev/null && { say "pid $p did not stop in ${STOP_TIMEOUT}s: killing it"; kill -KILL "$p" 2>/dev/null || true; }
  done
  wait 2>/dev/null || true
  say "stopped"
  exit 0
}
trap stop_all INT TERM

for name in web worker beat watcher; do
  delay[$name]=$RESTART_DELAY
  start "$name"
done
say "Ops portal on http://$HOST:$PORT/ (web, worker, beat, watcher running; Ctrl-C stops them)"

while true; do
  exited=""
  status=0
  wait -n -p exited || status=$?
  [ "$stopping" = 1 ] && break
  [ -z "$exited" ] && continue  # a signal interrupted the wait
  for name in "${!pid_of[@]}"; do
    [ "${pid_of[$name]}" = "$exited" ] || continue
    ran=$((SECONDS - started[$name]))
    if [ "$ran" -ge "$STABLE_AFTER" ]; then delay[$name]=$RESTART_DELAY; fi
    say "$name (pid $exited) exited with status $status after ${ran}s; restarting it in ${delay[$name]}s"
    pid_of[$name]=""
    sleep "${delay[$name]}" &
    sleeper=$!
    wait "$sleeper" || true  # a wait, not a plain sleep, so Ctrl-C is handled at once
    sleeper=""
    [ "$stopping" = 1 ] && break 2
    start "$name"
    next=$((delay[$name] * 2))
    delay[$name]=$((next > RESTART_DELAY_MAX ? RESTART_DELAY_MAX : next))
  done
done

#!/usr/bin/env bash
# Start web (daphne), worker and beat in the foreground; Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
set -a; . var/portal.env; set +a
HOST=${PORTAL_HOST:-127.0.0.1}
PORT=${PORTAL_PORT:-8000}
mkdir -p var/log
# web and worker processes count into files here and /metrics sums them (emptied at each start).
export PROMETHEUS_MULTIPROC_DIR="$PWD/var/metrics"
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
pids=()
stop() { trap - INT TERM EXIT; kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop INT TERM EXIT
.venv/bin/daphne -b "$HOST" -p "$PORT" ops_portal.asgi:application &
pids+=($!)
.venv/bin/celery -A ops_portal worker -l INFO --concurrency "${WORKER_CONCURRENCY:-4}" \
  --hostname "worker@%h" -Q "${WORKER_QUEUES:-default}" &
pids+=($!)
.venv/bin/celery -A ops_portal beat -l INFO -S django --pidfile= &
pids+=($!)
echo "Ops portal on http://$HOST:$PORT/ (web, worker, beat running; Ctrl-C stops them)"
wait -n
echo "A portal process exited; stopping the others." >&2

#!/usr/bin/env bash
# Run pytest against a private database and Redis namespace, so several test runs on one machine
# (developers, helpers, CI) do not trample each other. Usage: scripts/scratch-test.sh NAME [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/scratch-test.sh NAME [pytest args]}; shift
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/${name}"
export REDIS_PREFIX="opsportal-${name}"
export TEST_DATABASE_NAME="test_${name}"
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/11}
psql -h 127.0.0.1 -U postgres -d postgres -tc "SELECT 1 FROM pg_database WHERE datname = '${name}'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE \"${name}\"" >/dev/null
exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# Everything `make test` needs on a fresh Debian machine, installed only when missing:
# Debian packages (chromium for browser tests, docker-compose for the compose schema check,
# docker.io/mmdebstrap/busybox-static for the fleet), a running Redis and PostgreSQL, and the
# Docker engine in Swarm mode. Under CI=true anything missing is an error.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
for pkg in chromium docker-compose; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "Installing Debian packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

scripts/ensure-redis.sh

pg_url=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
if ! .venv/bin/python - "$pg_url" <<'PY'
import sys, psycopg
try:
    psycopg.connect(sys.argv[1].replace("postgres://", "postgresql://"), connect_timeout=5).close()
except Exception as exc:
    print(f"PostgreSQL does not answer at {sys.argv[1]}: {exc}", file=sys.stderr)
    sys.exit(1)
PY
then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    sleep 2
  else
    echo "Install and start PostgreSQL (apt-get install -y postgresql) with trust auth on 127.0.0.1." >&2
    exit 1
  fi
fi

if [ -x scripts/ensure-docker.sh ]; then
  scripts/ensure-docker.sh
fi

#!/usr/bin/env bash
# Create .venv and install the pinned requirements; reinstall only when a requirements file changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
files=${1:-requirements.txt}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# cli/pyproject.toml: the editable client (requirements-dev.txt) is reinstalled when its dependencies change.
stamp=".venv/.installed-$(cat $files requirements.txt cli/pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  for f in $files; do .venv/bin/pip install --quiet --disable-pip-version-check -r "$f"; done
  rm -f .venv/.installed-*
  touch "$stamp"
fi

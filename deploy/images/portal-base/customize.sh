#!/bin/sh
# mmdebstrap customize hook of opsportal/portal-base: $1 is the root filesystem, $2 a directory of
# wheels (the pinned requirements and their dependencies, fetched on the build machine) with
# requirements.txt beside them. Installs them into /srv/portal/venv without any index.
set -eu
root="$1"
wheels="$2"
chroot "$root" useradd --system --create-home --home-dir /srv/portal --shell /usr/sbin/nologin portal
mkdir -p "$root/tmp/wheels"
cp "$wheels"/*.whl "$wheels/requirements.txt" "$wheels/constraints.txt" "$root/tmp/wheels/"
chroot "$root" python3.11 -m venv /srv/portal/venv
chroot "$root" /srv/portal/venv/bin/pip install --quiet --no-index --no-cache-dir --find-links /tmp/wheels \
    -r /tmp/wheels/requirements.txt -c /tmp/wheels/constraints.txt
# pip has no use at run time.
chroot "$root" /srv/portal/venv/bin/pip uninstall --quiet --yes pip setuptools 2>/dev/null || true
rm -rf "$root/tmp/wheels"
mkdir -p "$root/srv/portal/var" "$root/srv/portal/metrics"
chroot "$root" chown portal:portal /srv/portal/var /srv/portal/metrics
# Documentation, man pages and apt's lists are of no use in the image.
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/lib/apt/lists/*

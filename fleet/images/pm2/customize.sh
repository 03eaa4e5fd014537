#!/bin/sh
# mmdebstrap customize hook for the PM2 host, run after fleet/images/host/customize.sh;
# $1 is the root filesystem, $2 the directory where npm ci installed PM2 (node_modules).
set -eu
root="$1"
stage="$2"
here="$(cd "$(dirname "$0")" && pwd)"

cp -r "$here/rootfs/." "$root/"
mkdir -p "$root/usr/local/lib/pm2"
cp -a "$stage/node_modules" "$stage/package.json" "$stage/package-lock.json" "$root/usr/local/lib/pm2/"
for bin in pm2 pm2-runtime; do
    ln -sf "../lib/pm2/node_modules/pm2/bin/$bin" "$root/usr/local/bin/$bin"
done
chown -R 0:0 "$root/usr/local"
chmod 0755 "$root/usr/local/lib/fleet/init.d/50-pm2"
# PM2 runs on the image's Node.js (a throwaway PM2_HOME, so the image ships none).
chroot "$root" env HOME=/tmp PM2_HOME=/tmp/pm2-check /usr/local/bin/pm2 --version >/dev/null
rm -rf "$root/tmp/pm2-check"
# PM2's daemon checks max_memory_restart every PM2_WORKER_INTERVAL ms (30 s by default);
# a test host checks every 2 s. SSH sessions get it through pam_env, so a daemon that a
# session restarts keeps it.
echo "PM2_WORKER_INTERVAL=2000" >>"$root/etc/environment"

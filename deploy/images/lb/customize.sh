#!/bin/sh
# mmdebstrap customize hook of opsportal/lb: $1 is the root filesystem, $2 this recipe's directory.
# HAProxy runs as the user haproxy, in the foreground, logging to stdout: no chroot, no pid file.
set -eu
root="$1"
recipe="$2"
install -m 0644 "$recipe/haproxy.cfg" "$root/etc/haproxy/haproxy.cfg"
install -m 0755 "$recipe/portal-lb" "$root/usr/local/bin/portal-lb"
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/lib/apt/lists/*

#!/bin/sh
# mmdebstrap customize hook for the fleet host image; $1 is the root filesystem.
set -eu
root="$1"
here="$(cd "$(dirname "$0")" && pwd)"

cp -r "$here/rootfs/." "$root/"
chown -R 0:0 "$root/usr/local" "$root/etc/ssh/sshd_config.d" "$root/etc/supervisor/conf.d"
chmod 0755 "$root/usr/local/sbin/fleet-init" "$root/usr/local/sbin/fleet-identity" "$root/usr/local/bin/fleet-ticker"
chmod 0644 "$root/etc/ssh/sshd_config.d/10-fleet-hardening.conf" "$root/etc/supervisor/conf.d/fleet-demo.conf"

# Host keys are made per host at first start, never shipped in the image.
rm -f "$root"/etc/ssh/ssh_host_*
# Containers may not set the audit login uid; a real host would, so keep the
# module but let a refusal pass instead of closing the session.
sed -i 's/^session\s\+required\s\+pam_loginuid.so/session optional pam_loginuid.so/' "$root/etc/pam.d/sshd"
# Keys only: lock root's password outright.
chroot "$root" passwd -l root >/dev/null
# Docker manages these per container.
: >"$root/etc/hostname"
rm -f "$root/etc/resolv.conf"
# Documentation and translations are dead weight in a test host. Removed here
# rather than with dpkg path-exclude, which makes mmdebstrap filter every archive
# through a Python helper (about 15 s on this machine).
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/lintian/*
find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +

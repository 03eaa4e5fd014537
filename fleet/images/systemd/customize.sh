#!/bin/sh
# mmdebstrap customize hook for the systemd host, run after fleet/images/host/customize.sh;
# $1 is the root filesystem.
set -eu
root="$1"
here="$(cd "$(dirname "$0")" && pwd)"

cp -r "$here/rootfs/." "$root/"
chown -R 0:0 "$root/usr/local/sbin"
chmod 0755 "$root/usr/local/sbin/fleet-boot"

# Units with nothing to do in a container (no consoles, no kernel tunables, no udev):
# masked, so that `systemctl is-system-running` says running rather than degraded.
for unit in console-getty.service getty@tty1.service getty-static.service \
    systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service \
    sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount sys-fs-fuse-connections.mount \
    systemd-sysctl.service systemd-remount-fs.service systemd-firstboot.service \
    proc-sys-fs-binfmt_misc.automount systemd-binfmt.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
# Boot to the multi-user target (sshd, supervisord), not a graphical one.
ln -sf /lib/systemd/system/multi-user.target "$root/etc/systemd/system/default.target"
# sshd is started by systemd here, with the host key fleet-boot made.
chroot "$root" systemctl enable ssh.service supervisor.service 2>/dev/null

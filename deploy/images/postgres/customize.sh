#!/bin/sh
# mmdebstrap customize hook of opsportal/postgres: $1 is the root filesystem, $2 this recipe's
# directory. Debian's postinst made a cluster "main"; the image starts empty instead and the
# entrypoint makes the cluster in the data volume on first start.
set -eu
root="$1"
recipe="$2"
rm -rf "$root/var/lib/postgresql/15" "$root/etc/postgresql/15"
cp -r "$recipe/rootfs/." "$root/"
chmod 0755 "$root/usr/local/bin/portal-postgres"
mkdir -p "$root/var/lib/postgresql/data"
chroot "$root" chown postgres:postgres /var/lib/postgresql /var/lib/postgresql/data
chmod 0700 "$root/var/lib/postgresql/data"
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/lib/apt/lists/*

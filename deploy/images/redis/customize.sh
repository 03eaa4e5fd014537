#!/bin/sh
# mmdebstrap customize hook of opsportal/redis: $1 is the root filesystem. /data is redis's
# (a new named volume takes the owner of the image's directory).
set -eu
root="$1"
mkdir -p "$root/data"
chroot "$root" chown redis:redis /data
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/lib/apt/lists/*

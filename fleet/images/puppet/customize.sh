#!/bin/sh
# mmdebstrap customize hook for the Puppet host, run after fleet/images/host/customize.sh;
# $1 is the root filesystem.
set -eu
root="$1"

# The package enables the agent's service; a fleet host has no Puppet server, so nothing
# starts it (tini runs fleet-init), and no agent is configured (no `server` in puppet.conf).
# Puppet and facter run on the image's Ruby:
chroot "$root" /usr/bin/puppet --version >/dev/null
chroot "$root" /usr/bin/facter --version >/dev/null

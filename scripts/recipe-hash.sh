#!/usr/bin/env bash
# Print the recipe hash of a fleet image recipe: host, systemd, pm2 or apps.
set -euo pipefail
# shellcheck source=lib/fleet-common.sh
. "$(dirname "$0")/lib/fleet-common.sh"
[ $# -eq 1 ] || fleet_die "usage: $0 host|systemd|pm2|apps"
# shellcheck disable=SC2046
fleet_recipe_hash $(fleet_recipe_paths "$1")

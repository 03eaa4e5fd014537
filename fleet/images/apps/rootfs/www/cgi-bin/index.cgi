#!/bin/sh
# GET / : who answered (container hostname), which version, which role.
printf 'Content-Type: application/json\r\nCache-Control: no-store\r\n\r\n'
printf '{"hostname": "%s", "version": "%s", "role": "%s"}\n' "$(hostname)" "$APP_VERSION" "$APP_ROLE"

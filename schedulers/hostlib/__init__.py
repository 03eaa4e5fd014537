"""Pieces of the SSH host backend; `schedulers.host` is the public face.

- `validate`: argument checks (paths, identifiers, names, archives), no I/O
- `connect`: targets, host key pinning, connecting, the connection pool
- `command`: running a command with streaming, cancel and timeout
- `files`: SFTP helpers and idempotent configuration files
- `release`: deploys and rollbacks
- `probes`: facts, metrics and compliance checks (the scripts in `remote/` run on the host)
"""

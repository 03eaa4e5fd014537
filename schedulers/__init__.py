"""Django-free backends that act on containers, hosts and processes.

Nothing here imports Django or the portal (an import-linter contract checks it): backends take
connection parameters and secrets as arguments and report through callbacks. Each level registers
one `base.Backend` (`base.register`), found by level with `base.get("host")`; the portal's job
actions call them from Celery workers.
"""

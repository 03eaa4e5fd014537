from ops_portal.core.admin import register_read_only

from .models import AllowedHostPath, Container, Engine, Image, Network, Node, Service, Stack, Task, Volume

# Read-only; the engine's TLS client key (encrypted, a declared secret) is never shown.
register_read_only(Engine, Container, Image, Network, Volume, Node, Service, Task, Stack, AllowedHostPath)

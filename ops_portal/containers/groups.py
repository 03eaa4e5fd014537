"""Channels group names of the container level's live streams."""


def environment(environment_id):
    """Every change of engines, containers and services of one environment."""
    return f"containers.env.{environment_id}"


def obj(kind, pk, environment_id):
    """Changes of one engine, container or service (per environment too: an engine that moved keeps
    nothing visible to viewers of the environment it left)."""
    return f"containers.{kind}.{pk}.env.{environment_id}"

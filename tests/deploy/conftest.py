import os
import subprocess

import pytest

from tests.deploy import deployment as d


@pytest.fixture(scope="session")
def images():
    """The deployment's images built, under tags of this run's own: another checkout's build untags
    older hash tags (fleet_prune_old_tags) and must not take these away while they are deployed."""
    built = d.build_images()
    mine = {name: f"{tag.split(':')[0]}:run-{os.getpid()}" for name, tag in built.items()}
    for name, tag in mine.items():
        d.run(["docker", "tag", built[name], tag])
    yield mine
    subprocess.run(["docker", "image", "rm", *mine.values()], capture_output=True, timeout=120)

"""Git repositories made on the spot, and running a job in the test's own process (no worker)."""
import subprocess

from ops_portal.jobs import launch as launching
from ops_portal.jobs.models import Job
from ops_portal.jobs.runner import JobRunner, claim

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.test", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.test", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
           "PATH": "/usr/bin:/bin"}


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True,
                          text=True).stdout.strip()


def repository(path, files, branch="main"):
    """A repository at `path` whose branch holds `files` ({name: text}); returns its head commit."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "--quiet", "-b", branch)
    return commit(path, files)


def commit(path, files, message="change"):
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "--quiet", "-m", message)
    return git(path, "rev-parse", "HEAD")


def run_here(monkeypatch):
    """Jobs launched from now on run when `run(job)` is called, in this process (the real runner)."""
    monkeypatch.setattr(launching, "enqueue", lambda job: None)

    def run(job):
        claimed = claim(job.pk, "test-worker")
        assert claimed.job is not None, Job.objects.get(pk=job.pk).waiting_reason
        JobRunner(claimed.job).run()
        return Job.objects.get(pk=job.pk)

    return run

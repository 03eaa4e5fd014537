"""Channels group names of the job streams."""


def job(job_id):
    return f"job.{job_id}"


def jobs_in(environment_id):
    return f"jobs.env.{environment_id}"


def object_jobs(kind, ref_id, environment_id):
    """Per environment too: a host that moved keeps jobs of the environment it left, which viewers
    of its new one must not see."""
    return f"obj.{kind}.{ref_id}.env.{environment_id}"

"""Channels group names of the job streams."""


def job(job_id):
    return f"job.{job_id}"


def jobs_in(environment_id):
    return f"jobs.env.{environment_id}"


def object_jobs(kind, ref_id):
    return f"obj.{kind}.{ref_id}"

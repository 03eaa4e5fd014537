"""Fixtures for the processes app's live tests: a portal whose own machine is a host, an API client
of an administrator of all environments, and jobs launched through the API and waited for."""
import pytest
from django.urls import reverse

from ops_portal.jobs.models import Job, JobEvent
from tests.jobs.helpers import wait_job


def launched(response):
    assert response.status_code == 201, response.content
    return Job.objects.get(pk=response.json()["id"])


def run(response, state="succeeded", timeout=120):
    """The job a POST launched, once it reached `state`."""
    return wait_job(launched(response), state, timeout=timeout)


def output(job):
    return "\n".join(JobEvent.objects.filter(job=job).order_by("seq").values_list("text", flat=True))


def scan(api, *hosts, timeout=120):
    return run(api.post(reverse("api:processscan-scan"), {"hosts": [h.pk for h in hosts]}, format="json"),
               timeout=timeout)


def act(api, process, what, body=None, state="succeeded"):
    return run(api.post(reverse(f"api:process-{what}", args=[process.pk]), body or {}, format="json"), state)


def found(api, host, **query):
    response = api.get("/api/processes/", {"host": host.pk, "limit": 1000, **query})
    assert response.status_code == 200, response.content
    return response.json()["results"]


@pytest.fixture
def admin_api(api, admin_all):
    api.force_authenticate(admin_all)
    return api

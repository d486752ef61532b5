"""Conditional requests: ETag and Last-Modified on jobs and tasks, and the If-* headers
honoured with 304 for reads and 412 ConditionNotMet otherwise."""

from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest

from jobs.models import Job, JobState
from tasks.models import Task

from .helpers import add, make_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(api):
    job = make_job("j")
    add(job, "t")
    return job


def http_date(moment) -> str:
    return moment.strftime("%a, %d %b %Y %H:%M:%S GMT")


@pytest.mark.parametrize("path", ["/batch/jobs/j", "/batch/jobs/j/tasks/t"])
def test_reads_answer_304_when_nothing_changed(api, job, path):
    first = api.get(path)
    etag, modified = first["ETag"], first["Last-Modified"]
    assert etag.startswith("0x")
    assert api.get(path, HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert api.get(path, HTTP_IF_NONE_MATCH=f'"{etag}"').status_code == 304  # quoted or not
    assert api.get(path, HTTP_IF_NONE_MATCH='"0x1"').status_code == 200
    assert api.get(path, HTTP_IF_MODIFIED_SINCE=modified).status_code == 304
    earlier = http_date(parsedate_to_datetime(modified) - timedelta(seconds=5))
    assert api.get(path, HTTP_IF_MODIFIED_SINCE=earlier).status_code == 200
    assert api.get(path, HTTP_IF_MATCH=etag).status_code == 200
    response = api.get(path, HTTP_IF_MATCH="0x1")
    assert (response.status_code, response.json()["code"]) == (412, "ConditionNotMet")
    response = api.get(path, HTTP_IF_UNMODIFIED_SINCE=earlier)
    assert response.status_code == 412
    assert api.get(path, HTTP_IF_MODIFIED_SINCE="not a date").status_code == 200  # ignored


def test_a_stale_etag_refuses_a_job_update_and_changes_nothing(api, job):
    etag = api.get("/batch/jobs/j")["ETag"]
    assert api.patch("/batch/jobs/j", {"priority": 5}, format="json", HTTP_IF_MATCH=f'"{etag}"').status_code == 200
    response = api.patch("/batch/jobs/j", {"priority": 9}, format="json", HTTP_IF_MATCH=etag)
    assert (response.status_code, response.json()["code"]) == (412, "ConditionNotMet")
    assert Job.objects.get(pk=job.pk).priority == 5
    assert api.patch("/batch/jobs/j", {"priority": 9}, format="json", HTTP_IF_MATCH="*").status_code == 200


def test_writes_with_a_failed_condition_do_nothing(api, job):
    modified = api.get("/batch/jobs/j")["Last-Modified"]
    earlier = http_date(parsedate_to_datetime(modified) - timedelta(seconds=5))
    etag = api.get("/batch/jobs/j/tasks/t")["ETag"]
    assert api.post("/batch/jobs/j/terminate", HTTP_IF_UNMODIFIED_SINCE=earlier).status_code == 412
    assert api.post("/batch/jobs/j/disable", {"disableTasks": "wait"}, format="json",
                    HTTP_IF_NONE_MATCH="*").status_code == 412
    assert api.delete("/batch/jobs/j", HTTP_IF_MODIFIED_SINCE=modified).status_code == 412
    assert api.post("/batch/jobs/j/tasks/t/terminate", HTTP_IF_MATCH="0x2").status_code == 412
    assert api.delete("/batch/jobs/j/tasks/t", HTTP_IF_NONE_MATCH=etag).status_code == 412
    assert Job.objects.get(pk=job.pk).state == JobState.ACTIVE
    assert Task.objects.get(key="t").state == "active"
    assert api.post("/batch/jobs/j/tasks/t/terminate", HTTP_IF_MATCH=etag).status_code == 204

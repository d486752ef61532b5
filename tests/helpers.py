"""Small builders for tests that work below the API."""

from jobs import services as job_services
from tasks import counts
from tasks import services as task_services


def make_job(batch_id: str = "job", **fields):
    return job_services.create_job(spec={"batch_id": batch_id, **fields})


def add(job, *ids: str, command: str = "/bin/true", **fields):
    specs = [{"batch_id": i, "command_line": command, **fields} for i in ids]
    return [r.task for r in task_services.add_tasks(job=job, specs=specs)]


def assert_counts_exact(job_pk: int) -> None:
    stored, real = counts.read(job_pk), counts.actual(job_pk)
    assert stored.as_dict() == real.as_dict()

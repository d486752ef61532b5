"""The admin changes jobs and tasks only through the services: counts stay exact."""

import pytest

from jobs.models import Job, JobState
from tasks.models import Task

from .helpers import add, assert_counts_exact, claim, make_job

pytestmark = pytest.mark.django_db


def act(admin_client, model, action, *pks):
    return admin_client.post(f"/admin/{model}/", {"action": action, "_selected_action": [str(pk) for pk in pks]},
                             follow=True)


def test_admin_task_actions_keep_the_counts_exact(admin_client):
    job = make_job("j")
    a, b, c = add(job, "a", "b", "c")
    claim(node_id="n", limit=1)  # a runs

    assert act(admin_client, "tasks/task", "terminate", a.pk, b.pk).status_code == 200
    assert set(Task.objects.filter(pk__in=[a.pk, b.pk]).values_list("result", flat=True)) == {"failure"}
    assert_counts_exact(job.pk)

    act(admin_client, "tasks/task", "reactivate", a.pk, c.pk)  # c is not completed: refused, with a message
    assert Task.objects.get(pk=a.pk).state == "active"
    assert_counts_exact(job.pk)

    act(admin_client, "tasks/task", "delete", b.pk)
    assert not Task.objects.filter(pk=b.pk).exists()
    assert_counts_exact(job.pk)


def test_admin_bulk_delete_of_django_is_not_offered(admin_client):
    page = admin_client.get("/admin/tasks/task/")
    assert b"delete_selected" not in page.content


def test_a_task_added_in_the_admin_is_counted(admin_client):
    job = make_job("j")
    response = admin_client.post("/admin/tasks/task/add/", {
        "job": job.pk, "batch_id": "by-hand", "command_line": "/bin/true", "display_name": "",
        "environment_settings": "[]", "resource_files": "[]", "output_files": "[]",
        "application_package_references": "[]", "required_slots": 1,
    })
    assert response.status_code == 302, response.content
    assert Task.objects.get(key="by-hand").state == "active"
    assert_counts_exact(job.pk)

    again = admin_client.post("/admin/tasks/task/add/", {
        "job": job.pk, "batch_id": "BY-HAND", "command_line": "/bin/true",
        "environment_settings": "[]", "resource_files": "[]", "output_files": "[]",
        "application_package_references": "[]", "required_slots": 1,
    })
    assert again.status_code == 200 and b"ids ignore case" in again.content
    assert Task.objects.count() == 1


def test_editing_a_task_in_the_admin_changes_only_its_constraints(admin_client):
    job = make_job("j")
    (task,) = add(job, "t")
    form = admin_client.get(f"/admin/tasks/task/{task.pk}/change/")
    assert b'name="state"' not in form.content  # state is not a form field
    response = admin_client.post(f"/admin/tasks/task/{task.pk}/change/", {
        "max_wall_clock_time": "00:10:00", "max_task_retry_count": 3, "retention_time": "",
    })
    assert response.status_code == 302, response.content
    task.refresh_from_db()
    assert (task.max_task_retry_count, task.max_wall_clock_time.total_seconds()) == (3, 600)
    assert_counts_exact(job.pk)


def test_admin_job_actions_go_through_the_services(admin_client):
    job = make_job("j")
    add(job, "t")
    claim(node_id="n", limit=1)
    act(admin_client, "jobs/job", "terminate", job.pk)
    job.refresh_from_db()
    assert job.state == JobState.COMPLETED
    assert_counts_exact(job.pk)
    act(admin_client, "jobs/job", "delete", job.pk)
    assert Job.objects.get(pk=job.pk).state == JobState.DELETING


def test_a_job_added_in_the_admin_gets_its_count_rows(admin_client):
    from accounts.models import default_account

    response = admin_client.post("/admin/jobs/job/add/", {
        "account": default_account().pk, "batch_id": "from-admin", "display_name": "", "priority": 3,
        "max_parallel_tasks": -1,
        "max_task_retry_count": 0, "on_all_tasks_complete": "noaction", "on_task_failure": "noaction",
        "common_environment_settings": "[]", "metadata": "[]", "pool_info": "{}",
    })
    assert response.status_code == 302, response.content
    job = Job.objects.get(key="from-admin")
    assert job.count_shards.count() > 0
    assert_counts_exact(job.pk)


def test_a_completed_job_cannot_be_edited_in_the_admin(admin_client):
    job = make_job("done")
    admin_client.post("/admin/jobs/job/", {"action": "terminate", "_selected_action": [job.pk]})
    response = admin_client.post(f"/admin/jobs/job/{job.pk}/change/", {
        "priority": 9, "max_parallel_tasks": -1, "max_task_retry_count": 0, "on_all_tasks_complete": "noaction",
        "metadata": "[]", "pool_info": "{}", "allow_task_preemption": "",
    })
    assert response.status_code == 200 and b"cannot be changed" in response.content
    job.refresh_from_db()
    assert job.priority == 0


def test_the_admin_job_list_reads_counts_in_its_own_query(admin_client, django_assert_max_num_queries):
    for i in range(5):
        add(make_job(f"j{i}"), "a", "b")
    # session, user, the count for paging, the page with its counts — not one query per job
    with django_assert_max_num_queries(6):
        page = admin_client.get("/admin/jobs/job/")
    assert b"2 / 0 / 0 / 0" in page.content


def test_preparation_and_release_runs_are_listed_read_only(admin_client):
    from tasks import node_tasks
    from tasks.models import NodeTask
    from tasks.services import node_task_runs

    job = make_job("prepared", job_preparation_task={"commandLine": "x"})
    node_task_runs.start(job, "node-a", node_tasks.PREPARATION)
    page = admin_client.get("/admin/tasks/nodetask/")
    assert page.status_code == 200 and "node-a" in page.content.decode()
    assert admin_client.get("/admin/tasks/nodetask/add/").status_code == 403
    row = NodeTask.objects.get()
    assert admin_client.post(f"/admin/tasks/nodetask/{row.pk}/change/", {"state": "completed"}).status_code == 403
    assert NodeTask.objects.get().state == "running"


def test_the_add_form_offers_no_internal_fields(admin_client):
    form = admin_client.get("/admin/tasks/task/add/").content.decode()
    for internal in ("files_expire_at", "files_removed_at", 'name="stats"', "satisfies_dependents"):
        assert internal not in form


@pytest.mark.parametrize("model,action", [
    ("jobs/job", "terminate"),
    ("jobs/job", "delete"),
    ("tasks/task", "terminate"),
    ("pools/pool", "delete"),
])
def test_staff_who_may_only_view_run_no_service_action(client, django_user_model, model, action):
    """Actions change state through the services, and only for those Django lets change (or delete)."""
    from django.contrib.auth.models import Permission

    from accounts.models import default_account
    from pools.services.lifecycle import create_pool

    job = make_job("j")
    (task,) = add(job, "t")
    pool = create_pool(spec={"account": default_account(), "batch_id": "p", "vm_size": "standard_d2s_v3"})
    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    app, name = model.split("/")
    viewer.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=f"view_{name}"))
    client.force_login(viewer)
    target = {"jobs/job": job, "tasks/task": task, "pools/pool": pool}[model]

    page = client.get(f"/admin/{model}/")
    assert page.status_code == 200
    assert f'value="{action}"'.encode() not in page.content  # not offered
    client.post(f"/admin/{model}/", {"action": action, "_selected_action": [str(target.pk)]})
    assert Job.objects.get(pk=job.pk).state == JobState.ACTIVE
    assert Task.objects.get(pk=task.pk).state == "active"
    assert type(pool).objects.get(pk=pool.pk).state == "active"

    viewer.user_permissions.add(Permission.objects.get(
        content_type__app_label=app, codename=f"{'delete' if action == 'delete' else 'change'}_{name}"))
    viewer = django_user_model.objects.get(pk=viewer.pk)  # permissions are cached on the user
    client.force_login(viewer)
    assert f'value="{action}"'.encode() in client.get(f"/admin/{model}/").content  # now offered

"""The official azure-batch SDK (15.x), unchanged, against a live Batchsite over HTTP with
Shared Key: what a script written for Azure Batch does, and the errors it expects."""


import pytest
from azure.batch import BatchClient, models
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import ClientAuthenticationError, ResourceExistsError, ResourceNotFoundError

from accounts.models import BatchAccount
from jobs.models import Job

from .helpers import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.same_on_every_database]


@pytest.fixture
def accounts():
    return BatchAccount.objects.create(name="alpha"), BatchAccount.objects.create(name="beta")


def client_for(server, account, key=None) -> BatchClient:
    credential = AzureNamedKeyCredential(account.name, key or account.primary_key)
    return BatchClient(endpoint=f"{server.url}/batch", credential=credential)


def job_options(job_id: str, **extra) -> models.BatchJobCreateOptions:
    return models.BatchJobCreateOptions(id=job_id, pool_info=models.BatchPoolInfo(pool_id="local"), **extra)


def test_a_batch_script_runs_unchanged(server, accounts, start_worker):
    alpha, _ = accounts
    batch = client_for(server, alpha)
    batch.create_job(job_options("render", priority=10))
    assert batch.get_job("render").state == models.BatchJobState.ACTIVE

    batch.create_task("render", models.BatchTaskCreateOptions(id="hello", command_line="/bin/echo hello world"))
    batch.create_task("render", models.BatchTaskCreateOptions(
        id="writer", command_line="/bin/sh -c 'mkdir -p out && echo data > out/data.txt'"))
    # 1,000 tasks: the SDK sends them 100 at a time, in parallel.
    result = batch.create_tasks("render", [
        models.BatchTaskCreateOptions(id=f"frame-{i:04d}", command_line="/bin/true") for i in range(1000)])
    assert len(result.result_values) == 1000 and {r.status for r in result.result_values} == {"success"}
    counts = batch.get_job_task_counts("render").task_counts
    assert (counts.active, counts.completed) == (1002, 0)

    worker = start_worker("--name", "node-1", "--account", "alpha", "--slots", "4", "--poll", "0.1")
    seen_running = wait_for(lambda: batch.get_job_task_counts("render").task_counts.completed > 0,
                            what="the worker to complete tasks")
    assert seen_running
    wait_for(lambda: batch.get_job_task_counts("render").task_counts.completed == 1002, timeout=120,
             what="all tasks to complete")

    # Lists page with odata.nextLink (30 a page: four pages here), filtered and selected. The
    # SDK added the chunks in parallel, so creation order is not id order.
    frames = list(batch.list_tasks("render", filter="startswith(id,'frame-00')", select=["id", "state"],
                                   max_results=30))
    assert sorted(t.id for t in frames) == [f"frame-{i:04d}" for i in range(100)]
    assert {t.state for t in frames} == {models.BatchTaskState.COMPLETED}
    assert frames[0].command_line is None  # not selected

    hello = batch.get_task("render", "hello")
    assert hello.execution_info.exit_code == 0
    assert hello.execution_info.result == models.BatchTaskExecutionResult.SUCCESS
    names = {f.name for f in batch.list_task_files("render", "hello")}
    assert {"stdout.txt", "stderr.txt"} <= names
    assert b"".join(batch.download_task_file("render", "hello", "stdout.txt")) == b"hello world\n"
    assert b"".join(batch.download_task_file("render", "hello", "stdout.txt", ocp_range="bytes=6-10")) == b"world"
    properties = batch.get_task_file_properties("render", "hello", "stdout.txt")
    assert properties.content_length == 12
    # A path with slashes travels as one segment (%2F): routed on the raw path.
    assert b"".join(batch.download_task_file("render", "writer", "wd/out/data.txt")) == b"data\n"
    assert batch.get_task_file_properties("render", "writer", "wd/out/data.txt").content_length == 5
    assert "wd/out/data.txt" in {f.name for f in batch.list_task_files("render", "writer", recursive=True)}

    # Terminate a running task, then reactivate it (it failed: TaskEnded).
    batch.create_task("render", models.BatchTaskCreateOptions(id="long", command_line="/bin/sleep 60"))
    wait_for(lambda: batch.get_task("render", "long").state == models.BatchTaskState.RUNNING, what="long to run")
    batch.terminate_task("render", "long")
    long = batch.get_task("render", "long")
    assert long.state == models.BatchTaskState.COMPLETED and long.execution_info.failure_info.code == "TaskEnded"
    batch.reactivate_task("render", "long")
    assert batch.get_task("render", "long").state in (models.BatchTaskState.ACTIVE, models.BatchTaskState.RUNNING)

    # The long-running job operations, polled by the SDK to their end.
    batch.begin_disable_job("render", models.BatchJobDisableOptions(disable_tasks="requeue"),
                            polling_interval=1).result()
    assert batch.get_job("render").state == models.BatchJobState.DISABLED
    batch.begin_enable_job("render", polling_interval=1).result()
    assert batch.get_job("render").state == models.BatchJobState.ACTIVE
    # azure-batch 15.1 cannot send Terminate Job without options (it fails on its own
    # content-type, before sending), and does not export the options class.
    from azure.batch.models._models import BatchJobTerminateOptions

    batch.begin_terminate_job("render", BatchJobTerminateOptions(termination_reason="done"),
                              polling_interval=1).result()
    job = batch.get_job("render")
    assert job.state == models.BatchJobState.COMPLETED and job.execution_info.termination_reason == "done"
    batch.begin_delete_job("render", polling_interval=1).result()
    with pytest.raises(ResourceNotFoundError):
        batch.get_job("render")
    worker.terminate()
    worker.wait(timeout=30)


def test_the_errors_the_sdk_raises(server, accounts):
    alpha, _ = accounts
    batch = client_for(server, alpha)
    batch.create_job(job_options("once"))
    with pytest.raises(ResourceExistsError) as exists:
        batch.create_job(job_options("ONCE"))  # ids ignore case
    assert exists.value.error.code == "JobExists"
    with pytest.raises(ResourceNotFoundError) as missing:
        batch.get_task("once", "nothing")
    assert missing.value.error.code == "TaskNotFound"
    with pytest.raises(ClientAuthenticationError) as denied:
        client_for(server, alpha, key=alpha.primary_key[:-4] + "AAA=").get_job("once")
    assert denied.value.error.code == "AuthenticationFailed"
    with pytest.raises(ClientAuthenticationError):
        BatchClient(endpoint=f"{server.url}/batch",
                    credential=AzureNamedKeyCredential("nosuchaccount", alpha.primary_key)).get_job("once")


def test_accounts_are_isolated_and_keys_rotate(server, accounts):
    alpha, beta = accounts
    a, b = client_for(server, alpha), client_for(server, beta)
    a.create_job(job_options("shared-name"))
    a.create_task("shared-name", models.BatchTaskCreateOptions(id="t", command_line="/bin/true"))
    # beta cannot see, count, change or delete alpha's job, and learns nothing of it.
    for attempt in (lambda: b.get_job("shared-name"), lambda: b.get_job_task_counts("shared-name"),
                    lambda: b.get_task("shared-name", "t"), lambda: list(b.list_tasks("shared-name")),
                    lambda: b.terminate_task("shared-name", "t"),
                    lambda: list(b.list_task_files("shared-name", "t")),
                    lambda: b"".join(b.download_task_file("shared-name", "t", "stdout.txt")),
                    lambda: b.begin_delete_job("shared-name", polling_interval=1).result()):
        with pytest.raises(ResourceNotFoundError) as caught:
            attempt()
        assert caught.value.status_code == 404
        # (The SDK parses no error body for file downloads: it streams them.)
        assert caught.value.error is None or caught.value.error.code == "JobNotFound"
    assert [j.id for j in b.list_jobs()] == []
    # Job ids are per account: beta may have its own "shared-name".
    b.create_job(job_options("shared-name"))
    assert Job.objects.filter(key="shared-name").count() == 2
    assert a.get_task("shared-name", "t").id == "t"

    # Rotation: the secondary key works throughout; the old primary stops working.
    old = alpha.primary_key
    assert client_for(server, alpha, key=alpha.secondary_key).get_job("shared-name").id == "shared-name"
    from django.core.management import call_command

    call_command("batch_account", "rotate", "alpha", "primary", stdout=open("/dev/null", "w"))
    alpha.refresh_from_db()
    assert alpha.primary_key != old
    with pytest.raises(ClientAuthenticationError):
        client_for(server, alpha, key=old).get_job("shared-name")
    assert client_for(server, alpha).get_job("shared-name").id == "shared-name"
    assert client_for(server, alpha, key=alpha.secondary_key).get_job("shared-name").id == "shared-name"


def test_create_tasks_halves_a_collection_the_server_finds_too_large(server, accounts):
    """Batch takes at most 1 MB a collection; the SDK halves a chunk on 413 RequestBodyTooLarge."""
    alpha, _ = accounts
    batch = client_for(server, alpha)
    batch.create_job(job_options("heavy"))
    padding = [models.EnvironmentSetting(name="PADDING", value="x" * 15_000)]  # 100 of these: 1.5 MB
    result = batch.create_tasks("heavy", [
        models.BatchTaskCreateOptions(id=f"t{i}", command_line="/bin/true", environment_settings=padding)
        for i in range(100)])
    assert len(result.result_values) == 100 and {r.status for r in result.result_values} == {"success"}
    assert Job.objects.get(key="heavy").tasks.count() == 100
    log = server.log_path.read_text()
    assert '/addtaskcollection?api-version=2025-06-01" 413' in log, log  # refused whole, then halved


def test_create_tasks_reports_client_errors_and_takes_existing_tasks_as_added(server, accounts):
    """The SDK reads each task's status: TaskExists counts as added, other client errors fail the call."""
    from azure.batch.models import CreateTasksError

    alpha, _ = accounts
    batch = client_for(server, alpha)
    batch.create_job(job_options("mixed"))
    batch.create_task("mixed", models.BatchTaskCreateOptions(id="old", command_line="/bin/true"))
    again = batch.create_tasks("mixed", [models.BatchTaskCreateOptions(id="old", command_line="/bin/true"),
                                         models.BatchTaskCreateOptions(id="new", command_line="/bin/true")])
    assert sorted(r.task_id for r in again.result_values) == ["new", "old"]
    with pytest.raises(CreateTasksError) as caught:
        batch.create_tasks("mixed", [models.BatchTaskCreateOptions(
            id="blocked", command_line="/bin/true", depends_on=models.BatchTaskDependencies(task_ids=["old"]))])
    (failure,) = caught.value.failure_tasks
    assert (failure.task_id, failure.error.code) == ("blocked", "TaskDependenciesNotSpecifiedOnJob")


# --- Pools (issue 12, first slice: pools as a resource, no nodes yet) -------------------------

def render_pool_options(pool_id: str = "render-pool") -> models.BatchPoolCreateOptions:
    return models.BatchPoolCreateOptions(
        id=pool_id, vm_size="standard_d2s_v3", target_dedicated_nodes=2, task_slots_per_node=2,
        start_task=models.BatchStartTask(command_line="/bin/sh -c 'echo ready'", wait_for_success=True,
                                         max_task_retry_count=1),
        metadata=[models.BatchMetadataItem(name="team", value="vfx")],
        virtual_machine_configuration=models.VirtualMachineConfiguration(
            image_reference=models.BatchVmImageReference(publisher="canonical", offer="0001-com-ubuntu-server-jammy",
                                                         sku="22_04-lts", version="latest"),
            node_agent_sku_id="batch.node.ubuntu 22.04"))


def test_the_sdk_adds_lists_reads_and_checks_pools(server, accounts):
    from datetime import timedelta

    alpha, beta = accounts
    batch = client_for(server, alpha)
    batch.create_pool(render_pool_options())
    batch.create_pool(models.BatchPoolCreateOptions(id="Idle", vm_size="standard_d2s_v3"))
    with pytest.raises(ResourceExistsError) as exists:
        batch.create_pool(models.BatchPoolCreateOptions(id="RENDER-POOL", vm_size="standard_d2s_v3"))
    assert exists.value.error.code == "PoolExists"

    pool = batch.get_pool("Render-Pool")  # ids ignore case
    assert pool.id == "render-pool" and pool.url.endswith("/batch/pools/render-pool")
    assert pool.state == models.BatchPoolState.ACTIVE
    assert pool.allocation_state == models.AllocationState.RESIZING  # two nodes wanted, none joined
    assert (pool.target_dedicated_nodes, pool.current_dedicated_nodes) == (2, 0)
    assert pool.task_slots_per_node == 2
    assert pool.task_scheduling_policy.node_fill_type == models.BatchNodeFillType.SPREAD
    assert pool.resize_timeout == timedelta(minutes=15)
    assert pool.start_task.command_line == "/bin/sh -c 'echo ready'" and pool.start_task.wait_for_success is True
    assert [(m.name, m.value) for m in pool.metadata] == [("team", "vfx")]
    vm = pool.virtual_machine_configuration
    assert (vm.image_reference.offer, vm.node_agent_sku_id) == ("0001-com-ubuntu-server-jammy",
                                                                 "batch.node.ubuntu 22.04")
    assert pool.creation_time.tzinfo is not None and pool.etag.startswith("0x")
    assert batch.get_pool("idle").allocation_state == models.AllocationState.STEADY

    assert sorted(p.id for p in batch.list_pools()) == ["Idle", "render-pool"]
    (only,) = batch.list_pools(filter="id eq 'render-pool'", select=["id", "state", "allocationState"])
    assert (only.id, only.state, only.allocation_state) == ("render-pool", models.BatchPoolState.ACTIVE,
                                                            models.AllocationState.RESIZING)
    assert only.vm_size is None and only.start_task is None  # not selected
    assert [p.id for p in batch.list_pools(filter="allocationState eq 'steady'")] == ["Idle"]
    assert sorted(p.id for p in batch.list_pools(max_results=1)) == ["Idle", "render-pool"]  # paged

    assert batch.pool_exists("render-pool") is True
    # azure-batch 15.1's own exception policy raises on the 404 before pool_exists can answer
    # False (on Azure too): the server's answer is the 404.
    with pytest.raises(ResourceNotFoundError) as absent:
        batch.pool_exists("no-such-pool")
    assert absent.value.status_code == 404
    with pytest.raises(ResourceNotFoundError) as missing:
        batch.get_pool("no-such-pool")
    assert missing.value.error.code == "PoolNotFound"
    # Another account sees none of them.
    other = client_for(server, beta)
    assert list(other.list_pools()) == []
    with pytest.raises(ResourceNotFoundError):
        other.pool_exists("render-pool")
    with pytest.raises(ResourceNotFoundError):
        other.get_pool("render-pool")


def test_the_sdk_patches_replaces_and_deletes_a_pool(server, accounts):
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceModifiedError

    from tasks.services.sweeps import sweep

    alpha, _ = accounts
    batch = client_for(server, alpha)
    batch.create_pool(render_pool_options("p"))
    before = batch.get_pool("p")

    batch.update_pool("p", models.BatchPoolUpdateOptions(metadata=[models.BatchMetadataItem(name="stage",
                                                                                            value="two")]))
    patched = batch.get_pool("p")
    assert [(m.name, m.value) for m in patched.metadata] == [("stage", "two")]
    assert patched.start_task.command_line == "/bin/sh -c 'echo ready'"  # not given: kept
    assert patched.etag != before.etag and patched.last_modified > before.last_modified
    with pytest.raises(ResourceModifiedError) as stale:
        batch.update_pool("p", models.BatchPoolUpdateOptions(metadata=[]), etag=before.etag,
                          match_condition=MatchConditions.IfNotModified)
    assert stale.value.status_code == 412
    assert len(batch.get_pool("p").metadata) == 1

    batch.replace_pool_properties("p", models.BatchPoolReplaceOptions(
        application_package_references=[], metadata=[models.BatchMetadataItem(name="stage", value="three")]))
    replaced = batch.get_pool("p")
    assert replaced.start_task is None  # left out: removed
    assert [(m.name, m.value) for m in replaced.metadata] == [("stage", "three")]

    poller = batch.begin_delete_pool("p", polling_interval=1)
    assert batch.get_pool("p").state == models.BatchPoolState.DELETING
    assert not poller.done()
    sweep()  # what a worker's housekeeping does: the pool has no nodes to wait for
    poller.result(timeout=30)
    with pytest.raises(ResourceNotFoundError) as gone:
        batch.get_pool("p")
    assert gone.value.error.code == "PoolNotFound"
    with pytest.raises(ResourceNotFoundError):
        batch.pool_exists("p")

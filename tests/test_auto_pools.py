"""poolInfo.autoPoolSpecification: a pool made for the job, that goes when the job ends (unless keepAlive)."""

import pytest
from azure.batch import models

from pools.models import Pool, PoolState
from pools.services import nodes
from tasks.models import Task

from .helpers import claim, node
from .test_azure_sdk import accounts, client_for  # noqa: F401 (the fixture)

AUTO = {"autoPoolIdPrefix": "render", "poolLifetimeOption": "job",
        "pool": {"vmSize": "STANDARD_D2S_V3", "targetDedicatedNodes": 1, "taskSlotsPerNode": 2,
                 "startTask": {"commandLine": "/bin/true", "waitForSuccess": True}}}


def add_job(api, job_id: str, auto: dict, **more):
    return api.post("/batch/jobs", {"id": job_id, "poolInfo": {"autoPoolSpecification": auto}, **more}, format="json")


@pytest.mark.django_db
def test_a_job_gets_its_own_pool_and_its_tasks_run_there(api):
    assert add_job(api, "auto", AUTO).status_code == 201
    job = api.get("/batch/jobs/auto").json()
    pool_id = job["executionInfo"]["poolId"]
    assert pool_id.startswith("render_") and len(pool_id) == len("render_") + 36
    assert job["poolInfo"]["autoPoolSpecification"]["poolLifetimeOption"] == "job"  # as sent
    pool = api.get(f"/batch/pools/{pool_id}").json()
    assert (pool["vmSize"], pool["targetDedicatedNodes"], pool["taskSlotsPerNode"]) == ("standard_d2s_v3", 1, 2)
    assert pool["startTask"]["commandLine"] == "/bin/true"
    assert Pool.objects.get(batch_id=pool_id).made_for_job == "auto"

    api.post("/batch/jobs/auto/tasks", {"id": "t", "commandLine": "/bin/true"}, format="json")
    node("elsewhere")  # the default pool's node: not this job's
    assert claim(node_id="elsewhere", limit=2) == []
    node("own", pool=pool_id)
    assert claim(node_id="own", limit=2) == []  # its start task must succeed first
    nodes.start_task_ended("own", 0, None)
    assert [t.batch_id for t in claim(node_id="own", limit=2)] == ["t"]
    assert api.get("/batch/jobs/auto/tasks/t").json()["nodeInfo"]["poolId"] == pool_id


@pytest.mark.django_db
def test_the_pool_goes_when_the_job_ends_unless_kept_alive(api):
    add_job(api, "ends", AUTO)
    add_job(api, "kept", {**AUTO, "keepAlive": True})
    add_job(api, "deleted", AUTO)
    ends, kept, deleted = (api.get(f"/batch/jobs/{j}").json()["executionInfo"]["poolId"]
                           for j in ("ends", "kept", "deleted"))
    assert api.post("/batch/jobs/ends/terminate").status_code == 202
    assert api.post("/batch/jobs/kept/terminate").status_code == 202
    assert api.delete("/batch/jobs/deleted").status_code == 202
    assert Pool.objects.get(batch_id=ends).state == PoolState.DELETING
    assert Pool.objects.get(batch_id=deleted).state == PoolState.DELETING
    assert Pool.objects.get(batch_id=kept).state == PoolState.ACTIVE


@pytest.mark.django_db
@pytest.mark.parametrize("pool_info, reason", [
    ({"poolId": "p", "autoPoolSpecification": AUTO}, "mutually exclusive"),
    ({"autoPoolSpecification": {**AUTO, "pool": {"targetDedicatedNodes": 1}}}, "vmSize"),
    ({"autoPoolSpecification": {**AUTO, "poolLifetimeOption": "forever"}}, "poolLifetimeOption"),
    ({"autoPoolSpecification": {**AUTO, "autoPoolIdPrefix": "far-too-long-a-prefix-for-batch"}}, "autoPoolIdPrefix"),
    ({"autoPoolSpecification": {**AUTO, "pool": {**AUTO["pool"], "taskSlotsPerNode": 0}}}, "taskSlotsPerNode"),
])
def test_a_bad_auto_pool_is_refused_and_nothing_is_made(api, pool_info, reason):
    response = api.post("/batch/jobs", {"id": "bad", "poolInfo": pool_info}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] in ("InvalidPropertyValue", "MissingRequiredProperty", "InvalidRequestBody")
    assert reason in str(response.json())
    assert not Pool.objects.exists() and not Task.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_sdk_adds_a_job_with_an_auto_pool(server, accounts):  # noqa: F811 (the fixture)
    alpha, _ = accounts
    batch = client_for(server, alpha)
    batch.create_job(models.BatchJobCreateOptions(id="sdk-auto", pool_info=models.BatchPoolInfo(
        auto_pool_specification=models.BatchAutoPoolSpecification(
            auto_pool_id_prefix="sdk", pool_lifetime_option="job",
            pool=models.BatchPoolSpecification(vm_size="standard_d2s_v3", target_dedicated_nodes=1)))))
    job = batch.get_job("sdk-auto")
    assert job.pool_info.auto_pool_specification.auto_pool_id_prefix == "sdk"
    assert job.execution_info.pool_id.startswith("sdk_")
    assert batch.get_pool(job.execution_info.pool_id).target_dedicated_nodes == 1

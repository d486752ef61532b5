"""The read side of compute nodes in the Batch REST API: List and Get Compute Node, List Pool
Node Counts, the pools' current node counts and a task's nodeInfo; through the API client,
then with the real azure-batch SDK and az CLI against a live Batchsite and a real worker."""

import json
import os
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest
from azure.batch import BatchClient, models
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import ResourceNotFoundError
from django.conf import settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import BatchAccount, Membership, Role, default_account
from pools import node_counts
from pools.models import ComputeNode, NodeState, Pool
from pools.node_load import Load
from pools.services.nodes import leave_pool
from tasks.files import task_dir
from tasks.models import Task
from tasks.services.runs import RunEnd, claim_tasks, finish_tasks

from .helpers import add, make_job, node, wait_for

pytestmark = pytest.mark.django_db

# The az binary, found as tests/test_azure_cli.py finds it (scripts/ensure-azure-cli.sh installs it).
AZ_VERSION = os.environ.get("BATCHSITE_AZURE_CLI_VERSION", "2.91.0")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
AZ = Path(os.environ.get("BATCHSITE_AZURE_CLI_VENV", CACHE / "batchsite" / f"azure-cli-{AZ_VERSION}")) / "bin" / "az"

V = "api-version=2025-06-01"
# Batch's names of the counts, written out: the wire must say exactly these.
COUNT_NAMES = {
    "creating": "creating", "idle": "idle", "offline": "offline", "preempted": "preempted",
    "rebooting": "rebooting", "reimaging": "reimaging", "running": "running", "starting": "starting",
    "startTaskFailed": "starttaskfailed", "leavingPool": "leavingpool", "unknown": "unknown",
    "unusable": "unusable", "waitingForStartTask": "waitingforstarttask", "upgradingOS": "upgradingos",
    "deallocated": "deallocated", "deallocating": "deallocating",
}


def refused(response, status: int, code: str) -> dict:
    """The Batch error body of a refused request, checked; its values as a dict."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code, body
    assert body["message"]["lang"] == "en-US" and body["message"]["value"]
    return {v["key"]: v["value"] for v in body.get("values", [])}


def run_tasks(node_id: str, n: int) -> None:
    """Node `node_id` claims and runs `n` tasks of its pool, one at a time (each starts later), as its agent does."""
    for _ in range(n):
        [task] = claim_tasks(node_id=node_id, limit=1, holding=Load())
        finish_tasks([RunEnd(task, task.attempt, 0)], node_id=node_id, holding=Load())


def wire_counts(counts: node_counts.NodeCounts) -> dict:
    return {**{name: counts.of(state) for name, state in COUNT_NAMES.items()}, "total": counts.total}


def assert_node_counts_exact(api) -> None:
    """GET /nodecounts says what a full count of the node rows says, for every pool of the account."""
    listed = api.get(f"/batch/nodecounts?{V}").json()["value"]
    pools = Pool.objects.filter(account=default_account()).order_by("pk")
    assert [c["poolId"] for c in listed] == [p.batch_id for p in pools]
    for pool, counts in zip(pools, listed):
        dedicated, low_priority = node_counts.actual(pool.pk)
        assert counts == {"poolId": pool.batch_id, "dedicated": wire_counts(dedicated),
                          "lowPriority": wire_counts(low_priority)}


def member_of(django_user_model, account: BatchAccount, name: str) -> APIClient:
    user = django_user_model.objects.create_user(username=name, password=f"{name}-password-1")
    Membership.objects.create(user=user, account=account, role=Role.OPERATOR)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


# --- List and Get Compute Node ---------------------------------------------------------------


def test_a_pools_nodes_are_listed_in_the_wire_format(api):
    node("n1")
    node("n2", slots=3)
    response = api.get(f"/batch/pools/LOCAL/nodes?{V}")  # pool ids ignore case
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; odata=minimalmetadata"
    listed = response.json()["value"]
    assert [n["id"] for n in listed] == ["n1", "n2"]
    first = listed[0]
    assert first["url"] == "http://testserver/batch/pools/local/nodes/n1"
    assert (first["state"], first["schedulingState"], first["isDedicated"]) == ("idle", "enabled", True)
    assert first["affinityId"] == "n1"
    assert first["vmSize"] == Pool.objects.get(key="local").vm_size
    assert (first["totalTasksRun"], first["totalTasksSucceeded"]) == (0, 0)
    assert (first["runningTasksCount"], first["runningTaskSlotsCount"]) == (0, 0)
    for moment in ("stateTransitionTime", "lastBootTime", "allocationTime"):
        assert first[moment].endswith("Z")
    assert set(first["nodeAgentInfo"]) <= {"version", "lastUpdateTime"}
    assert first["nodeAgentInfo"]["lastUpdateTime"].endswith("Z")
    # Batch's list leaves a node's recent tasks out; no endpoint is configured here.
    assert "recentTasks" not in first and "endpointConfiguration" not in first


def test_get_node_shows_its_newest_five_task_runs_and_only_its_pools(api):
    n1 = node("n1")
    add(make_job("render", pool_info={"poolId": "local"}), *[f"t{i}" for i in range(7)])
    run_tasks("n1", 7)
    # Tasks of another pool and of another account that name the same node id (an earlier
    # node of that name, elsewhere), started later still: not this node's.
    elsewhere = add(make_job("elsewhere", pool_info={"poolId": "other"}), "there")[0]
    theirs = add(make_job("theirs", account=BatchAccount.objects.create(name="beta")), "secret")[0]
    Task.objects.filter(pk__in=[elsewhere.pk, theirs.pk]).update(
        node_id="n1", start_time=timezone.now() + timedelta(hours=1))

    response = api.get(f"/batch/pools/local/nodes/n1?{V}")
    assert response.status_code == 200
    assert response["ETag"] == ComputeNode.objects.get(pk=n1.pk).etag
    got = response.json()
    assert (got["id"], got["totalTasksRun"], got["totalTasksSucceeded"], got["state"]) == ("n1", 7, 7, "idle")
    recent = got["recentTasks"]
    assert [t["taskId"] for t in recent] == ["t6", "t5", "t4", "t3", "t2"]  # newest first, five
    assert recent[0]["taskUrl"] == "http://testserver/batch/jobs/render/tasks/t6"
    assert (recent[0]["jobId"], recent[0]["taskState"]) == ("render", "completed")
    info = recent[0]["executionInfo"]
    assert (info["exitCode"], info["retryCount"], info["requeueCount"]) == (0, 0, 0)
    assert info["startTime"] <= info["endTime"]
    # $select on the list reads them too, in one more query for the page.
    listed = api.get(f"/batch/pools/local/nodes?$select=id,recentTasks&{V}").json()["value"]
    assert [[t["taskId"] for t in n["recentTasks"]] for n in listed] == [["t6", "t5", "t4", "t3", "t2"]]


def test_node_lists_filter_on_state_and_select_properties(api):
    for name in ("a", "b", "c"):
        node(name)
    job = make_job("work")
    add(job, "long")
    claim_tasks(node_id="b", limit=1, holding=Load())  # b runs a task now

    def ids(query: str) -> list[str]:
        response = api.get(f"/batch/pools/local/nodes?{query}")
        assert response.status_code == 200, response.content
        return [n["id"] for n in response.json()["value"]]

    assert ids("$filter=state eq 'running'") == ["b"]
    assert ids("$filter=state ne 'running'") == ["a", "c"]
    assert ids("$filter=state eq 'IDLE' or state eq 'running'") == ["a", "b", "c"]
    assert ids("$filter=state eq 'idle' and state ne 'running'") == ["a", "c"]
    assert ids("$filter=state eq 'offline'") == []
    selected = api.get("/batch/pools/local/nodes?$select=id,state,runningTasksCount").json()["value"]
    assert selected == [{"id": "a", "state": "idle", "runningTasksCount": 0},
                        {"id": "b", "state": "running", "runningTasksCount": 1},
                        {"id": "c", "state": "idle", "runningTasksCount": 0}]
    nested = api.get("/batch/pools/local/nodes/b?$select=id,nodeAgentInfo/lastUpdateTime").json()
    assert set(nested) == {"id", "nodeAgentInfo"} and set(nested["nodeAgentInfo"]) == {"lastUpdateTime"}
    assert set(api.get("/batch/pools/local/nodes/a?$select=id,state").json()) == {"id", "state"}

    for query, name in (("$filter=state eq 'sleeping'", "$filter"), ("$filter=state gt 'idle'", "$filter"),
                        ("$filter=id eq 'a'", "$filter"), ("$filter=state eq", "$filter"),
                        ("$select=id,hostname", "$select"), ("$select=nodeAgentInfo/pid", "$select"),
                        ("maxresults=0", "maxresults"), ("maxresults=1001", "maxresults")):
        values = refused(api.get(f"/batch/pools/local/nodes?{query}"), 400, "InvalidQueryParameterValue")
        assert values["QueryParameterName"] == name
    refused(api.get("/batch/pools/local/nodes/a?$select=pid"), 400, "InvalidQueryParameterValue")


def test_node_lists_page_with_a_next_link_that_carries_the_filter(api):
    for i in range(7):
        node(f"node-{i}")
    seen, pages, url = [], 0, f"/batch/pools/local/nodes?{V}&maxresults=3&$filter=state eq 'idle'&$select=id"
    while url:
        body = api.get(url).json()
        pages += 1
        seen += [n["id"] for n in body["value"]]
        url = body.get("odata.nextLink")
        if url:
            assert "api-version=2025-06-01" in url and "%24filter=" in url and "maxresults=3" in url
    assert seen == [f"node-{i}" for i in range(7)]
    assert pages == 3


def test_an_unknown_pool_or_node_answers_404(api):
    node("here")
    api.post(f"/batch/pools?{V}", {"id": "other", "vmSize": "standard_d2s_v3"}, format="json")
    assert refused(api.get("/batch/pools/nowhere/nodes"), 404, "PoolNotFound") == {"PoolId": "nowhere"}
    assert refused(api.get("/batch/pools/nowhere/nodes/here"), 404, "PoolNotFound") == {"PoolId": "nowhere"}
    values = refused(api.get("/batch/pools/local/nodes/ghost"), 404, "NodeNotFound")
    assert values == {"NodeId": "ghost"}
    assert api.get("/batch/pools/local/nodes/ghost").json()["message"]["value"] == "The specified node does not exist."
    refused(api.get("/batch/pools/other/nodes/here"), 404, "NodeNotFound")  # a node of another pool
    assert api.get("/batch/pools/other/nodes").json()["value"] == []


def test_nobody_unauthenticated_reaches_nodes_or_their_counts(anonymous):
    node("n1")
    for path in ("/batch/pools/local/nodes", "/batch/pools/local/nodes/n1", "/batch/nodecounts"):
        refused(anonymous.get(f"{path}?{V}"), 401, "AuthenticationFailed")


def test_another_accounts_pools_and_nodes_are_invisible(api, django_user_model):
    beta = BatchAccount.objects.create(name="beta")
    as_bob = member_of(django_user_model, beta, "bob")
    node("their-node", account="beta", pool="theirs")
    node("our-node")
    assert refused(api.get("/batch/pools/theirs/nodes"), 404, "PoolNotFound") == {"PoolId": "theirs"}
    refused(api.get("/batch/pools/theirs/nodes/their-node"), 404, "PoolNotFound")
    refused(api.get("/batch/pools/local/nodes/their-node"), 404, "NodeNotFound")
    assert [n["id"] for n in api.get("/batch/pools/local/nodes").json()["value"]] == ["our-node"]
    assert [c["poolId"] for c in api.get("/batch/nodecounts").json()["value"]] == ["local"]
    assert api.get("/batch/nodecounts?$filter=poolId eq 'theirs'").json()["value"] == []
    # Bob sees his own, and nothing of ours.
    assert [n["id"] for n in as_bob.get("/batch/pools/theirs/nodes").json()["value"]] == ["their-node"]
    refused(as_bob.get("/batch/pools/local/nodes"), 404, "PoolNotFound")
    assert [c["poolId"] for c in as_bob.get("/batch/nodecounts").json()["value"]] == ["theirs"]


# --- List Pool Node Counts, and the pools' current nodes -----------------------------------------


def test_node_counts_equal_a_full_count_as_nodes_join_run_and_leave(api):
    api.post(f"/batch/pools?{V}", {"id": "Render", "vmSize": "standard_d2s_v3"}, format="json")
    node("a")
    node("b")
    node("r1", pool="render")
    assert_node_counts_exact(api)
    listed = api.get("/batch/nodecounts").json()
    assert listed["odata.metadata"] == "http://testserver/batch/$metadata#poolnodecounts"
    local = next(c for c in listed["value"] if c["poolId"] == "local")
    assert list(local["dedicated"]) == [*COUNT_NAMES, "total"]
    assert set(NodeState.values) <= set(COUNT_NAMES.values())  # every state a node here has is counted
    assert (local["dedicated"]["idle"], local["dedicated"]["total"], local["lowPriority"]["total"]) == (2, 2, 0)

    job = make_job("work")
    add(job, "t1", "t2")
    claim_tasks(node_id="a", limit=2, holding=Load())
    assert_node_counts_exact(api)
    local = api.get("/batch/nodecounts?$filter=poolId eq 'LOCAL'").json()["value"]
    assert [(c["dedicated"]["running"], c["dedicated"]["idle"]) for c in local] == [(1, 1)]

    leave_pool("b")
    leave_pool("r1")
    assert_node_counts_exact(api)
    assert {c["poolId"]: c["dedicated"]["total"] for c in api.get("/batch/nodecounts").json()["value"]} == {
        "local": 1, "Render": 0}


def test_pools_show_their_current_nodes_from_the_count_rows(api):
    node("a")
    node("b")
    node("c")
    # A low-priority node: the count rows follow once repaired from the node table.
    ComputeNode.objects.filter(name="c").update(is_dedicated=False)
    with transaction.atomic():
        node_counts.recount(Pool.objects.get(key="local").pk, repair=True)
    pool = api.get(f"/batch/pools/local?{V}").json()
    assert (pool["currentDedicatedNodes"], pool["currentLowPriorityNodes"]) == (2, 1)
    [listed] = api.get("/batch/pools?$select=id,currentDedicatedNodes,currentLowPriorityNodes").json()["value"]
    assert listed == {"id": "local", "currentDedicatedNodes": 2, "currentLowPriorityNodes": 1}
    [counts] = api.get("/batch/nodecounts").json()["value"]
    assert (counts["dedicated"]["idle"], counts["lowPriority"]["idle"], counts["lowPriority"]["total"]) == (2, 1, 1)
    leave_pool("a")
    assert api.get("/batch/pools/local?$select=currentDedicatedNodes").json() == {"currentDedicatedNodes": 1}


def test_node_counts_filter_on_pool_id_and_page_ten_pools_unless_asked(api):
    for i in range(12):
        api.post(f"/batch/pools?{V}", {"id": f"pool-{i:02d}", "vmSize": "standard_d2s_v3"}, format="json")
    first = api.get(f"/batch/nodecounts?{V}").json()
    assert [c["poolId"] for c in first["value"]] == [f"pool-{i:02d}" for i in range(10)]
    second = api.get(first["odata.nextLink"]).json()
    assert [c["poolId"] for c in second["value"]] == ["pool-10", "pool-11"] and "odata.nextLink" not in second

    seen, url = [], f"/batch/nodecounts?{V}&maxresults=2&$filter=poolId eq 'POOL-01' or poolId eq 'pool-05' or " \
                    "poolId eq 'pool-07'"
    while url:
        body = api.get(url).json()
        seen.append([c["poolId"] for c in body["value"]])
        url = body.get("odata.nextLink")
    assert seen == [["pool-01", "pool-05"], ["pool-07"]]
    for query, name in (("maxresults=0", "maxresults"), ("maxresults=1001", "maxresults"),
                        ("$filter=id eq 'pool-01'", "$filter"), ("$filter=poolId eq 3", "$filter")):
        values = refused(api.get(f"/batch/nodecounts?{query}"), 400, "InvalidQueryParameterValue")
        assert values["QueryParameterName"] == name


def test_node_counts_cost_the_same_queries_for_1_or_50_nodes_and_read_no_node_row(api):
    node("first")

    def count_queries() -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            assert api.get("/batch/nodecounts").status_code == 200
        return [q["sql"] for q in queries.captured_queries]

    one = count_queries()
    for i in range(49):
        node(f"more-{i}")
    fifty = count_queries()
    assert len(one) == len(fifty) == 4  # token, the caller's accounts, a page of pools, their count rows
    assert not any("pools_computenode" in sql for sql in fifty)
    [counts] = api.get("/batch/nodecounts").json()["value"]
    assert counts["dedicated"]["idle"] == counts["dedicated"]["total"] == 50


def test_a_node_list_page_costs_a_fixed_number_of_queries(api):
    node("first")
    with CaptureQueriesContext(connection) as one:
        api.get("/batch/pools/local/nodes")
    for i in range(20):
        node(f"more-{i}")
    with CaptureQueriesContext(connection) as many:
        assert len(api.get("/batch/pools/local/nodes").json()["value"]) == 21
    assert len(one.captured_queries) == len(many.captured_queries) == 4  # token, accounts, the pool, a page


# --- A task's nodeInfo ---------------------------------------------------------------------------


def test_a_task_that_ran_names_its_node_and_where_its_directory_is_served(api):
    node("n1")
    job = make_job("render", pool_info={"poolId": "LOCAL"})
    [task] = add(job, "t1")
    claim_tasks(node_id="n1", limit=1, holding=Load())
    task.refresh_from_db()
    task_dir(task).mkdir(parents=True)
    (task_dir(task) / "stdout.txt").write_text("hello\n")

    info = api.get(f"/batch/jobs/render/tasks/t1?{V}").json()["nodeInfo"]
    assert (info["nodeId"], info["poolId"]) == ("n1", "LOCAL")
    assert info["taskRootDirectory"] == f"workitems/{default_account().name}/render/t1"
    assert info["nodeUrl"] == "http://testserver/batch/pools/LOCAL/nodes/n1"
    got = api.get(info["nodeUrl"])
    assert got.status_code == 200 and got.json()["id"] == "n1"
    assert info["affinityId"] == got.json()["affinityId"]
    assert info["taskRootDirectoryUrl"] == "http://testserver/batch/jobs/render/tasks/t1/files"
    files = api.get(info["taskRootDirectoryUrl"])
    assert files.status_code == 200 and "stdout.txt" in {f["name"] for f in files.json()["value"]}

    # A job naming no pool runs in the default pool, and its tasks say so.
    add(make_job("plain"), "p1")
    claim_tasks(node_id="n1", limit=1, holding=Load())
    plain = api.get("/batch/jobs/plain/tasks/p1?$select=nodeInfo/poolId,nodeInfo/nodeUrl").json()["nodeInfo"]
    assert plain["poolId"] == settings.BATCHSITE_DEFAULT_POOL
    assert api.get(plain["nodeUrl"]).status_code == 200
    # A task that never ran has no nodeInfo.
    add(job, "waiting")
    assert "nodeInfo" not in api.get("/batch/jobs/render/tasks/waiting").json()


# --- The real SDK and CLI, against a live Batchsite with a real worker -----------------------------


def sdk_client(server) -> BatchClient:
    account = default_account()  # the worker's node joins this account's default pool
    return BatchClient(endpoint=f"{server.url}/batch",
                       credential=AzureNamedKeyCredential(account.name, account.primary_key))


@pytest.mark.django_db(transaction=True)
def test_the_sdk_lists_gets_and_counts_a_real_workers_node(server, start_worker):
    batch = sdk_client(server)
    # The job makes the pool (BATCHSITE_AUTO_POOLS), so the pool is listed before its node joins.
    batch.create_job(models.BatchJobCreateOptions(id="nodes", pool_info=models.BatchPoolInfo(pool_id="local")))
    assert list(batch.list_nodes("local")) == []
    batch.create_task("nodes", models.BatchTaskCreateOptions(id="hello", command_line="/bin/echo hello"))
    worker = start_worker("--name", "sdk-node", "--poll", "0.1")
    [listed] = wait_for(lambda: list(batch.list_nodes("local")), what="the worker to join the pool")
    assert (listed.id, listed.scheduling_state) == ("sdk-node", models.SchedulingState.ENABLED)
    assert listed.url == f"{server.url}/batch/pools/local/nodes/sdk-node"
    wait_for(lambda: batch.get_task("nodes", "hello").state == models.BatchTaskState.COMPLETED,
             what="the task to complete")
    got = wait_for(lambda: (n := batch.get_node("local", "sdk-node")).total_tasks_run == 1 and n,
                   what="the node to count its run")
    assert got.state in (models.BatchNodeState.IDLE, models.BatchNodeState.RUNNING)
    assert got.is_dedicated is True and got.affinity_id == "sdk-node"
    assert got.node_agent_info.last_update_time is not None
    [recent] = got.recent_tasks
    assert (recent.job_id, recent.task_id, recent.task_state) == ("nodes", "hello", models.BatchTaskState.COMPLETED)
    assert recent.execution_info.exit_code == 0
    node_info = batch.get_task("nodes", "hello").node_info
    assert (node_info.node_id, node_info.pool_id, node_info.affinity_id) == ("sdk-node", "local", "sdk-node")

    assert [n.id for n in batch.list_nodes("local", filter="state eq 'offline'")] == []
    assert [n.id for n in batch.list_nodes("local", select=["id", "state"])] == ["sdk-node"]
    [counts] = list(batch.list_pool_node_counts())
    assert (counts.pool_id, counts.dedicated.total, counts.low_priority.total) == ("local", 1, 0)
    assert counts.dedicated.idle + counts.dedicated.running == 1 and counts.dedicated.start_task_failed == 0

    with pytest.raises(ResourceNotFoundError) as missing:
        batch.get_node("local", "no-such-node")
    assert missing.value.error.code == "NodeNotFound"
    with pytest.raises(ResourceNotFoundError) as missing:
        list(batch.list_nodes("no-such-pool"))
    assert missing.value.error.code == "PoolNotFound"

    worker.terminate()
    worker.wait(timeout=30)
    wait_for(lambda: list(batch.list_nodes("local")) == [], what="the node to leave its pool")
    [counts] = list(batch.list_pool_node_counts(filter="poolId eq 'local'"))
    assert counts.dedicated.total == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not AZ.exists(), reason=f"azure-cli is not installed at {AZ} (scripts/ensure-azure-cli.sh)")
def test_az_batch_node_commands_list_show_and_count_a_real_workers_node(server, start_worker, tmp_path):
    account = default_account()
    env = {**os.environ, "AZURE_CONFIG_DIR": str(tmp_path / "azure-config"), "AZURE_CORE_COLLECT_TELEMETRY": "0",
           "AZURE_CORE_NO_COLOR": "1", "AZURE_CORE_ONLY_SHOW_ERRORS": "1"}
    auth = ["--account-name", account.name, "--account-key", account.primary_key,
            "--account-endpoint", f"{server.url}/batch"]

    def az(*args: str, check: bool = True):
        result = subprocess.run([str(AZ), *args, *auth], env=env, cwd=tmp_path, capture_output=True, text=True,
                                timeout=120)
        if check:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return json.loads(result.stdout) if result.stdout.strip() else result

    worker = start_worker("--name", "cli-node", "--poll", "0.1")
    deadline = time.monotonic() + 60
    # Until the worker joins, its pool may not exist yet (PoolNotFound), then has no node.
    while not isinstance(listed := az("batch", "node", "list", "--pool-id", "local", check=False), list) \
            or not listed:
        assert time.monotonic() < deadline, f"the worker did not join its pool: {listed}"
        time.sleep(0.5)
    assert [n["id"] for n in listed] == ["cli-node"]
    assert listed[0]["state"] in ("idle", "running") and listed[0]["schedulingState"] == "enabled"

    shown = az("batch", "node", "show", "--pool-id", "local", "--node-id", "cli-node")
    assert (shown["id"], shown["isDedicated"], shown["affinityId"]) == ("cli-node", True, "cli-node")
    assert shown["url"].endswith("/batch/pools/local/nodes/cli-node")
    selected = az("batch", "node", "list", "--pool-id", "local", "--select", "id,state")
    assert [n["id"] for n in selected] == ["cli-node"]

    [counts] = az("batch", "pool", "node-counts", "list")
    assert counts["poolId"] == "local"
    assert counts["dedicated"]["total"] == 1 and counts["lowPriority"]["total"] == 0
    assert counts["dedicated"]["idle"] + counts["dedicated"]["running"] == 1

    missing = az("batch", "node", "show", "--pool-id", "local", "--node-id", "ghost", check=False)
    assert missing.returncode != 0 and "The specified node does not exist" in missing.stderr
    worker.terminate()
    worker.wait(timeout=30)

"""The Batch REST operations on pools (the first slice of issue 12: pools as a resource, no
nodes yet): Add, List, Get, Exists, Patch, Update Properties and Delete, in the wire format
and with the errors the Batch clients read."""

import re
from email.utils import parsedate_to_datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import BatchAccount, Membership, Role, default_account
from pools.models import Pool
from tasks.services.sweeps import sweep

pytestmark = pytest.mark.django_db

AZURE_VM = {
    "imageReference": {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy",
                       "sku": "22_04-lts", "version": "latest"},
    "nodeAgentSKUId": "batch.node.ubuntu 22.04",
    "dataDisks": [{"lun": 0, "diskSizeGB": 64, "caching": "readonly"}],
}


def add_pool(api, pool_id: str = "p", **body):
    return api.post("/batch/pools?api-version=2025-06-01", {"id": pool_id, "vmSize": "standard_d2s_v3", **body},
                    format="json")


def refused(response, status: int, code: str) -> dict:
    """The Batch error body of a refused request, checked; its values as a dict."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code, body
    assert body["message"]["lang"] == "en-US" and body["message"]["value"]
    return {v["key"]: v["value"] for v in body.get("values", [])}


def client_of(user, account_name: str | None = None) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}",
                       **({"HTTP_BATCHSITE_ACCOUNT": account_name} if account_name else {}))
    return client


def test_a_pool_is_added_and_read_back_in_the_wire_format(api):
    response = add_pool(api, "Render-Pool", displayName="Render farm", targetDedicatedNodes=2,
                        startTask={"commandLine": "/bin/sh -c 'echo ready'", "waitForSuccess": True,
                                   "maxTaskRetryCount": 2,
                                   "environmentSettings": [{"name": "STAGE", "value": "prep"}],
                                   "resourceFiles": [{"httpUrl": "http://example/tool", "filePath": "bin/tool"}]},
                        metadata=[{"name": "team", "value": "vfx"}], virtualMachineConfiguration=AZURE_VM)
    assert response.status_code == 201, response.content
    assert response["Location"].endswith("/batch/pools/Render-Pool")
    assert response["ETag"].startswith("0x")
    assert parsedate_to_datetime(response["Last-Modified"])

    response = api.get("/batch/pools/render-pool?api-version=2025-06-01")  # ids ignore case
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; odata=minimalmetadata"
    pool = response.json()
    assert pool["id"] == "Render-Pool"  # but keep it
    assert pool["displayName"] == "Render farm"
    assert pool["url"].endswith("/batch/pools/Render-Pool")
    assert pool["vmSize"] == "standard_d2s_v3"
    assert pool["state"] == "active"
    assert pool["allocationState"] == "resizing"  # two nodes wanted, none has joined
    assert (pool["targetDedicatedNodes"], pool["currentDedicatedNodes"]) == (2, 0)
    assert (pool["targetLowPriorityNodes"], pool["currentLowPriorityNodes"]) == (0, 0)
    assert pool["taskSlotsPerNode"] == 1
    assert pool["taskSchedulingPolicy"] == {"nodeFillType": "spread"}
    assert pool["resizeTimeout"] == "PT15M"
    assert pool["enableAutoScale"] is False
    assert pool["startTask"] == {"commandLine": "/bin/sh -c 'echo ready'", "waitForSuccess": True,
                                 "maxTaskRetryCount": 2, "environmentSettings": [{"name": "STAGE", "value": "prep"}],
                                 "resourceFiles": [{"httpUrl": "http://example/tool", "filePath": "bin/tool"}]}
    assert pool["metadata"] == [{"name": "team", "value": "vfx"}]
    assert pool["virtualMachineConfiguration"] == AZURE_VM  # an Azure definition round-trips unchanged
    assert pool["eTag"] == response["ETag"]
    assert pool["creationTime"].endswith("Z") and pool["lastModified"].endswith("Z")
    assert pool["stateTransitionTime"].endswith("Z") and pool["allocationStateTransitionTime"].endswith("Z")


def test_a_pool_without_targets_is_steady_and_takes_its_scheduling_settings(api):
    assert add_pool(api, "quiet", taskSlotsPerNode=4, taskSchedulingPolicy={"nodeFillType": "pack"},
                    resizeTimeout="PT30M").status_code == 201
    pool = api.get("/batch/pools/quiet").json()
    assert pool["allocationState"] == "steady"
    assert pool["targetDedicatedNodes"] == 0
    assert pool["taskSlotsPerNode"] == 4
    assert pool["taskSchedulingPolicy"] == {"nodeFillType": "pack"}
    assert pool["resizeTimeout"] == "PT30M"
    assert "startTask" not in pool and "metadata" not in pool


def test_pool_ids_are_unique_without_regard_to_case(api):
    assert add_pool(api, "P1").status_code == 201
    values = refused(add_pool(api, "p1"), 409, "PoolExists")
    assert values["PoolId"] == "p1"
    assert Pool.objects.count() == 1


@pytest.mark.parametrize(("body", "code", "prop"), [
    ({"id": "p"}, "MissingRequiredProperty", "vmSize"),
    ({"vmSize": "standard_d2s_v3"}, "MissingRequiredProperty", "id"),
    ({"id": "bad id!", "vmSize": "standard_d2s_v3"}, "InvalidPropertyValue", "id"),
    ({"id": "p", "vmSize": "standard_d2s_v3", "taskSlotsPerNode": 0}, "InvalidPropertyValue", "taskSlotsPerNode"),
    ({"id": "p", "vmSize": "standard_d2s_v3", "taskSlotsPerNode": 257}, "InvalidPropertyValue", "taskSlotsPerNode"),
    ({"id": "p", "vmSize": "standard_d2s_v3", "targetDedicatedNodes": -1}, "InvalidPropertyValue",
     "targetDedicatedNodes"),
    ({"id": "p", "vmSize": "standard_d2s_v3", "resizeTimeout": "PT1M"}, "InvalidPropertyValue", "resizeTimeout"),
    ({"id": "p", "vmSize": "standard_d2s_v3", "taskSchedulingPolicy": {"nodeFillType": "scatter"}},
     "InvalidPropertyValue", "nodeFillType"),
    ({"id": "p", "vmSize": "standard_d2s_v3", "enableAutoScale": True}, "InvalidPropertyValue", "autoScaleFormula"),
    ({"id": "p", "vmSize": "standard_d2s_v3", "enableAutoScale": True, "autoScaleFormula": "$TargetDedicatedNodes=1;",
      "targetDedicatedNodes": 1}, "InvalidPropertyValue", "targetDedicatedNodes"),
    ({"id": "p", "vmSize": "standard_d2s_v3", "maxNodes": 3}, "InvalidRequestBody", "maxNodes"),
    ({"id": "p", "vmSize": "standard_d2s_v3", "startTask": {"waitForSuccess": True}}, "MissingRequiredProperty",
     "commandLine"),
    ({"id": "p", "vmSize": "standard_d2s_v3", "startTask": {
        "commandLine": "/bin/true", "resourceFiles": [{"httpUrl": "http://example/x", "filePath": "/etc/passwd"}]}},
     "InvalidPropertyValue", "resourceFiles"),
])
def test_a_bad_pool_is_refused_in_the_batch_error_shape_and_not_added(api, body, code, prop):
    values = refused(api.post("/batch/pools", body, format="json"), 400, code)
    named = values.get("PropertyName", "").split(".")[-1]
    assert re.sub(r"\[\d+\]$", "", named) == prop, values
    assert not Pool.objects.exists()


def test_an_autoscaled_pool_keeps_its_formula(api):
    formula = "$TargetDedicatedNodes = 2;"
    assert add_pool(api, "auto", enableAutoScale=True, autoScaleFormula=formula,
                    autoScaleEvaluationInterval="PT10M").status_code == 201
    pool = api.get("/batch/pools/auto").json()
    assert (pool["enableAutoScale"], pool["autoScaleFormula"]) == (True, formula)
    assert pool["autoScaleEvaluationInterval"] == "PT10M"


def test_pool_lists_filter_by_state_and_id_and_select_properties(api):
    for pool_id in ("alpha", "Beta", "gamma"):
        add_pool(api, pool_id, metadata=[{"name": "k", "value": pool_id}])
    api.delete("/batch/pools/gamma")
    listed = api.get("/batch/pools?api-version=2025-06-01").json()["value"]
    assert [p["id"] for p in listed] == ["alpha", "Beta", "gamma"]
    active = api.get("/batch/pools?$filter=state eq 'active'").json()["value"]
    assert [p["id"] for p in active] == ["alpha", "Beta"]
    assert [p["id"] for p in api.get("/batch/pools?$filter=id eq 'beta'").json()["value"]] == ["Beta"]
    assert [p["id"] for p in api.get("/batch/pools?$filter=state eq 'deleting'").json()["value"]] == ["gamma"]
    selected = api.get("/batch/pools?$select=id,state&$filter=state eq 'active'").json()["value"]
    assert selected == [{"id": "alpha", "state": "active"}, {"id": "Beta", "state": "active"}]
    nested = api.get("/batch/pools/alpha?$select=id,taskSchedulingPolicy/nodeFillType").json()
    assert {k: v for k, v in nested.items() if k != "odata.metadata"} == {
        "id": "alpha", "taskSchedulingPolicy": {"nodeFillType": "spread"}}
    refused(api.get("/batch/pools?$select=id,nodes"), 400, "InvalidQueryParameterValue")
    refused(api.get("/batch/pools?$filter=state eq 'gone'"), 400, "InvalidQueryParameterValue")


def test_a_selected_pool_list_reads_only_its_columns_in_a_fixed_number_of_queries(api, django_assert_num_queries):
    add_pool(api, "first", startTask={"commandLine": "/bin/true"}, virtualMachineConfiguration=AZURE_VM)
    with django_assert_num_queries(3):  # token, the caller's accounts, one page
        api.get("/batch/pools?$select=id,state")
    for i in range(20):
        add_pool(api, f"more-{i}")
    with CaptureQueriesContext(connection) as queries:
        body = api.get("/batch/pools?$select=id,state").json()
    assert len(queries.captured_queries) == 3
    assert len(body["value"]) == 21
    page_query = queries.captured_queries[-1]["sql"]
    assert "start_task" not in page_query and "azure_settings" not in page_query and "metadata" not in page_query


def test_pool_lists_page_with_a_next_link_that_carries_the_filter(api):
    for i in range(7):
        add_pool(api, f"pool-{i}")
    add_pool(api, "other")
    seen, pages, url = [], 0, "/batch/pools?api-version=2025-06-01&maxresults=3&$filter=startswith(id,'POOL-')"
    while url:
        body = api.get(url).json()
        pages += 1
        seen += [p["id"] for p in body["value"]]
        url = body.get("odata.nextLink")
        if url:
            assert "api-version=2025-06-01" in url and "%24filter=" in url and "maxresults=3" in url
    assert seen == [f"pool-{i}" for i in range(7)]
    assert pages == 3


def test_exists_answers_200_with_the_etag_or_404(api):
    add_pool(api, "here")
    response = api.head("/batch/pools/HERE?api-version=2025-06-01")
    assert response.status_code == 200
    assert response["ETag"] == api.get("/batch/pools/here")["ETag"]
    assert not response.content
    assert api.head("/batch/pools/nowhere").status_code == 404


def test_patch_changes_only_the_given_properties_and_moves_the_etag(api):
    add_pool(api, "p", targetDedicatedNodes=1, startTask={"commandLine": "/bin/echo one"},
             metadata=[{"name": "a", "value": "1"}], virtualMachineConfiguration=AZURE_VM)
    before = api.get("/batch/pools/p").json()
    response = api.patch("/batch/pools/p", {"metadata": [{"name": "b", "value": "2"}]}, format="json")
    assert response.status_code == 200, response.content
    after = api.get("/batch/pools/p").json()
    assert after["metadata"] == [{"name": "b", "value": "2"}]
    assert after["startTask"] == {"commandLine": "/bin/echo one"}  # not given: kept
    assert after["eTag"] == response["ETag"] != before["eTag"]
    assert after["lastModified"] > before["lastModified"]
    assert after["creationTime"] == before["creationTime"]

    assert api.patch("/batch/pools/p", {"startTask": {"commandLine": "/bin/echo two", "waitForSuccess": False}},
                     format="json").status_code == 200
    after = api.get("/batch/pools/p").json()
    assert after["startTask"] == {"commandLine": "/bin/echo two", "waitForSuccess": False}
    assert after["metadata"] == [{"name": "b", "value": "2"}]  # not given: kept
    assert (after["vmSize"], after["targetDedicatedNodes"]) == ("standard_d2s_v3", 1)
    assert after["virtualMachineConfiguration"] == AZURE_VM

    refused(api.patch("/batch/pools/p", {"startTask": {"waitForSuccess": True}}, format="json"),
            400, "MissingRequiredProperty")
    refused(api.patch("/batch/pools/p", {"targetDedicatedNodes": 5}, format="json"), 400, "InvalidRequestBody")
    refused(api.patch("/batch/pools/nowhere", {"metadata": []}, format="json"), 404, "PoolNotFound")
    assert api.get("/batch/pools/p").json()["startTask"]["commandLine"] == "/bin/echo two"


def test_update_properties_replaces_the_start_task_and_metadata(api):
    add_pool(api, "p", startTask={"commandLine": "/bin/echo one"}, metadata=[{"name": "a", "value": "1"}])
    before = api.get("/batch/pools/p").json()
    response = api.post("/batch/pools/p/updateproperties?api-version=2025-06-01", {
        "certificateReferences": [], "applicationPackageReferences": [],
        "metadata": [{"name": "b", "value": "2"}]}, format="json")
    assert response.status_code == 204, response.content
    after = api.get("/batch/pools/p").json()
    assert "startTask" not in after  # left out: removed
    assert after["metadata"] == [{"name": "b", "value": "2"}]  # replaced, not merged
    assert after["eTag"] == response["ETag"] != before["eTag"]

    assert api.post("/batch/pools/p/updateproperties", {
        "startTask": {"commandLine": "/bin/echo two"}, "certificateReferences": [],
        "applicationPackageReferences": [], "metadata": []}, format="json").status_code == 204
    after = api.get("/batch/pools/p").json()
    assert after["startTask"] == {"commandLine": "/bin/echo two"}
    assert "metadata" not in after  # an empty list removes it
    values = refused(api.post("/batch/pools/p/updateproperties", {"applicationPackageReferences": [],
                                                                  "certificateReferences": []}, format="json"),
                     400, "MissingRequiredProperty")
    assert values["PropertyName"] == "metadata"


def test_update_properties_takes_the_body_of_api_versions_without_certificates(api):
    """Certificates left the Batch API (2024-07-01): its Update Properties body requires only
    applicationPackageReferences and metadata, which is what azure-batch 15 sends."""
    add_pool(api, "p", metadata=[{"name": "a", "value": "1"}])
    response = api.post("/batch/pools/p/updateproperties?api-version=2025-06-01", {
        "applicationPackageReferences": [], "metadata": [{"name": "b", "value": "2"}]}, format="json")
    assert response.status_code == 204, response.content
    assert api.get("/batch/pools/p").json()["metadata"] == [{"name": "b", "value": "2"}]


def test_a_stale_etag_refuses_changes_to_a_pool_and_changes_nothing(api):
    add_pool(api, "p", metadata=[{"name": "a", "value": "1"}])
    stale = api.get("/batch/pools/p")["ETag"]
    assert api.patch("/batch/pools/p", {"metadata": [{"name": "b", "value": "2"}]}, format="json",
                     HTTP_IF_MATCH=stale).status_code == 200
    refused(api.patch("/batch/pools/p", {"metadata": [{"name": "c", "value": "3"}]}, format="json",
                      HTTP_IF_MATCH=stale), 412, "ConditionNotMet")
    refused(api.post("/batch/pools/p/updateproperties", {"certificateReferences": [],
                                                         "applicationPackageReferences": [], "metadata": []},
                     format="json", HTTP_IF_MATCH=stale), 412, "ConditionNotMet")
    refused(api.delete("/batch/pools/p", HTTP_IF_MATCH=stale), 412, "ConditionNotMet")
    pool = api.get("/batch/pools/p").json()
    assert (pool["state"], pool["metadata"]) == ("active", [{"name": "b", "value": "2"}])
    assert api.get("/batch/pools/p", HTTP_IF_NONE_MATCH=pool["eTag"]).status_code == 304
    assert api.head("/batch/pools/p", HTTP_IF_NONE_MATCH=pool["eTag"]).status_code == 304


def test_deleting_a_pool_answers_at_once_and_the_sweep_removes_it(api):
    add_pool(api, "doomed", targetDedicatedNodes=1)
    response = api.delete("/batch/pools/doomed?api-version=2025-06-01")
    assert response.status_code == 202 and not response.content
    pool = api.get("/batch/pools/doomed").json()
    assert pool["state"] == "deleting"
    assert refused(api.delete("/batch/pools/doomed"), 409, "PoolBeingDeleted")["PoolId"] == "doomed"
    refused(api.patch("/batch/pools/doomed", {"metadata": []}, format="json"), 409, "PoolBeingDeleted")
    refused(api.post("/batch/pools/doomed/updateproperties", {"certificateReferences": [],
                                                              "applicationPackageReferences": [], "metadata": []},
                     format="json"), 409, "PoolBeingDeleted")
    refused(add_pool(api, "DOOMED"), 409, "PoolExists")  # its id stays taken until it is gone
    sweep()
    assert refused(api.get("/batch/pools/doomed"), 404, "PoolNotFound")["PoolId"] == "doomed"
    assert api.head("/batch/pools/doomed").status_code == 404
    refused(api.delete("/batch/pools/doomed"), 404, "PoolNotFound")
    assert add_pool(api, "DOOMED").status_code == 201  # the id is free again


def test_another_accounts_pool_is_invisible(api, django_user_model):
    beta = BatchAccount.objects.create(name="beta")
    bob = django_user_model.objects.create_user(username="bob", password="bob-password-1")
    Membership.objects.create(user=bob, account=beta, role=Role.OPERATOR)
    as_bob = client_of(bob)
    assert add_pool(as_bob, "theirs", metadata=[{"name": "secret", "value": "x"}]).status_code == 201
    refused(api.get("/batch/pools/theirs"), 404, "PoolNotFound")
    assert api.head("/batch/pools/theirs").status_code == 404
    refused(api.patch("/batch/pools/theirs", {"metadata": []}, format="json"), 404, "PoolNotFound")
    refused(api.post("/batch/pools/theirs/updateproperties", {"certificateReferences": [],
                                                              "applicationPackageReferences": [], "metadata": []},
                     format="json"), 404, "PoolNotFound")
    refused(api.delete("/batch/pools/theirs"), 404, "PoolNotFound")
    assert api.get("/batch/pools").json()["value"] == []
    assert api.get("/batch/pools?$filter=id eq 'theirs'").json()["value"] == []
    # Pool ids are per account: the default account may have its own "theirs".
    assert add_pool(api, "theirs").status_code == 201
    assert {p.account.name for p in Pool.objects.filter(key="theirs")} == {"beta", default_account().name}
    assert as_bob.get("/batch/pools/theirs").json()["metadata"] == [{"name": "secret", "value": "x"}]
    assert Pool.objects.get(account=beta).state == "active"


def test_a_viewer_may_list_pools_but_not_change_them(api, django_user_model):
    add_pool(api, "shared")
    vera = django_user_model.objects.create_user(username="vera", password="vera-password-1")
    Membership.objects.create(user=vera, account=default_account(), role=Role.VIEWER)
    as_vera = client_of(vera)
    assert [p["id"] for p in as_vera.get("/batch/pools").json()["value"]] == ["shared"]
    assert as_vera.get("/batch/pools/shared").status_code == 200
    assert as_vera.head("/batch/pools/shared").status_code == 200
    refused(add_pool(as_vera, "mine"), 403, "InsufficientAccountPermissions")
    refused(as_vera.patch("/batch/pools/shared", {"metadata": []}, format="json"), 403,
            "InsufficientAccountPermissions")
    refused(as_vera.post("/batch/pools/shared/updateproperties", {"certificateReferences": [],
                                                                  "applicationPackageReferences": [],
                                                                  "metadata": []}, format="json"),
            403, "InsufficientAccountPermissions")
    refused(as_vera.delete("/batch/pools/shared"), 403, "InsufficientAccountPermissions")
    assert [p.batch_id for p in Pool.objects.all()] == ["shared"]
    assert Pool.objects.get().state == "active"


def test_durations_a_pool_cannot_have_are_refused_and_the_autoscale_interval_has_its_default(api):
    unlimited = "P10675199DT2H48M5.4775807S"  # Batch's maximum: "no limit", which a resize may not have
    refused(add_pool(api, "forever", resizeTimeout=unlimited), 400, "InvalidPropertyValue")
    formula = "$TargetDedicatedNodes = 1;"
    for interval in ("PT1M", "PT169H", unlimited):
        refused(add_pool(api, "auto", enableAutoScale=True, autoScaleFormula=formula,
                         autoScaleEvaluationInterval=interval), 400, "InvalidPropertyValue")
    assert add_pool(api, "auto", enableAutoScale=True, autoScaleFormula=formula).status_code == 201
    assert api.get("/batch/pools/auto").json()["autoScaleEvaluationInterval"] == "PT15M"
    assert add_pool(api, "fixed", targetDedicatedNodes=1).status_code == 201
    assert "autoScaleEvaluationInterval" not in api.get("/batch/pools/fixed").json()
    assert set(Pool.objects.values_list("batch_id", flat=True)) == {"auto", "fixed"}


def test_a_start_task_is_stored_as_validated_not_as_sent(api):
    start = {"commandLine": "/bin/true", "maxTaskRetryCount": 2,
             "userIdentity": {"autoUser": {"scope": "POOL", "elevationLevel": "NonAdmin"}}}
    assert add_pool(api, "p", startTask=start).status_code == 201
    stored = Pool.objects.get(batch_id="p").start_task
    assert stored["userIdentity"]["autoUser"] == {"scope": "pool", "elevationLevel": "nonadmin"}
    assert type(stored) is dict and type(stored["userIdentity"]) is dict
    assert add_pool(api, "q", startTask={"commandLine": "x", "waitForSuccess": "false"}).status_code == 201
    assert Pool.objects.get(batch_id="q").start_task["waitForSuccess"] is False  # the SDK reads "false" as true
    assert api.get("/batch/pools/q").json()["startTask"]["waitForSuccess"] is False


def test_vm_sizes_are_kept_lower_cased_so_a_filter_finds_them_in_any_case(api):
    assert add_pool(api, "p", vmSize="Standard_D2s_v3").status_code == 201
    assert api.get("/batch/pools/p").json()["vmSize"] == "standard_d2s_v3"
    found = api.get("/batch/pools", {"$filter": "vmSize eq 'STANDARD_D2S_V3'"}).json()["value"]
    assert [p["id"] for p in found] == ["p"]


def test_patch_takes_what_add_pool_set_while_the_pool_has_no_node(api):
    add_pool(api, "p", virtualMachineConfiguration=AZURE_VM)
    response = api.patch("/batch/pools/p", {
        "displayName": "renamed", "taskSlotsPerNode": 4, "vmSize": "Standard_D4s_v3",
        "taskSchedulingPolicy": {"nodeFillType": "Pack", "jobDefaultOrder": "CreationTime"},
        "resourceTags": {"team": "render"}}, format="json")
    assert response.status_code == 200, response.content
    pool = api.get("/batch/pools/p").json()
    assert (pool["displayName"], pool["taskSlotsPerNode"], pool["vmSize"]) == ("renamed", 4, "standard_d4s_v3")
    assert pool["taskSchedulingPolicy"] == {"nodeFillType": "pack", "jobDefaultOrder": "creationtime"}
    assert pool["resourceTags"] == {"team": "render"}
    assert pool["virtualMachineConfiguration"] == AZURE_VM  # merged, not replaced
    refused(api.patch("/batch/pools/p", {"taskSlotsPerNode": 0}, format="json"), 400, "InvalidPropertyValue")


@pytest.mark.django_db
def test_a_target_beyond_the_pools_node_limit_is_refused(api, settings):
    too_many = settings.BATCHSITE_MAX_NODES_PER_POOL + 1
    body = {"id": "huge", "vmSize": "standard_d2s_v3", "targetDedicatedNodes": too_many}
    response = api.post("/batch/pools", body, format="json")
    assert response.status_code == 400 and "targetDedicatedNodes" in str(response.json())
    api.post("/batch/pools", {"id": "fine", "vmSize": "standard_d2s_v3"}, format="json")
    response = api.post("/batch/pools/fine/resize", {"targetLowPriorityNodes": too_many}, format="json")
    assert response.status_code == 400 and "targetLowPriorityNodes" in str(response.json())

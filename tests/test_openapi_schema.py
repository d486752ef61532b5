"""The Batch API's OpenAPI schema: generated without a warning, valid, true to the code that
answers, and served only to users who may see it (the Swagger UI with no inline script, no CDN)."""

import json
import re

import pytest
import yaml
from django.core.management import call_command
from django.urls import get_resolver
from drf_spectacular.generators import SchemaGenerator
from rest_framework.authtoken.models import Token

from batchapi.schema import PATH_NAMES
from jobs import serializers as job_wire
from jobs.models import JobState
from pools import serializers as pool_wire
from pools.models import NodeState
from tasks import serializers as task_wire
from tasks.models import TaskState

from .helpers import make_job

pytestmark = pytest.mark.django_db

OPERATIONS = {
    ("get", "/pools"): "Pool_List",
    ("post", "/pools"): "Pool_Add",
    ("get", "/pools/{poolId}"): "Pool_Get",
    ("head", "/pools/{poolId}"): "Pool_Exists",
    ("patch", "/pools/{poolId}"): "Pool_Patch",
    ("delete", "/pools/{poolId}"): "Pool_Delete",
    ("post", "/pools/{poolId}/updateproperties"): "Pool_UpdateProperties",
    ("get", "/pools/{poolId}/nodes"): "ComputeNode_List",
    ("get", "/pools/{poolId}/nodes/{nodeId}"): "ComputeNode_Get",
    ("post", "/pools/{poolId}/resize"): "Pool_Resize",
    ("post", "/pools/{poolId}/stopresize"): "Pool_StopResize",
    ("post", "/pools/{poolId}/removenodes"): "Pool_RemoveNodes",
    ("post", "/pools/{poolId}/nodes/{nodeId}/disablescheduling"): "ComputeNode_DisableScheduling",
    ("post", "/pools/{poolId}/nodes/{nodeId}/enablescheduling"): "ComputeNode_EnableScheduling",
    ("post", "/pools/{poolId}/nodes/{nodeId}/reboot"): "ComputeNode_Reboot",
    ("get", "/pools/{poolId}/nodes/{nodeId}/files"): "File_ListFromComputeNode",
    ("get", "/pools/{poolId}/nodes/{nodeId}/files/{filePath}"): "File_GetFromComputeNode",
    ("head", "/pools/{poolId}/nodes/{nodeId}/files/{filePath}"): "File_GetPropertiesFromComputeNode",
    ("delete", "/pools/{poolId}/nodes/{nodeId}/files/{filePath}"): "File_DeleteFromComputeNode",
    ("get", "/nodecounts"): "Account_ListPoolNodeCounts",
    ("get", "/jobs"): "Job_List",
    ("post", "/jobs"): "Job_Add",
    ("get", "/jobs/{jobId}"): "Job_Get",
    ("patch", "/jobs/{jobId}"): "Job_Patch",
    ("put", "/jobs/{jobId}"): "Job_Update",
    ("delete", "/jobs/{jobId}"): "Job_Delete",
    ("post", "/jobs/{jobId}/terminate"): "Job_Terminate",
    ("post", "/jobs/{jobId}/disable"): "Job_Disable",
    ("post", "/jobs/{jobId}/enable"): "Job_Enable",
    ("get", "/jobs/{jobId}/taskcounts"): "Job_GetTaskCounts",
    ("get", "/jobs/{jobId}/jobpreparationandreleasetaskstatus"): "Job_ListPreparationAndReleaseTaskStatus",
    ("get", "/jobs/{jobId}/tasks"): "Task_List",
    ("post", "/jobs/{jobId}/tasks"): "Task_Add",
    ("post", "/jobs/{jobId}/addtaskcollection"): "Task_AddCollection",
    ("get", "/jobs/{jobId}/tasks/{taskId}"): "Task_Get",
    ("put", "/jobs/{jobId}/tasks/{taskId}"): "Task_Update",
    ("delete", "/jobs/{jobId}/tasks/{taskId}"): "Task_Delete",
    ("post", "/jobs/{jobId}/tasks/{taskId}/terminate"): "Task_Terminate",
    ("post", "/jobs/{jobId}/tasks/{taskId}/reactivate"): "Task_Reactivate",
    ("get", "/jobs/{jobId}/tasks/{taskId}/files"): "File_ListFromTask",
    ("get", "/jobs/{jobId}/tasks/{taskId}/files/{filePath}"): "File_GetFromTask",
    ("head", "/jobs/{jobId}/tasks/{taskId}/files/{filePath}"): "File_GetPropertiesFromTask",
}


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(json.dumps(SchemaGenerator().get_schema(request=None, public=True)))


def operations(schema):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield method, path, operation


def test_the_schema_is_generated_without_a_warning_and_validates(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert yaml.safe_load((tmp_path / "schema.yaml").read_text())["openapi"] == "3.0.3"


def test_it_describes_every_batch_operation_below_the_endpoint_and_nothing_else(schema):
    assert {(m, p): op["operationId"] for m, p, op in operations(schema)} == OPERATIONS
    assert schema["servers"] == [{"url": "/batch", "description": "the account endpoint of this Batchsite"}]


def test_every_batch_route_has_its_operations_in_the_schema(schema):
    """A route added to batchsite.api_urls without a description fails here (and warns in generation)."""
    described = {p for _, p, _ in operations(schema)}
    batch = next(p for p in get_resolver().url_patterns if str(p.pattern) == "batch/")
    routes = [str(p.pattern) for p in batch.url_patterns if not str(p.pattern).startswith("^")]  # not the catch-all
    as_schema = {"/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "{" + PATH_NAMES[m.group(1)] + "}", r) for r in routes}
    assert as_schema == described


def test_every_error_answer_is_declared_with_the_batch_error_schema(schema):
    for method, path, operation in operations(schema):
        errors = {code: r for code, r in operation["responses"].items() if code >= "400"}
        assert {"400", "401", "403"} <= errors.keys(), (method, path)
        if "{jobId}" in path:
            assert "404" in errors, (method, path)
        for code, response in errors.items():
            assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/BatchError"}
    error = schema["components"]["schemas"]["BatchError"]
    assert error["required"] == ["code", "message"]
    assert schema["components"]["schemas"]["BatchErrorMessage"]["required"] == ["lang", "value"]


def test_ids_in_paths_carry_the_batch_id_pattern_and_file_paths_may_hold_slashes(schema):
    for method, path, operation in operations(schema):
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path" and parameter["name"] in ("jobId", "taskId"):
                assert parameter["schema"]["pattern"] == "^[A-Za-z0-9_-]{1,64}$"
            if parameter["name"] == "filePath":
                assert "pattern" not in parameter["schema"]


def test_every_operation_names_the_four_ways_to_authenticate(schema):
    assert set(schema["components"]["securitySchemes"]) == {"tokenAuth", "sharedKey", "taskToken", "cookieAuth"}
    for _, _, operation in operations(schema):
        assert operation["security"] == [{"tokenAuth": []}, {"sharedKey": []}, {"taskToken": []}, {"cookieAuth": []}]


def test_request_bodies_are_the_serializers_that_validate_them_and_refuse_unknown_properties(schema):
    components = schema["components"]["schemas"]
    add_task = components["TaskAddRequest"]
    assert set(add_task["properties"]) == set(task_wire.TaskAddSerializer().fields)
    assert add_task["required"] == ["commandLine", "id"] and add_task["additionalProperties"] is False
    add_job = components["JobAddRequest"]
    assert set(add_job["properties"]) == set(job_wire.JobAddSerializer().fields)
    assert add_job["properties"]["jobManagerTask"] == {"$ref": "#/components/schemas/JobManagerTaskRequest"}
    assert components["JobManagerTaskRequest"]["additionalProperties"] is False
    collection = components["TaskAddCollectionRequest"]["properties"]["value"]
    assert collection["maxItems"] == 100 and collection["items"] == {"$ref": "#/components/schemas/TaskAddRequest"}


def test_the_resources_name_every_property_the_api_renders(schema):
    components = schema["components"]["schemas"]
    assert set(components["Job"]["properties"]) == set(job_wire.PROPERTIES) | {"stats"}
    assert set(components["Task"]["properties"]) == set(task_wire.PROPERTIES) | {"stats"}
    assert components["Job"]["properties"]["state"]["enum"] == JobState.values
    assert components["Task"]["properties"]["state"]["enum"] == TaskState.values
    assert set(components["ComputeNode"]["properties"]) == set(pool_wire.NODE_PROPERTIES)
    assert components["ComputeNode"]["properties"]["state"]["enum"] == NodeState.values
    assert components["NodeCounts"]["required"] == [*pool_wire.COUNT_NAMES, "total"]
    for resource, nested in (("Job", job_wire.NESTED), ("Task", task_wire.NESTED)):
        for name, members in nested.items():
            described = components[resource]["properties"][name]
            described = components[described["$ref"].rsplit("/", 1)[1]] if "$ref" in described else described
            # $select may name members no row has yet (schedulingError, containerInfo...): those are optional.
            assert set(described["properties"]) <= members, (resource, name)


# --- where it is served -------------------------------------------------------------------


@pytest.fixture
def token(owner) -> str:
    return Token.objects.create(user=owner).key


def test_a_token_holder_gets_the_schema_as_yaml_or_json(client, token, schema):
    yaml_answer = client.get("/api/schema/", HTTP_AUTHORIZATION=f"Token {token}")
    assert yaml_answer.status_code == 200 and yaml_answer["Content-Type"].startswith("application/vnd.oai.openapi")
    assert yaml.safe_load(yaml_answer.content)["info"]["version"] == "2025-06-01"
    json_answer = client.get("/api/schema/?format=json", HTTP_AUTHORIZATION=f"Token {token}")
    assert json_answer.status_code == 200
    assert json.loads(json_answer.content)["paths"].keys() == schema["paths"].keys()


def test_an_anonymous_api_call_for_the_schema_is_a_batch_401(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Token realm="batch"'
    assert response.json()["code"] == "AuthenticationFailed"


def test_an_anonymous_browser_is_sent_to_the_login_page(client):
    for path in ("/api/docs/", "/api/docs/?script=", "/api/schema/"):
        response = client.get(path, HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
        assert response.status_code == 302, path
        assert response["Location"].startswith("/accounts/login/?next=/api/"), path


def test_a_task_token_does_not_reach_the_schema(client):
    """A running task's token is for its own job; the documentation is not part of it."""
    from tasks import tokens as task_tokens
    from tasks.models import TaskState

    from .helpers import add

    (task,) = add(make_job("j"), "t")
    type(task).objects.filter(pk=task.pk).update(state=TaskState.RUNNING)
    response = client.get("/api/schema/", HTTP_AUTHORIZATION=f"Bearer {task_tokens.issue(task)}",
                          HTTP_ACCEPT="application/json")
    assert response.status_code == 401


def test_a_logged_in_user_gets_the_swagger_ui_with_no_inline_script_or_style_and_no_cdn(client, owner):
    """So a Content-Security-Policy of script-src 'self' and style-src 'self' holds."""
    client.force_login(owner)
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all('src="' in attributes and not body.strip() for attributes, body in scripts)
    assert "<style" not in html and " style=" not in html
    assert "https://" not in html and "http://" not in html
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in sources
    assert "/static/batchapi/swagger-ui-page.css" in sources
    init = next(s for s in sources if "script" in s).replace("&amp;", "&")
    script = client.get(init)
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert '"/api/schema/"' in script.content.decode()
    for asset in (s for s in sources if s.startswith("/static/")):
        assert client.get(asset).status_code == 200, asset


@pytest.mark.parametrize("text", ["PT1H30M", "P1D", "PT0.5S", "pt2h", "P1DT30M", "PT0S", "P10675199DT2H48M5.4775807S",
                                  "1H", "-PT1H", "P1W", "P1Y", "PT1H30", "P", "T1H", ""])
def test_the_duration_pattern_accepts_what_the_api_reads(text):
    from batchapi.schema import DURATION_PATTERN
    from batchapi.wire import parse_wire_duration

    try:
        parse_wire_duration(text)
        readable = True
    except ValueError:
        readable = False
    assert bool(re.match(DURATION_PATTERN, text)) == readable

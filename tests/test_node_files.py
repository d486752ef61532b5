"""A compute node's files in the Batch REST API (File_ListFromComputeNode, File_GetFromComputeNode,
File_GetPropertiesFromComputeNode, File_DeleteFromComputeNode): its startup and shared directories,
nothing else, never through a symlink; through the API client, then with the real azure-batch SDK
and az CLI against a live Batchsite whose worker ran a real start task."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import BatchAccount, Membership, Role, default_account
from pools import node_files
from pools.models import ComputeNode
from pools.services import lifecycle
from tasks.files import shared_dir, startup_dir

from .helpers import node, wait_for

pytestmark = pytest.mark.django_db

# The az binary, found as tests/test_azure_cli.py finds it (scripts/ensure-azure-cli.sh installs it).
AZ_VERSION = os.environ.get("BATCHSITE_AZURE_CLI_VERSION", "2.91.0")
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
AZ = Path(os.environ.get("BATCHSITE_AZURE_CLI_VENV", CACHE / "batchsite" / f"azure-cli-{AZ_VERSION}")) / "bin" / "az"
FILES = "/batch/pools/local/nodes/n1/files"


@pytest.fixture
def startup(node_root) -> Path:
    """Node n1 of the default pool, with what a start task leaves and a file in the account's share."""
    node("n1")
    directory = startup_dir(default_account().name, "n1")
    (directory / "wd" / "out").mkdir(parents=True)
    (directory / "stdout.txt").write_bytes(b"0123456789")
    (directory / "stderr.txt").write_bytes(b"")
    (directory / "wd" / "out" / "result.csv").write_text("a,b\n")
    shared = shared_dir(default_account().name)
    shared.mkdir(parents=True)
    (shared / "common.txt").write_text("for every task\n")
    (node_root / "secret.txt").write_text("not yours")
    return directory


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def names(api, query: str = "") -> list[str]:
    response = api.get(f"{FILES}?{query}")
    assert response.status_code == 200, response.content
    return [f["name"] for f in response.json()["value"]]


def refused(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    error = response.json()
    assert error["code"] == code and error["message"]["lang"] == "en-US", error


def member_of(django_user_model, account: BatchAccount, name: str, role=Role.OPERATOR) -> APIClient:
    user = django_user_model.objects.create_user(username=name, password=f"{name}-password-1")
    Membership.objects.create(user=user, account=account, role=role)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


# --- List ---------------------------------------------------------------------------------------


def test_a_nodes_files_are_its_startup_and_shared_directories(api, startup):
    assert names(api) == ["shared", "startup"]
    listed = api.get(f"{FILES}?recursive=true").json()["value"]
    assert [f["name"] for f in listed] == [
        "shared", "shared/common.txt", "startup", "startup/stderr.txt", "startup/stdout.txt", "startup/wd",
        "startup/wd/out", "startup/wd/out/result.csv"]
    by_name = {f["name"]: f for f in listed}
    stdout = by_name["startup/stdout.txt"]
    assert stdout["url"] == "http://testserver/batch/pools/local/nodes/n1/files/startup/stdout.txt"
    assert stdout["isDirectory"] is False
    assert stdout["properties"]["contentLength"] == 10
    assert stdout["properties"]["fileMode"] == oct(os.stat(startup / "stdout.txt").st_mode)
    assert by_name["startup/wd"]["isDirectory"] is True and by_name["startup/wd"]["properties"]["contentLength"] == 0


def test_a_node_whose_start_task_never_ran_lists_only_the_shared_directory(api, startup):
    node("n2")
    assert [f["name"] for f in api.get("/batch/pools/local/nodes/n2/files?recursive=true").json()["value"]] == [
        "shared", "shared/common.txt"]


def test_a_prefix_filter_lists_one_level_or_everything_below_it(api, startup):
    assert names(api, "$filter=startswith(name,'startup/')") == ["startup/stderr.txt", "startup/stdout.txt",
                                                                  "startup/wd"]
    assert names(api, "$filter=startswith(name,'startup/std')") == ["startup/stderr.txt", "startup/stdout.txt"]
    assert names(api, "$filter=startswith(name,'startup/wd')&recursive=true") == [
        "startup/wd", "startup/wd/out", "startup/wd/out/result.csv"]
    assert names(api, "$filter=startswith(name,'sh')") == ["shared"]
    assert names(api, "$filter=startswith(name,'workitems/')&recursive=true") == []
    refused(api.get(f"{FILES}?$filter=startswith(id,'startup')"), 400, "InvalidQueryParameterValue")


def test_lists_page_in_walk_order_with_a_next_link_that_keeps_the_query(api, startup):
    (startup / "wd-old").mkdir()  # "wd-old" < "wd/out" as strings, but the walk lists it after wd's content
    everything = names(api, "recursive=true")
    assert everything.index("startup/wd-old") == everything.index("startup/wd/out/result.csv") + 1
    for size in (1, 2, 3):
        seen, url = [], f"{FILES}?recursive=true&maxresults={size}"
        while url:
            page = api.get(url).json()
            seen += [f["name"] for f in page["value"]]
            url = page.get("odata.nextLink")
        assert seen == everything, size
    page = api.get(f"{FILES}?recursive=true&maxresults=2&$filter=startswith(name,'startup/')").json()
    assert "%24filter=startswith" in page["odata.nextLink"] and "recursive=true" in page["odata.nextLink"]


# --- Get, Get Properties ------------------------------------------------------------------------


def test_a_node_file_is_read_whole_or_by_range(api, startup):
    response = api.get(f"{FILES}/startup/stdout.txt")
    assert (response.status_code, body(response)) == (200, b"0123456789")
    assert response["Content-Length"] == "10" and response["Last-Modified"].endswith("GMT")
    sliced = api.get(f"{FILES}/startup/stdout.txt", HTTP_OCP_RANGE="bytes=2-5")
    assert (sliced.status_code, body(sliced)) == (200, b"2345")  # 200, never 206: what the clients expect
    assert sliced["Content-Range"] == "bytes 2-5/10"
    assert body(api.get(f"{FILES}/startup%2Fwd%2Fout%2Fresult.csv")) == b"a,b\n"
    assert body(api.get(f"{FILES}/shared/common.txt")) == b"for every task\n"
    refused(api.get(f"{FILES}/startup/stdout.txt", HTTP_OCP_RANGE="bytes=50-60"), 416, "InvalidRange")
    refused(api.get(f"{FILES}/startup/wd"), 404, "FileNotFound")  # a directory has no content


def test_get_properties_describes_files_and_directories_in_headers(api, startup):
    file = api.head(f"{FILES}/startup/stdout.txt")
    assert file.status_code == 200
    assert (file["Content-Length"], file["ocp-batch-file-isdirectory"]) == ("10", "false")
    assert file["ocp-batch-file-url"] == "http://testserver/batch/pools/local/nodes/n1/files/startup/stdout.txt"
    assert file["ocp-creation-time"].endswith("GMT") and file["Last-Modified"].endswith("GMT")
    assert file["ocp-batch-file-mode"] == oct(os.stat(startup / "stdout.txt").st_mode)
    folder = api.head(f"{FILES}/startup/wd")
    assert (folder.status_code, folder["ocp-batch-file-isdirectory"], folder["Content-Length"]) == (200, "true", "0")
    assert api.head(f"{FILES}/shared").status_code == 200
    assert api.head(f"{FILES}/startup/nope.txt").status_code == 404


def test_unknown_pools_nodes_and_files_answer_404_in_batch_shape(api, startup):
    refused(api.get("/batch/pools/nowhere/nodes/n1/files"), 404, "PoolNotFound")
    refused(api.get("/batch/pools/local/nodes/ghost/files"), 404, "NodeNotFound")
    refused(api.get("/batch/pools/local/nodes/ghost/files/startup/stdout.txt"), 404, "NodeNotFound")
    refused(api.get(f"{FILES}/startup/nope.txt"), 404, "FileNotFound")
    refused(api.get(f"{FILES}/workitems/job/task/stdout.txt"), 404, "FileNotFound")  # not mapped
    refused(api.delete(f"{FILES}/startup/nope.txt"), 404, "FileNotFound")


@pytest.mark.parametrize("path", ["..%2F..%2F..%2Fsecret.txt", "startup/..%2F..%2F..%2F..%2Fsecret.txt",
                                  "startup/wd/../../../../../secret.txt", "%2Fetc%2Fpasswd"])
def test_paths_that_leave_the_node_directory_are_refused(api, startup, node_root, path):
    for response in (api.get(f"{FILES}/{path}"), api.head(f"{FILES}/{path}"), api.delete(f"{FILES}/{path}")):
        assert response.status_code == 400, (path, response.content)
        assert b"not yours" not in response.content
    refused(api.get(f"{FILES}/{path}"), 400, "InvalidFilePath")
    assert (node_root / "secret.txt").read_text() == "not yours"


def test_a_symlink_planted_in_the_startup_directory_is_refused_and_never_followed(api, startup, node_root,
                                                                                  tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "victim.txt").write_text("keep me")
    os.symlink(node_root / "secret.txt", startup / "escape.txt")
    os.symlink(elsewhere, startup / "wd" / "escape-dir")
    for path in ("startup/escape.txt", "startup/wd/escape-dir/victim.txt", "startup/wd/escape-dir"):
        refused(api.get(f"{FILES}/{path}"), 400, "InvalidFilePath")
        assert api.head(f"{FILES}/{path}").status_code == 400
    listed = {f["name"]: f for f in api.get(f"{FILES}?recursive=true").json()["value"]}
    assert listed["startup/escape.txt"]["isDirectory"] is False  # described as the link it is
    assert listed["startup/wd/escape-dir"]["isDirectory"] is False
    assert not any(name.startswith("startup/wd/escape-dir/") for name in listed)  # not walked into
    refused(api.delete(f"{FILES}/startup/wd/escape-dir/victim.txt"), 400, "InvalidFilePath")
    assert (elsewhere / "victim.txt").read_text() == "keep me"
    # Deleting a link removes the link, never what it points to.
    assert api.delete(f"{FILES}/startup/wd/escape-dir?recursive=true").status_code == 200
    assert api.delete(f"{FILES}/startup/escape.txt").status_code == 200
    assert (elsewhere / "victim.txt").read_text() == "keep me" and (node_root / "secret.txt").exists()
    assert not os.path.lexists(startup / "escape.txt") and not os.path.lexists(startup / "wd" / "escape-dir")


def test_a_startup_directory_swapped_for_a_symlink_is_not_served(api, startup):
    node("n2")
    swapped = startup_dir(default_account().name, "n2")
    swapped.parent.mkdir(parents=True)
    os.symlink(startup, swapped)  # n2's "startup" leads to n1's
    assert [f["name"] for f in api.get("/batch/pools/local/nodes/n2/files?recursive=true").json()["value"]] == [
        "shared", "shared/common.txt"]
    response = api.get("/batch/pools/local/nodes/n2/files/startup/stdout.txt")
    assert response.status_code in (400, 404) and b"0123456789" not in response.content


# --- Delete -------------------------------------------------------------------------------------


def test_delete_removes_a_file_and_a_directory_whole_only_when_asked(api, startup):
    assert api.delete(f"{FILES}/startup/stdout.txt").status_code == 200
    assert not (startup / "stdout.txt").exists()
    refused(api.get(f"{FILES}/startup/stdout.txt"), 404, "FileNotFound")
    refused(api.delete(f"{FILES}/startup/wd"), 409, "DirectoryNotEmpty")
    assert (startup / "wd" / "out" / "result.csv").exists()
    assert api.delete(f"{FILES}/startup/wd?recursive=true").status_code == 200
    assert not (startup / "wd").exists()
    (startup / "empty").mkdir()
    assert api.delete(f"{FILES}/startup/empty").status_code == 200
    for own in ("startup", "shared", "startup/", "."):
        refused(api.delete(f"{FILES}/{own}?recursive=true"), 400, "InvalidFilePath")
    assert startup.is_dir() and (shared_dir(default_account().name) / "common.txt").exists()


def test_a_viewer_reads_a_nodes_files_but_does_not_delete_them(django_user_model, startup):
    viewer = member_of(django_user_model, default_account(), "vera", Role.VIEWER)
    assert body(viewer.get(f"{FILES}/startup/stdout.txt")) == b"0123456789"
    refused(viewer.delete(f"{FILES}/startup/stdout.txt"), 403, "InsufficientAccountPermissions")
    assert (startup / "stdout.txt").exists()


def test_another_account_sees_none_of_a_nodes_files(api, django_user_model, startup):
    beta = BatchAccount.objects.create(name="beta")
    bob = member_of(django_user_model, beta, "bob")
    node("their-node", account="beta", pool="theirs")
    (shared_dir("beta")).mkdir(parents=True)
    (shared_dir("beta") / "theirs.txt").write_text("beta's")
    for path in ("", "/startup/stdout.txt", "/shared/common.txt"):
        refused(bob.get(f"{FILES}{path}"), 404, "PoolNotFound")
        refused(bob.get(f"/batch/pools/theirs/nodes/n1/files{path}"), 404, "NodeNotFound")
    refused(bob.delete(f"{FILES}/startup/stdout.txt"), 404, "PoolNotFound")
    assert (startup / "stdout.txt").exists()
    # Each sees the shared directory of its own account only.
    theirs = bob.get("/batch/pools/theirs/nodes/their-node/files?recursive=true").json()["value"]
    assert [f["name"] for f in theirs] == ["shared", "shared/theirs.txt"]
    assert "shared/theirs.txt" not in names(api, "recursive=true")
    refused(api.get("/batch/pools/theirs/nodes/their-node/files"), 404, "PoolNotFound")


def test_a_node_id_that_is_not_one_plain_name_has_no_startup_directory():
    assert set(node_files.directories("batchsite", "n1")) == {"shared", "startup"}
    for unsafe in ("..", ".", "a/b", ""):
        assert set(node_files.directories("batchsite", unsafe)) == {"shared"}


# --- The real SDK and CLI, against a live Batchsite whose worker ran a start task ------------------


@pytest.fixture
def started_node(server, start_worker) -> str:
    """Node n1 of pool P, which ran the pool's start task `/bin/echo started`."""
    account = default_account()
    lifecycle.create_pool(spec={"account": account, "batch_id": "P", "vm_size": "standard_d2s_v3",
                                "start_task": {"commandLine": "/bin/echo started", "waitForSuccess": True}})
    start_worker("--name", "n1", "--pool", "P", "--account", account.name, "--poll", "0.1")
    wait_for(lambda: (n := ComputeNode.objects.filter(name="n1").first()) and n.start_task_info
             and n.start_task_info["state"] == "completed", what="the start task to complete")
    return f"{server.url}/batch"


@pytest.mark.django_db(transaction=True)
def test_the_sdk_lists_reads_describes_and_deletes_a_real_start_tasks_files(started_node):
    account = default_account()
    batch = BatchClient(endpoint=started_node, credential=AzureNamedKeyCredential(account.name, account.primary_key))
    listed = {f.name: f for f in batch.list_node_files("P", "n1", recursive=True)}
    assert {"startup", "startup/stdout.txt", "startup/stderr.txt", "startup/wd"} <= set(listed)
    assert listed["startup/stdout.txt"].is_directory is False
    assert listed["startup/stdout.txt"].properties.content_length == len(b"started\n")
    assert [f.name for f in batch.list_node_files("P", "n1", filter="startswith(name,'startup/std')")] == [
        "startup/stderr.txt", "startup/stdout.txt"]
    paged = [f.name for f in batch.list_node_files("P", "n1", recursive=True, max_results=1)]
    assert paged == list(listed)

    assert b"".join(batch.download_node_file("P", "n1", "startup/stdout.txt")) == b"started\n"
    assert b"".join(batch.download_node_file("P", "n1", "startup/stdout.txt", ocp_range="bytes=0-2")) == b"sta"
    properties = batch.get_node_file_properties("P", "n1", "startup/stdout.txt")
    assert (properties.content_length, properties.is_directory) == (8, False)
    assert properties.url == f"{started_node}/pools/P/nodes/n1/files/startup/stdout.txt"
    assert batch.get_node_file_properties("P", "n1", "startup/wd").is_directory is True

    with pytest.raises(ResourceNotFoundError):  # a streamed answer's error body is not read by the SDK
        b"".join(batch.download_node_file("P", "n1", "startup/nope.txt"))
    with pytest.raises(ResourceNotFoundError) as missing:
        batch.delete_node_file("P", "n1", "startup/nope.txt")
    assert missing.value.error.code == "FileNotFound"
    with pytest.raises(ResourceNotFoundError) as missing:
        list(batch.list_node_files("P", "ghost"))
    assert missing.value.error.code == "NodeNotFound"
    with pytest.raises(HttpResponseError) as escaping:
        b"".join(batch.download_node_file("P", "n1", "../../secret"))
    assert escaping.value.status_code == 400

    batch.delete_node_file("P", "n1", "startup/stdout.txt")
    assert "startup/stdout.txt" not in {f.name for f in batch.list_node_files("P", "n1", recursive=True)}
    batch.delete_node_file("P", "n1", "startup/wd", recursive=True)
    assert not (startup_dir(account.name, "n1") / "wd").exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not AZ.exists(), reason=f"azure-cli is not installed at {AZ} (scripts/ensure-azure-cli.sh)")
def test_az_batch_node_file_list_and_download_a_real_start_tasks_output(started_node, tmp_path):
    account = default_account()
    env = {**os.environ, "AZURE_CONFIG_DIR": str(tmp_path / "azure-config"), "AZURE_CORE_COLLECT_TELEMETRY": "0",
           "AZURE_CORE_NO_COLOR": "1", "AZURE_CORE_ONLY_SHOW_ERRORS": "1"}
    auth = ["--account-name", account.name, "--account-key", account.primary_key, "--account-endpoint", started_node]

    def az(*args: str, check: bool = True):
        result = subprocess.run([str(AZ), *args, *auth], env=env, cwd=tmp_path, capture_output=True, text=True,
                                timeout=120)
        if check:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return json.loads(result.stdout) if result.stdout.strip() else result

    top = {f["name"]: f for f in az("batch", "node", "file", "list", "--pool-id", "P", "--node-id", "n1")}
    assert set(top) <= {"shared", "startup"} and top["startup"]["isDirectory"] is True
    deep = az("batch", "node", "file", "list", "--pool-id", "P", "--node-id", "n1", "--recursive", "true")
    assert {"startup/stdout.txt", "startup/stderr.txt", "startup/wd"} <= {f["name"] for f in deep}
    az("batch", "node", "file", "download", "--pool-id", "P", "--node-id", "n1", "--file-path", "startup/stdout.txt",
       "--destination", str(tmp_path / "stdout.txt"))
    assert (tmp_path / "stdout.txt").read_bytes() == b"started\n"
    # (`az batch node file show` is not run: azure-cli 2.91 fails after the answer, in its own
    # output transformer, whatever the server says: "'RestRequestsTransportResponse' object has
    # no attribute 'items'".)
    (startup_dir(account.name, "n1") / "wd" / "left.txt").write_text("by the start task")
    refusal = az("batch", "node", "file", "delete", "--pool-id", "P", "--node-id", "n1", "--file-path",
                 "startup/wd", "--yes", check=False)
    assert refusal.returncode != 0 and "DirectoryNotEmpty" in refusal.stderr
    az("batch", "node", "file", "delete", "--pool-id", "P", "--node-id", "n1", "--file-path", "startup/wd",
       "--recursive", "true", "--yes")
    assert not (startup_dir(account.name, "n1") / "wd").exists()
    missing = az("batch", "node", "file", "download", "--pool-id", "P", "--node-id", "n1", "--file-path",
                 "startup/nope.txt", "--destination", str(tmp_path / "nope.txt"), check=False)
    assert missing.returncode != 0 and "The specified file does not exist" in missing.stderr

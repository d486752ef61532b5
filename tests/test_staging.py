"""resourceFiles and outputFiles, as the Batch docs describe them, on Django storage:
downloads before the command runs (httpUrl, a storage container, filePath, fileMode,
blobPrefix), uploads after it (filePattern with * and **, destination path,
uploadCondition), a failed download is a preProcessingError and a failed upload a
fileUploadError. Nothing reads or writes outside the task's directory or the storage.

A real HTTP server serves the downloads; real workers run the tasks.
"""

import http.server
import importlib
import os
import stat
import threading
from pathlib import Path

import pytest
from django.conf import settings

from batchapi.errors import BatchError
from nodes import staging
from tasks import file_specs
from tasks.models import Task

from .helpers import TASK_PYTHON

PY = TASK_PYTHON


@pytest.fixture
def web(tmp_path):
    """A real HTTP server over a folder; yields (folder, base URL)."""
    root = tmp_path / "web"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


ACCOUNT = "batchsite"  # the default account's containers, where make_job and the api fixture put jobs


def put_blob(container: str, name: str, data: bytes) -> None:
    path = Path(settings.BATCHSITE_STORAGE_ROOT) / ACCOUNT / container / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def blob(container: str, name: str) -> bytes:
    return (Path(settings.BATCHSITE_STORAGE_ROOT) / ACCOUNT / container / name).read_bytes()


def blobs(container: str) -> list[str]:
    root = Path(settings.BATCHSITE_STORAGE_ROOT) / ACCOUNT / container
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# --- downloads ---------------------------------------------------------------------------


def test_http_and_container_resource_files_land_in_the_working_directory(tmp_path, web):
    root, base = web
    (root / "model.bin").write_bytes(b"weights")
    put_blob("inputs", "frames/1.png", b"one")
    put_blob("inputs", "frames/2.png", b"two")
    put_blob("inputs", "other.txt", b"not wanted")
    put_blob("shared", "lut.cube", b"lut")
    workdir = tmp_path / "task" / "wd"
    workdir.mkdir(parents=True)
    staging.download([
        {"httpUrl": f"{base}/model.bin", "filePath": "models/model.bin", "fileMode": "0750"},
        {"autoStorageContainerName": "inputs", "blobPrefix": "frames/", "filePath": "in"},
        # An Azure container URL stands for the local container of that name.
        {"storageContainerUrl": "https://acct.blob.core.windows.net/shared?sv=2024&sig=x"},
    ], workdir, account=ACCOUNT)
    assert (workdir / "models/model.bin").read_bytes() == b"weights"
    assert stat.S_IMODE(os.stat(workdir / "models/model.bin").st_mode) == 0o750
    assert (workdir / "in/frames/1.png").read_bytes() == b"one"
    assert (workdir / "in/frames/2.png").read_bytes() == b"two"
    assert not (workdir / "in/other.txt").exists()
    assert (workdir / "lut.cube").read_bytes() == b"lut"


def test_a_download_that_fails_names_its_source(tmp_path, web):
    _, base = web
    with pytest.raises(staging.StagingError) as caught:
        (tmp_path / "wd").mkdir()
        staging.download([{"httpUrl": f"{base}/missing", "filePath": "x"}], tmp_path / "wd", account=ACCOUNT)
    failure = caught.value.failure
    assert failure["code"] == "ResourceFileDownloadError"
    assert {"name": "Source", "value": f"{base}/missing"} in failure["details"]


def test_a_download_never_writes_through_a_symlink(tmp_path):
    """A task's earlier run may have left symlinks in its working directory."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("safe")
    workdir = tmp_path / "wd"
    workdir.mkdir()
    (workdir / "door").symlink_to(outside)
    (workdir / "file").symlink_to(outside / "victim")
    put_blob("c", "x", b"payload")
    with pytest.raises(staging.StagingError):  # wd/door/x would be outside
        staging.download([{"autoStorageContainerName": "c", "filePath": "door"}], workdir, account=ACCOUNT)
    put_blob("d", "file", b"replaced")  # wd/file is a symlink: it is replaced, not written through
    staging.download([{"autoStorageContainerName": "d"}], workdir, account=ACCOUNT)
    assert not (workdir / "file").is_symlink() and (workdir / "file").read_bytes() == b"replaced"
    assert (outside / "victim").read_text() == "safe"
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]


@pytest.mark.parametrize("files, reason", [
    ([{"httpUrl": "http://h/x", "filePath": "../x"}], "may not leave"),
    ([{"httpUrl": "http://h/x", "filePath": "/etc/passwd"}], "relative"),
    ([{"httpUrl": "http://h/x", "filePath": "a/../../b"}], "may not leave"),
    ([{"httpUrl": "file:///etc/passwd", "filePath": "p"}], "http or https"),
    ([{"httpUrl": "http://h/x"}], "filePath is required"),
    ([{"httpUrl": "http://h/x", "filePath": "x", "autoStorageContainerName": "c"}], "exactly one"),
    ([{"filePath": "x"}], "exactly one"),
    ([{"storageContainerUrl": "storage://..", "filePath": "x"}], "names no container"),
    ([{"autoStorageContainerName": "a/b"}], "names no container"),
    ([{"autoStorageContainerName": "c", "fileMode": "rwx"}], "octal"),
])
def test_resource_file_rules(files, reason):
    with pytest.raises(BatchError) as caught:
        file_specs.validate_resource_files(files)
    assert caught.value.code == "InvalidPropertyValue"
    assert reason in caught.value.values["Reason"]


def out(pattern: str, container: str = "results", path: str | None = None, condition: str | None = None) -> dict:
    spec = {"filePattern": pattern, "destination": {"container": {"containerUrl": f"storage://{container}"}}}
    if path:
        spec["destination"]["container"]["path"] = path
    if condition:
        spec["uploadOptions"] = {"uploadCondition": condition}
    return spec


@pytest.mark.parametrize("files, reason", [
    ([out("../../etc/passwd")], "may not leave"),
    ([out("/etc/*")], "relative"),
    ([out("a/../../../x")], "may not leave"),
    ([out("*.txt", path="../up")], "may not leave"),
    ([out("*.txt", condition="sometimes")], "uploadCondition"),
    ([{"filePattern": "*.txt"}], "names no container"),
    ([{"destination": {"container": {"containerUrl": "storage://r"}}}], "filePattern is required"),
])
def test_output_file_rules(files, reason):
    with pytest.raises(BatchError) as caught:
        file_specs.validate_output_files(files)
    assert reason in caught.value.values["Reason"]


# --- uploads -----------------------------------------------------------------------------


def task_tree(tmp_path) -> Path:
    task = tmp_path / "task"
    workdir = task / "wd"
    (workdir / "sub/deeper").mkdir(parents=True)
    (task / "stdout.txt").write_text("out")
    (task / "stderr.txt").write_text("err")
    (workdir / "a.txt").write_text("a")
    (workdir / "b.log").write_text("b")
    (workdir / "sub/c.csv").write_text("c")
    (workdir / "sub/deeper/d.csv").write_text("d")
    (tmp_path / "secret").write_text("secret")
    (workdir / "leak.txt").symlink_to(tmp_path / "secret")
    (workdir / "sub/leakdir").symlink_to(tmp_path)
    return workdir


def test_patterns_paths_and_names_of_uploads(tmp_path):
    workdir = task_tree(tmp_path)
    written = staging.upload([
        out("*.txt", path="flat"),
        out("**/*.csv", path="tables"),
        out("b.log", path="logs/run-1.log"),
        out("../std*.txt", container="logs"),
    ], workdir, account=ACCOUNT, succeeded=True)
    assert blobs("results") == ["flat/a.txt", "logs/run-1.log", "tables/sub/c.csv", "tables/sub/deeper/d.csv"]
    assert blobs("logs") == ["stderr.txt", "stdout.txt"]
    assert blob("results", "logs/run-1.log") == b"b"
    assert len(written) == 6
    assert b"secret" not in b"".join(blob("results", n) for n in blobs("results"))  # symlinks stay home


def test_upload_conditions(tmp_path):
    workdir = task_tree(tmp_path)
    files = [out("a.txt", path="on-success", condition="taskSuccess"),
             out("a.txt", path="on-failure", condition="taskfailure"),
             out("a.txt", path="always")]
    staging.upload(files, workdir, account=ACCOUNT, succeeded=False)
    assert blobs("results") == ["always", "on-failure"]
    staging.upload(files, workdir, account=ACCOUNT, succeeded=True)
    assert blobs("results") == ["always", "on-failure", "on-success"]


def test_a_named_output_that_is_missing_is_an_upload_error(tmp_path):
    workdir = task_tree(tmp_path)
    # A pattern may match nothing.
    assert staging.upload([out("nothing-*.bin")], workdir, account=ACCOUNT, succeeded=True) == []
    with pytest.raises(staging.StagingError) as caught:
        staging.upload([out("result.bin")], workdir, account=ACCOUNT, succeeded=True)
    assert caught.value.failure["code"] == "FileUploadError"


# --- through the API, with a real worker -----------------------------------------------------


@pytest.mark.django_db
def test_add_task_refuses_bad_file_specs(api):
    api.post("/batch/jobs", {"id": "j", "poolInfo": {"poolId": "local"}}, format="json")
    response = api.post("/batch/jobs/j/tasks", {"id": "t", "commandLine": "x", "resourceFiles": [
        {"httpUrl": "http://h/x", "filePath": "../../etc/cron.d/x"}]}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidPropertyValue"
    assert {"key": "PropertyName", "value": "resourceFiles[0]"} in response.json()["values"]
    response = api.post("/batch/jobs/j/tasks", {"id": "t", "commandLine": "x",
                                                "outputFiles": [out("/etc/shadow")]}, format="json")
    assert response.status_code == 400
    assert not Task.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_worker_stages_files_in_and_out_and_fails_tasks_whose_files_fail(api, run_worker, web):
    root, base = web
    (root / "numbers.txt").write_text("1\n2\n3\n")
    api.post("/batch/jobs", {"id": "j", "poolInfo": {"poolId": "local"}, "usesTaskDependencies": True,
                             "onTaskFailure": "performexitoptionsjobaction"}, format="json")
    total = f'{PY} -c "open(\'total.txt\', \'w\').write(str(sum(map(int, open(\'in/numbers.txt\')))))"'
    tasks = [
        {"id": "sum", "commandLine": total,
         "resourceFiles": [{"httpUrl": f"{base}/numbers.txt", "filePath": "in/numbers.txt"}],
         "outputFiles": [out("total.txt", path="sum/total.txt"), out("../stdout.txt", path="sum/logs")]},
        {"id": "no-input", "commandLine": "/bin/true",
         "resourceFiles": [{"httpUrl": f"{base}/absent.txt", "filePath": "absent.txt"}],
         # A preProcessingError blocks dependents unless told otherwise; here it satisfies them.
         "exitConditions": {"preProcessingError": {"dependencyAction": "satisfy", "jobAction": "none"}}},
        {"id": "no-output", "commandLine": "/bin/true", "outputFiles": [out("never-written.bin")],
         "exitConditions": {"fileUploadError": {"jobAction": "none"}}},
        {"id": "after", "commandLine": "/bin/true", "dependsOn": {"taskIds": ["no-input"]}},
    ]
    response = api.post("/batch/jobs/j/addtaskcollection", {"value": tasks}, format="json")
    assert {r["status"] for r in response.json()["value"]} == {"success"}
    run_worker("--slots", "2")

    assert blob("results", "sum/total.txt") == b"6"
    assert blobs("results") == ["sum/logs", "sum/total.txt"]
    got = {t["id"]: t for t in api.get("/batch/jobs/j/tasks").json()["value"]}
    assert got["sum"]["executionInfo"]["result"] == "success"
    no_input = got["no-input"]["executionInfo"]
    assert no_input["result"] == "failure" and "exitCode" not in no_input
    assert no_input["failureInfo"]["code"] == "ResourceFileDownloadError"
    assert got["after"]["executionInfo"]["result"] == "success"  # satisfied by the exit condition
    no_output = got["no-output"]["executionInfo"]
    assert (no_output["result"], no_output["exitCode"]) == ("failure", 0)
    assert no_output["failureInfo"]["code"] == "FileUploadError"
    assert api.get("/batch/jobs/j").json()["state"] == "active"  # jobAction none kept it going
    stderr = b"".join(api.get("/batch/jobs/j/tasks/no-input/files/stderr.txt").streaming_content).decode()
    assert "could not be downloaded" in stderr


@pytest.mark.parametrize("pattern, name, matches", [
    ("*.txt", "a.txt", True), ("*.txt", "sub/a.txt", False), ("**/*.txt", "a.txt", True),
    ("**/*.txt", "x/y/a.txt", True), ("**", "x/y/z", True), ("frame-?.png", "frame-1.png", True),
    ("frame-?.png", "frame-10.png", False), ("[ab].log", "b.log", True), ("[!ab].log", "b.log", False),
    ("out/**/r.csv", "out/r.csv", True), ("a.t", "a.txt", False), ("a.txt", "aXtxt", False),
])
def test_file_patterns(pattern, name, matches):
    assert bool(staging._glob_regex(pattern).match(name)) is matches


@pytest.mark.django_db(transaction=True)
def test_a_slow_download_holds_up_nothing_else_on_the_worker(api, start_worker, monkeypatch):
    """Files move on staging threads: meanwhile the worker runs other tasks and keeps its heartbeat
    (before, a download longer than the worker timeout got all its tasks requeued as if it had died)."""
    import time

    from pools.models import ComputeNode

    release = threading.Event()

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            release.wait(20)
            self.send_response(200)
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"late")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api.post("/batch/jobs", {"id": "j", "poolInfo": {"poolId": "local"}}, format="json")
        api.post("/batch/jobs/j/addtaskcollection", {"value": [
            {"id": "slow", "commandLine": "/bin/cat in.txt", "resourceFiles": [
                {"httpUrl": f"http://127.0.0.1:{server.server_address[1]}/data", "filePath": "in.txt"}]},
            {"id": "quick", "commandLine": "/bin/true"},
        ]}, format="json")
        monkeypatch.setenv("BATCHSITE_HEARTBEAT_SECONDS", "1")
        worker = start_worker("--name", "stager", "--slots", "2", "--poll", "0.1")
        deadline = time.monotonic() + 30
        while not Task.objects.filter(key="quick", state="completed").exists():
            assert time.monotonic() < deadline, "quick never completed while slow downloaded"
            time.sleep(0.1)
        assert Task.objects.get(key="slow").state == "running"  # still fetching its file
        beat = ComputeNode.objects.get(name="stager").heartbeat_at
        time.sleep(2.5)
        assert ComputeNode.objects.get(name="stager").heartbeat_at > beat  # the loop kept beating
        release.set()
        while not Task.objects.filter(key="slow", state="completed").exists():
            assert time.monotonic() < deadline + 30, "slow never completed"
            time.sleep(0.1)
        assert Task.objects.get(key="slow").result == "success"
        stdout = b"".join(api.get("/batch/jobs/j/tasks/slow/files/stdout.txt").streaming_content)
        assert stdout == b"late"
        worker.terminate()
        worker.wait(timeout=30)
    finally:
        release.set()
        server.shutdown()


# --- containers are the account's ---------------------------------------------------------------


def test_an_account_reads_and_writes_its_own_containers_only(tmp_path):
    put_blob("inputs", "payroll.csv", b"account A's")
    put_blob("results", "report.txt", b"account A's report")
    workdir = tmp_path / "wd"
    workdir.mkdir()
    staging.download([{"autoStorageContainerName": "inputs"}], workdir, account="accountb")
    assert list(workdir.iterdir()) == []  # B has no container "inputs": A's is not B's
    (workdir / "report.txt").write_text("B's report")
    staging.upload([out("report.txt")], workdir, account="accountb", succeeded=True)
    assert blob("results", "report.txt") == b"account A's report"
    assert (Path(settings.BATCHSITE_STORAGE_ROOT) / "accountb" / "results" / "report.txt").read_text() == "B's report"


def test_containers_of_before_accounts_move_to_the_default_account_once(tmp_path, settings):
    migration = importlib.import_module("tasks.migrations.0013_blobs_per_account")
    root = Path(settings.BATCHSITE_STORAGE_ROOT)
    (root / "inputs").mkdir(parents=True)
    (root / "inputs" / "a.txt").write_text("a")
    (root / "batchsite").mkdir()  # a container named as the default account
    (root / "batchsite" / "b.txt").write_text("b")
    migration.move_containers(None, None)
    assert (root / "batchsite" / "inputs" / "a.txt").read_text() == "a"
    assert (root / "batchsite" / "batchsite" / "b.txt").read_text() == "b"
    migration.move_containers(None, None)  # a second database migrating over the same folder
    assert (root / "batchsite" / "inputs" / "a.txt").read_text() == "a"
    assert sorted(p.name for p in root.iterdir() if p.name != ".containers-moving.lock") == [
        ".containers-per-account", "batchsite"]


def test_a_move_of_containers_cut_short_is_finished_on_the_next_migrate(tmp_path, settings):
    migration = importlib.import_module("tasks.migrations.0013_blobs_per_account")
    root = Path(settings.BATCHSITE_STORAGE_ROOT)
    (root / ".moving-cut-short" / "inputs").mkdir(parents=True)  # moved before the crash
    (root / ".moving-cut-short" / "inputs" / "a.txt").write_text("a")
    (root / "outputs").mkdir()  # not yet
    (root / "notes.txt").write_text("not a container")
    migration.move_containers(None, None)
    assert (root / "batchsite" / "inputs" / "a.txt").read_text() == "a"
    assert (root / "batchsite" / "outputs").is_dir()
    assert (root / "notes.txt").read_text() == "not a container"
    assert not list(root.glob(".moving-*"))

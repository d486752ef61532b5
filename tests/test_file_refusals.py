"""A task's files are read only as regular files of its own directory: a symlink anywhere on the
way, a FIFO or a device is refused by every view, at once, and the bytes behind it never shown."""

import json
import os
import shutil

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.db import connections

from jobs.routing import websocket_urlpatterns
from jobs.watcher import watcher
from tasks import beneath
from tasks.files import task_dir

from .helpers import add, make_job

SECRET = b"SECRET-OF-THE-MACHINE\n" * 40  # whole lines: a follow sends only those


@pytest.fixture
def outside(tmp_path):
    """A file and a directory outside every task directory, as /etc/passwd would be."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_bytes(SECRET)
    (tmp_path / "outside" / "stdout.txt").write_bytes(SECRET)
    (tmp_path / "outside" / "stderr.txt").write_bytes(SECRET)
    return tmp_path / "outside"


@pytest.fixture
def task(node_root):
    (task,) = add(make_job("j"), "t")
    directory = task_dir(task)
    (directory / "wd").mkdir(parents=True)
    (directory / "stdout.txt").write_bytes(b"what the task printed\n")
    (directory / "stderr.txt").write_bytes(b"what the task complained\n")
    return task


@pytest.fixture
def browser(client, owner):
    client.force_login(owner)
    return client


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def symlink_logs_out(task, outside):
    for name in ("stdout.txt", "stderr.txt"):
        (task_dir(task) / name).unlink()
        os.symlink(outside / "secret.txt", task_dir(task) / name)


# --- symlinked stdout.txt / stderr.txt ------------------------------------------------------

API_READS = [
    ("get", {}),
    ("get", {"HTTP_OCP_RANGE": "bytes=0-99"}),
    ("head", {}),
]


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["stdout.txt", "stderr.txt"])
@pytest.mark.parametrize("method,headers", API_READS)
def test_the_api_refuses_a_symlinked_log_with_a_batch_error(api, task, outside, name, method, headers):
    symlink_logs_out(task, outside)
    response = getattr(api, method)(f"/batch/jobs/j/tasks/t/files/{name}", **headers)
    assert response.status_code in (400, 404)
    if method == "get":
        assert response.json()["code"] in ("InvalidFilePath", "FileNotFound")
    assert str(len(SECRET)) != response.get("Content-Length")


@pytest.mark.django_db
def test_the_task_page_shows_nothing_of_a_symlinked_log_and_says_why(browser, task, outside):
    symlink_logs_out(task, outside)
    page = browser.get("/jobs/j/tasks/t/")
    assert page.status_code == 200
    assert b"SECRET" not in page.content
    assert page.content.count(b"is not a regular file of the task") == 2


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["stdout.txt", "stderr.txt"])
def test_loading_earlier_output_of_a_symlinked_log_shows_nothing(browser, task, outside, name):
    symlink_logs_out(task, outside)
    response = browser.get(f"/jobs/j/tasks/t/logs/{name}?before={len(SECRET)}")
    assert response.status_code == 200
    assert b"SECRET" not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["stdout.txt", "stderr.txt"])
def test_downloading_a_symlinked_log_is_not_found(browser, task, outside, name):
    symlink_logs_out(task, outside)
    response = browser.get(f"/jobs/j/tasks/t/files/{name}")
    assert response.status_code == 404
    assert b"SECRET" not in body(response)


@pytest.mark.django_db(transaction=True)
def test_the_live_log_follow_sends_nothing_of_a_symlinked_log(task, outside, owner):
    (task_dir(task) / "stdout.txt").unlink()
    os.symlink(outside / "secret.txt", task_dir(task) / "stdout.txt")
    router = URLRouter(websocket_urlpatterns)

    async def as_owner(scope, receive, send):
        return await router({**scope, "user": owner}, receive, send)

    async def follow() -> str:
        socket = WebsocketCommunicator(as_owner, "/ws/jobs/j/tasks/t/")
        connected, _ = await socket.connect(timeout=10)
        assert connected
        await socket.send_to(text_data=json.dumps({"logs": {"stdout": 0, "stderr": 0}, "follow": True}))
        received = []
        while not await socket.receive_nothing(timeout=1):  # every update until a quiet second
            received.append(await socket.receive_from())
        await socket.disconnect()
        return "".join(received)

    try:
        sent = async_to_sync(follow)()
    finally:
        # The watcher's thread keeps its connection for its next poll; this test's database goes now.
        watcher.executor.submit(connections.close_all).result()
    assert "what the task complained" in sent  # the regular stderr.txt is followed
    assert "SECRET" not in sent


# --- the task directory itself ------------------------------------------------------------------


def replace_task_dir_by_symlink(task, outside):
    """What a task could do from its working directory: `mv ../../t ../../t.old; ln -s /outside ../../t`."""
    directory = task_dir(task)
    directory.rename(directory.with_name("t.old"))
    os.symlink(outside, directory)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["stdout.txt", "secret.txt"])
def test_a_task_directory_turned_symlink_is_not_followed_by_the_api(api, task, outside, path):
    replace_task_dir_by_symlink(task, outside)
    for response in (api.get(f"/batch/jobs/j/tasks/t/files/{path}"), api.head(f"/batch/jobs/j/tasks/t/files/{path}")):
        assert response.status_code == 404
        assert response.get("Content-Length") != str(len(SECRET))
        assert b"SECRET" not in body(response)
    assert api.get("/batch/jobs/j/tasks/t/files?recursive=true").json()["value"] == []


@pytest.mark.django_db
def test_a_job_directory_turned_symlink_is_not_followed_by_the_pages(browser, task, outside):
    job_directory = task_dir(task).parent
    shutil.copytree(outside, outside.with_name("fake-job") / "t")
    job_directory.rename(job_directory.with_name("j.old"))
    os.symlink(outside.with_name("fake-job"), job_directory)
    assert b"SECRET" not in browser.get("/jobs/j/tasks/t/").content
    assert b"SECRET" not in browser.get(f"/jobs/j/tasks/t/logs/stdout.txt?before={len(SECRET)}").content
    assert browser.get("/jobs/j/tasks/t/files/stdout.txt").status_code == 404


@pytest.mark.django_db
def test_a_symlinked_directory_inside_the_task_is_neither_read_through_nor_listed(api, browser, task, outside):
    os.symlink(outside, task_dir(task) / "wd" / "linked")
    assert api.get("/batch/jobs/j/tasks/t/files/wd/linked/secret.txt").status_code == 400
    assert browser.get("/jobs/j/tasks/t/files/wd/linked/secret.txt").status_code == 404
    names = [f["name"] for f in api.get("/batch/jobs/j/tasks/t/files?recursive=true").json()["value"]]
    assert "wd/linked" in names and "wd/linked/secret.txt" not in names


# --- FIFOs and other non-files ------------------------------------------------------------------


@pytest.fixture
def fifo(task):
    """A FIFO nobody writes to: opening it for reading without O_NONBLOCK waits forever."""
    os.mkfifo(task_dir(task) / "wd" / "pipe")
    return "wd/pipe"


@pytest.mark.django_db
def test_a_fifo_is_refused_at_once_by_get_head_and_download(api, browser, task, fifo):
    assert api.get(f"/batch/jobs/j/tasks/t/files/{fifo}").json()["code"] == "FileNotFound"
    assert api.get(f"/batch/jobs/j/tasks/t/files/{fifo}", HTTP_OCP_RANGE="bytes=0-9").status_code == 404
    assert api.head(f"/batch/jobs/j/tasks/t/files/{fifo}").status_code == 404
    assert browser.get(f"/jobs/j/tasks/t/files/{fifo}").status_code == 404


@pytest.mark.django_db
def test_a_fifo_is_listed_as_itself_without_being_opened(api, task, fifo):
    listed = {f["name"]: f for f in api.get("/batch/jobs/j/tasks/t/files?recursive=true").json()["value"]}
    assert listed[fifo]["isDirectory"] is False and listed[fifo]["properties"]["contentLength"] == 0


@pytest.mark.django_db
def test_a_fifo_in_place_of_stdout_shows_nothing_on_the_task_page(browser, task):
    (task_dir(task) / "stdout.txt").unlink()
    os.mkfifo(task_dir(task) / "stdout.txt")
    page = browser.get("/jobs/j/tasks/t/")
    assert b"stdout.txt is not a regular file of the task" in page.content
    assert b"what the task complained" in page.content


@pytest.mark.django_db
def test_a_directory_is_not_a_file(api, browser, task):
    assert api.get("/batch/jobs/j/tasks/t/files/wd").json()["code"] == "FileNotFound"
    assert api.head("/batch/jobs/j/tasks/t/files/wd").status_code == 404
    assert browser.get("/jobs/j/tasks/t/files/wd").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["wd/a\x00b", "/stdout.txt", "wd/../stdout.txt"])
def test_odd_paths_are_invalid_file_paths_not_errors(api, task, path):
    assert api.get(f"/batch/jobs/j/tasks/t/files/{path}").status_code in (400, 404)


# --- the open itself, with openat2 and with the walk that stands in for it ------------------------


@pytest.fixture(params=["openat2", "walk"])
def opener(request, tmp_path):
    walk = request.param == "walk"
    if not walk and not beneath._has_openat2():
        pytest.skip("this kernel has no openat2 (the walk is tested)")
    return lambda fd, parts, flags: beneath.open_beneath(fd, parts, flags, walk=walk)


@pytest.fixture
def tree(tmp_path, outside):
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "file").write_bytes(b"inside")
    os.symlink(outside, root / "a" / "out")
    os.symlink(outside / "secret.txt", root / "a" / "b" / "link")
    os.mkfifo(root / "a" / "b" / "fifo")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def test_a_regular_file_below_opens(opener, tree):
    fd = opener(tree, ["a", "b", "file"], beneath.FILE)
    try:
        assert os.read(fd, 100) == b"inside"
    finally:
        os.close(fd)


@pytest.mark.parametrize("parts", [["a", "out", "secret.txt"], ["a", "b", "link"], ["a", "out"]])
def test_a_symlink_at_any_component_is_refused(opener, tree, parts):
    with pytest.raises(OSError) as refused:
        os.close(opener(tree, parts, beneath.FILE))
    assert refused.value.errno in (40, 18)  # ELOOP, or EXDEV from openat2's RESOLVE_BENEATH


def test_a_fifo_opens_without_waiting_for_a_writer(opener, tree):
    fd = opener(tree, ["a", "b", "fifo"], beneath.FILE)  # would block without O_NONBLOCK
    os.close(fd)

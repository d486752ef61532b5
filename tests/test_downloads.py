"""Task files are streamed: daphne's memory stays flat whatever the file's size, other requests are
answered while a client reads slowly, and a body is exactly as long as its Content-Length even when
the file shrinks under it. Figures for 2 GB files are printed by bench/downloads.py."""

import os
import time
from pathlib import Path

import pytest
import requests
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from rest_framework.authtoken.models import Token

from tasks.files import working_dir

from .browser import session_cookie
from .helpers import add, make_job

MB = 1024 * 1024
BIG = 256 * MB
BOUND = 64 * MB  # a quarter of the file: what daphne may grow by while it sends it


def resident(pid: int, field: str = "VmRSS") -> int:
    """A process's resident memory (VmRSS) or its peak since the last reset (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == field:
            return int(value.split()[0]) * 1024
    raise KeyError(field)


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM starts again from VmRSS


@pytest.fixture
def task(node_root):
    (task,) = add(make_job("j"), "t")
    wd = working_dir(task)
    wd.mkdir(parents=True)
    with open(wd / "sparse", "wb") as f:
        f.truncate(BIG)  # `truncate -s 256M sparse`, as a task could
    (wd / "written").write_bytes(b"x" * (32 * MB))
    return task


@pytest.fixture
def api_session(owner):
    session = requests.Session()
    session.headers["Authorization"] = f"Token {Token.objects.create(user=owner).key}"
    return session


def read_all(response) -> int:
    return sum(len(chunk) for chunk in response.iter_content(MB))


@pytest.mark.django_db(transaction=True)
def test_daphne_sends_a_large_file_without_holding_it(server, task, owner, api_session):
    page = requests.Session()
    cookie = session_cookie(owner, server.url)
    page.cookies.set(cookie["name"], cookie["value"])
    assert api_session.get(server.url + "/batch/jobs/j/taskcounts").status_code == 200  # warm
    downloads = [
        (api_session, "/batch/jobs/j/tasks/t/files/wd/sparse", {}, BIG),
        (api_session, "/batch/jobs/j/tasks/t/files/wd/sparse", {"ocp-range": f"bytes={MB}-{MB + BIG // 2 - 1}"},
         BIG // 2),
        (page, "/jobs/j/tasks/t/files/wd/sparse", {}, BIG),
    ]
    for session, path, headers, size in downloads:
        reset_peak(server.proc.pid)
        before = resident(server.proc.pid)
        with session.get(server.url + path, headers=headers, stream=True, timeout=(5, 60)) as response:
            assert response.status_code == 200
            assert int(response.headers["Content-Length"]) == size
            assert read_all(response) == size
        growth = resident(server.proc.pid, "VmHWM") - before
        assert growth < BOUND, f"{path} {headers}: daphne grew by {growth / MB:.0f} MB for {size / MB:.0f} MB"


@pytest.mark.django_db(transaction=True)
def test_other_requests_are_answered_while_a_client_reads_a_download_slowly(server, task, api_session):
    other = requests.Session()
    other.headers.update(api_session.headers)
    assert other.get(server.url + "/batch/jobs/j/taskcounts").status_code == 200  # warm
    before = resident(server.proc.pid)
    url = server.url + "/batch/jobs/j/tasks/t/files/wd/sparse"
    with api_session.get(url, stream=True, timeout=(5, 60)) as download:
        first = download.raw.read(MB)  # the client reads a megabyte, then stops for two seconds
        for _ in range(10):
            assert other.get(server.url + "/batch/jobs/j/taskcounts", timeout=10).json()["taskCounts"]
            time.sleep(0.2)
        held = resident(server.proc.pid) - before
        rest = read_all(download)
    assert len(first) + rest == BIG
    assert held < BOUND, f"daphne holds {held / MB:.0f} MB of a download its client has not read"


@pytest.mark.django_db(transaction=True)
def test_a_file_cut_short_mid_download_is_padded_to_its_length_not_left_hanging(server, task, api_session):
    path = working_dir(task) / "written"
    with api_session.get(server.url + "/batch/jobs/j/tasks/t/files/wd/written", stream=True,
                         timeout=(5, 20)) as download:
        length = int(download.headers["Content-Length"])
        head = download.raw.read(MB)
        os.truncate(path, MB)  # the task rewrites its output while we send it
        rest = download.raw.read()  # to the end: a body shorter than its length would time out here
    assert len(head) + len(rest) == length == 32 * MB
    assert head == b"x" * MB
    assert rest.endswith(bytes(MB))  # zeros where the file had no bytes any more


@pytest.mark.django_db
def test_a_file_cut_short_mid_read_keeps_its_length_under_wsgi_too(api, task):
    path = working_dir(task) / "written"
    response = api.get("/batch/jobs/j/tasks/t/files/wd/written")
    chunks = iter(response.streaming_content)
    head = next(chunks)
    os.truncate(path, len(head))
    body = head + b"".join(chunks)
    assert len(body) == int(response["Content-Length"]) == 32 * MB
    assert body[len(head):] == bytes(32 * MB - len(head))


@pytest.mark.django_db(transaction=True)
def test_an_asgi_request_gets_an_async_body_with_the_files_bytes(task, owner):
    (working_dir(task) / "small").write_bytes(bytes(range(256)) * 4096)  # 1 MiB, every byte value
    token = Token.objects.create(user=owner).key

    async def fetch(headers: dict) -> tuple[bool, bytes, dict]:
        response = await AsyncClient().get("/batch/jobs/j/tasks/t/files/wd/small",
                                           headers={"Authorization": f"Token {token}", **headers})
        body = b"".join([part async for part in response.streaming_content])
        return response.is_async, body, response

    is_async, body, _ = async_to_sync(fetch)({})
    assert is_async and body == bytes(range(256)) * 4096
    is_async, body, response = async_to_sync(fetch)({"ocp-range": "bytes=1000-299999"})
    assert body == (bytes(range(256)) * 4096)[1000:300000]
    assert response["Content-Range"] == f"bytes 1000-299999/{MB}"

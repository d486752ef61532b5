"""Reads of task files against a task that keeps swapping them: through a live daphne server, a
separate process turns stdout.txt, a file of the working directory and the working directory
itself into symlinks out of the task directory (and FIFOs) and back, as fast as it can, while 300
reads go through the API and the dashboard. None may show the outside file, fail with a 5xx,
send a body of another length than its Content-Length, or hang."""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from rest_framework.authtoken.models import Token

from tasks.files import task_dir

from .browser import session_cookie
from .helpers import add, make_job

pytestmark = pytest.mark.django_db(transaction=True)

MARKER = b"OUTSIDE-THE-TASK-DIRECTORY"
SECRET = (MARKER + b"\n") * 200  # 5,400 bytes: no regular file of the task has this length
INSIDE = b"inside output line\n" * 50  # 950 bytes

# The task's side: everything is put in place by rename, so at every moment each name is a
# regular file, a symlink out or a FIFO (and wd a directory or a symlink to the outside one).
SWAPPER = r"""
import os, sys
directory, outside = sys.argv[1], sys.argv[2]
os.chdir(directory)
inside = b"inside output line\n" * 50

def put(name, make):
    temporary = name + ".new"
    make(temporary)
    os.replace(temporary, name)

def regular(path):
    with open(path, "wb") as f:
        f.write(inside)

while True:
    for name in ("stdout.txt", "wd/data.txt"):
        put(name, lambda p: os.symlink(os.path.join(outside, "secret.txt"), p))
        put(name, regular)
        put(name, os.mkfifo)
        put(name, regular)
    os.rename("wd", "wd.real")
    os.symlink(outside, "wd")
    os.remove("wd")
    os.rename("wd.real", "wd")
"""


@pytest.fixture
def swapping_task(node_root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("secret.txt", "data.txt", "stdout.txt", "outside-only.txt"):
        (outside / name).write_bytes(SECRET)
    (task,) = add(make_job("j"), "t")
    directory = task_dir(task)
    (directory / "wd").mkdir(parents=True)
    for name in ("stdout.txt", "stderr.txt", "wd/data.txt"):
        (directory / name).write_bytes(INSIDE)
    swapper = subprocess.Popen([sys.executable, "-c", SWAPPER, str(directory), str(outside)])
    task.swapper = swapper
    yield task
    swapper.kill()
    swapper.wait()


def test_reads_never_show_what_a_swapped_symlink_points_to(server, swapping_task, owner):
    api = requests.Session()
    api.headers["Authorization"] = f"Token {Token.objects.create(user=owner).key}"
    page = requests.Session()
    cookie = session_cookie(owner, server.url)
    page.cookies.set(cookie["name"], cookie["value"])
    files = "/batch/jobs/j/tasks/t/files"
    reads = [
        (api, "GET", f"{files}/stdout.txt", {}),
        (api, "GET", f"{files}/stdout.txt", {"ocp-range": "bytes=0-99"}),
        (api, "HEAD", f"{files}/stdout.txt", {}),
        (api, "GET", f"{files}/wd/data.txt", {}),
        (api, "GET", f"{files}/wd/data.txt", {"ocp-range": "bytes=100-"}),
        (api, "HEAD", f"{files}/wd/data.txt", {}),
        (api, "GET", f"{files}?recursive=true", {}),
        (page, "GET", "/jobs/j/tasks/t/", {}),
        (page, "GET", f"/jobs/j/tasks/t/logs/stdout.txt?before={len(SECRET)}", {}),
        (page, "GET", "/jobs/j/tasks/t/files/stdout.txt", {}),
        (page, "GET", "/jobs/j/tasks/t/files/wd/data.txt", {}),
    ]

    def read(i: int):
        session, method, path, headers = reads[i % len(reads)]
        # Bounded: a read that hangs fails the test. requests (urllib3 2) raises when a body
        # ends before its Content-Length.
        response = session.request(method, server.url + path, headers=headers, timeout=(5, 20))
        return method, path, response

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(read, range(300)))

    statuses = {}
    for method, path, response in results:
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (path, response.status_code, response.text[:200])
        assert MARKER not in response.content, (method, path)
        assert b"outside-only" not in response.content, (method, path)
        length = response.headers.get("Content-Length")
        if "/files/" in path and response.status_code == 200:  # a file read: of an inside file
            expected = {"bytes=0-99": 100, "bytes=100-": len(INSIDE) - 100}.get(
                response.request.headers.get("ocp-range"), len(INSIDE))
            assert int(length) == expected, (method, path)
        if method == "GET" and length is not None:
            assert len(response.content) == int(length), (method, path)
    assert statuses.get(200, 0) > 100, statuses  # most reads found a regular file, and read it
    # The race was on: the swapper ran throughout, and some reads met a symlink (or a FIFO) and were refused.
    assert swapping_task.swapper.poll() is None
    assert sum(n for status, n in statuses.items() if 400 <= status < 500) > 0, statuses

"""Task files: listing, ranged reads answered 200, nothing outside the task directory."""

import os

import pytest

from tasks.files import task_dir

from .helpers import add, make_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def task(node_root):
    (task,) = add(make_job("j"), "t")
    directory = task_dir(task)
    (directory / "wd" / "out").mkdir(parents=True)
    (directory / "stdout.txt").write_bytes(b"0123456789")
    (directory / "stderr.txt").write_bytes(b"")
    (directory / "wd" / "out" / "result.csv").write_text("a,b\n")
    (node_root / "secret.txt").write_text("not yours")
    return task


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_a_whole_file_is_read(api, task):
    response = api.get("/batch/jobs/j/tasks/t/files/stdout.txt")
    assert response.status_code == 200
    assert body(response) == b"0123456789"
    assert response["Content-Length"] == "10"
    assert response["Last-Modified"].endswith("GMT")


@pytest.mark.parametrize("header,expected", [
    ("bytes=2-5", b"2345"),
    ("bytes=7-", b"789"),
    ("bytes=-3", b"789"),
    ("bytes=8-100", b"89"),
])
def test_a_byte_range_is_answered_200_with_the_slice(api, task, header, expected):
    response = api.get("/batch/jobs/j/tasks/t/files/stdout.txt", HTTP_OCP_RANGE=header)
    assert response.status_code == 200  # never 206: the Batch clients expect 200
    assert body(response) == expected


def test_a_range_past_the_end_is_refused(api, task):
    response = api.get("/batch/jobs/j/tasks/t/files/stdout.txt", HTTP_OCP_RANGE="bytes=50-60")
    assert (response.status_code, response.json()["code"]) == (416, "InvalidRange")


def test_files_in_the_working_directory_are_read_by_their_relative_path(api, task):
    assert body(api.get("/batch/jobs/j/tasks/t/files/wd/out/result.csv")) == b"a,b\n"
    assert body(api.get("/batch/jobs/j/tasks/t/files/wd%2Fout%2Fresult.csv")) == b"a,b\n"


def test_head_gives_the_file_properties(api, task):
    response = api.head("/batch/jobs/j/tasks/t/files/stdout.txt")
    assert response.status_code == 200
    assert response["Content-Length"] == "10"
    assert response["ocp-batch-file-isdirectory"] == "false"


@pytest.mark.parametrize("path", ["../../secret.txt", "wd/../../../secret.txt", "..%2F..%2Fsecret.txt"])
def test_paths_outside_the_task_directory_are_refused(api, task, path):
    response = api.get(f"/batch/jobs/j/tasks/t/files/{path}")
    assert response.status_code in (400, 404)
    assert b"not yours" not in response.content


def test_a_symlink_out_of_the_task_directory_is_refused(api, task, node_root):
    os.symlink(node_root / "secret.txt", task_dir(task) / "wd" / "escape.txt")
    response = api.get("/batch/jobs/j/tasks/t/files/wd/escape.txt")
    assert (response.status_code, response.json()["code"]) == (400, "InvalidFilePath")


def test_a_missing_file_is_file_not_found(api, task):
    assert api.get("/batch/jobs/j/tasks/t/files/nope.txt").json()["code"] == "FileNotFound"


def test_listing_is_flat_by_default_and_recursive_on_request(api, task):
    flat = [f["name"] for f in api.get("/batch/jobs/j/tasks/t/files").json()["value"]]
    assert flat == ["stderr.txt", "stdout.txt", "wd"]
    deep = api.get("/batch/jobs/j/tasks/t/files?recursive=true").json()["value"]
    assert [f["name"] for f in deep] == ["stderr.txt", "stdout.txt", "wd", "wd/out", "wd/out/result.csv"]
    sizes = {f["name"]: (f["isDirectory"], f["properties"]["contentLength"]) for f in deep}
    assert sizes["stdout.txt"] == (False, 10) and sizes["wd"] == (True, 0)


def test_listing_pages_with_a_next_link(api, task):
    names, url = [], "/batch/jobs/j/tasks/t/files?recursive=true&maxresults=2"
    while url:
        page = api.get(url).json()
        names += [f["name"] for f in page["value"]]
        url = page.get("odata.nextLink")
    assert names == ["stderr.txt", "stdout.txt", "wd", "wd/out", "wd/out/result.csv"]


def test_pages_lose_no_file_whose_name_sorts_between_a_folder_and_what_is_in_it(api, task):
    # "wd-old" < "wd/out" as strings ("-" < "/"), but the walk lists it after wd's content:
    # a page that ends inside wd must not skip it.
    (task_dir(task) / "wd-old").mkdir()
    (task_dir(task) / "wd-old" / "kept.txt").write_text("")
    everything = [f["name"] for f in api.get("/batch/jobs/j/tasks/t/files?recursive=true").json()["value"]]
    assert everything == ["stderr.txt", "stdout.txt", "wd", "wd/out", "wd/out/result.csv", "wd-old",
                          "wd-old/kept.txt"]
    for size in (1, 2, 3, 4):
        names, url = [], f"/batch/jobs/j/tasks/t/files?recursive=true&maxresults={size}"
        while url:
            page = api.get(url).json()
            names += [f["name"] for f in page["value"]]
            url = page.get("odata.nextLink")
        assert names == everything, size


def test_listing_filters_on_a_name_prefix(api, task):
    def names(query: str) -> list[str]:
        response = api.get(f"/batch/jobs/j/tasks/t/files?{query}")
        assert response.status_code == 200, response.content
        return [f["name"] for f in response.json()["value"]]

    assert names("$filter=startswith(name,'std')") == ["stderr.txt", "stdout.txt"]
    assert names("$filter=startswith(name,'wd/')") == ["wd/out"]  # one level: what is in wd
    assert names("$filter=startswith(name,'wd/')&recursive=true") == ["wd/out", "wd/out/result.csv"]
    assert names("$filter=startswith(name,'WD')") == []  # file names are case-sensitive
    refused = api.get("/batch/jobs/j/tasks/t/files?$filter=name eq 'wd'")
    assert (refused.status_code, refused.json()["code"]) == (400, "InvalidQueryParameterValue")

"""Requests schemathesis found answered wrongly (a 500, an answer outside the schema or Batch's error
shape), each now answered as the Batch API answers."""

import pytest
import requests

from .helpers import make_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def job():
    return make_job("job")


def refused(response, reason: str) -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "InvalidPropertyValue"
    assert {"key": "Reason", "value": reason} in body["values"]


@pytest.mark.parametrize("output_file, reason", [
    ({"filePattern": "a", "destination": "results"}, "destination must be an object"),
    ({"filePattern": "a", "destination": {"container": ["c"]}}, "container must be an object"),
    ({"filePattern": "a", "destination": {"container": {"containerUrl": "c"}}, "uploadOptions": "always"},
     "uploadOptions must be an object"),
    ({"filePattern": ["a"], "destination": {"container": {"containerUrl": "c"}}}, "filePattern must be a string"),
])
def test_an_output_file_whose_objects_are_not_objects_is_a_400_not_a_500(api, job, output_file, reason):
    response = api.post("/batch/jobs/job/tasks", {"id": "t", "commandLine": "/bin/true", "outputFiles": [output_file]},
                        format="json")
    refused(response, reason)


@pytest.mark.parametrize("resource_file, reason", [
    ({"httpUrl": "http://host/x", "filePath": [None, None]}, "filePath must be a string"),
    ({"autoStorageContainerName": ["inputs"]}, "autoStorageContainerName must be a string"),
    ({"autoStorageContainerName": "inputs", "blobPrefix": 7}, "blobPrefix must be a string"),
])
def test_a_resource_file_whose_strings_are_not_strings_is_refused_not_stored(api, job, resource_file, reason):
    response = api.post("/batch/jobs/job/tasks", {"id": "t", "commandLine": "/bin/true",
                                                  "resourceFiles": [resource_file]}, format="json")
    refused(response, reason)


def test_a_collection_item_whose_id_is_not_a_string_is_reported_with_an_empty_task_id(api, job):
    response = api.post("/batch/jobs/job/addtaskcollection", {"value": [
        {"id": [None, None], "commandLine": "/bin/true"}, {"id": "fine", "commandLine": "/bin/true"}]}, format="json")
    assert response.status_code == 200
    bad, fine = response.json()["value"]
    assert (bad["status"], bad["taskId"], bad["error"]["code"]) == ("clienterror", "", "InvalidPropertyValue")
    assert (fine["status"], fine["taskId"]) == ("success", "fine")


@pytest.mark.django_db(transaction=True)
def test_a_multipart_body_is_refused_in_batch_shape_not_with_a_bare_400(server, owner):
    """Under daphne, Twisted answered a multipart body it could not parse itself, with an empty 400."""
    from rest_framework.authtoken.models import Token

    make_job("job")
    response = requests.post(f"{server.url}/batch/jobs/job/disable", data=b'{"disableTasks": "wait"}', timeout=30,
                             headers={"Authorization": f"Token {Token.objects.create(user=owner).key}",
                                      "Content-Type": "multipart/form-data"})
    assert response.status_code == 415
    assert response.json()["code"] == "UnsupportedMediaType"

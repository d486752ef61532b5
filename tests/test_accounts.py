"""Batch accounts: Shared Key as the clients sign it (signed here by the azure-batch SDK's own
policy), replay and tampering refused, accounts isolated through the API, the pages and
the sockets, and the viewer and operator roles."""

from datetime import timedelta
from email.utils import format_datetime

import pytest
from azure.batch._patch import BatchSharedKeyAuthPolicy
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.rest import HttpRequest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import BatchAccount, Membership, Role
from jobs.models import Job

from .helpers import add, make_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def alpha():
    return BatchAccount.objects.create(name="alpha")


@pytest.fixture
def beta():
    return BatchAccount.objects.create(name="beta")


def signed(account, method: str, path: str, *, key: str | None = None, body: bytes = b"", date=None) -> dict:
    """The headers the SDK would send for this request (Authorization, ocp-date, ...)."""
    request = HttpRequest(method, f"http://testserver{path}", content=body or None,
                          headers={"Content-Type": "application/json; odata=minimalmetadata"} if body else {})
    if date is not None:
        request.headers["ocp-date"] = format_datetime(date, usegmt=True)
    policy = BatchSharedKeyAuthPolicy(AzureNamedKeyCredential(account.name, key or account.primary_key))
    policy.on_request(PipelineRequest(request, PipelineContext(None)))
    return dict(request.headers)


def send(method: str, path: str, headers: dict, body: bytes = b""):
    meta = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in headers.items()
            if name.lower() not in ("content-type", "content-length")}
    client = APIClient()
    return client.generic(method, path, body, content_type=headers.get("Content-Type", ""), **meta)


def test_a_request_signed_by_the_sdk_is_accepted_and_sees_its_account_only(alpha, beta):
    make_job("mine", account=alpha)
    make_job("theirs", account=beta)
    path = "/batch/jobs?api-version=2025-06-01&maxresults=10"
    response = send("GET", path, signed(alpha, "GET", path))
    assert response.status_code == 200, response.content
    assert [j["id"] for j in response.json()["value"]] == ["mine"]
    body = b'{"id": "made", "poolInfo": {"poolId": "local"}}'
    response = send("POST", "/batch/jobs?api-version=2025-06-01",
                    signed(alpha, "POST", "/batch/jobs?api-version=2025-06-01", body=body), body)
    assert response.status_code == 201, response.content
    assert Job.objects.get(key="made").account == alpha


def auth_failure(response) -> dict:
    assert response.status_code == 401, response.content
    body = response.json()
    assert body["code"] == "AuthenticationFailed"
    return {k: v for k, v in body.items() if k != "odata.metadata"}


def test_tampering_replay_and_wrong_keys_are_refused_alike(alpha):
    make_job("mine", account=alpha)
    path = "/batch/jobs/mine?api-version=2025-06-01"
    headers = signed(alpha, "GET", path)
    assert send("GET", path, headers).status_code == 200
    # The query string is signed: change it and the signature no longer holds.
    auth_failure(send("GET", path + "&$select=id", headers))
    auth_failure(send("GET", path.replace("mine", "MINE"), headers))  # the path too
    # A captured request replayed after the skew window (15 minutes) is refused; within it, accepted.
    old = signed(alpha, "GET", path, date=timezone.now() - timedelta(minutes=16))
    auth_failure(send("GET", path, old))
    assert send("GET", path, signed(alpha, "GET", path, date=timezone.now() - timedelta(minutes=14))).status_code \
        == 200
    undated = {k: v for k, v in headers.items() if k.lower() != "ocp-date"}
    auth_failure(send("GET", path, undated))
    # A wrong key and an unknown account get the same answer: nothing says which.
    wrong_key = auth_failure(send("GET", path, signed(alpha, "GET", path, key=BatchAccount().primary_key)))
    ghost = BatchAccount(name="ghost")
    unknown = auth_failure(send("GET", path, signed(ghost, "GET", path)))
    assert wrong_key == unknown


def test_both_keys_work_and_rotation_retires_one(alpha):
    make_job("mine", account=alpha)
    path = "/batch/jobs/mine?api-version=2024-02-01.19.0"
    for key in alpha.keys():
        assert send("GET", path, signed(alpha, "GET", path, key=key)).status_code == 200
    old = alpha.primary_key
    from django.core.management import call_command

    call_command("batch_account", "rotate", "alpha", "primary", stdout=open("/dev/null", "w"))
    auth_failure(send("GET", path, signed(alpha, "GET", path, key=old)))
    alpha.refresh_from_db()
    assert send("GET", path, signed(alpha, "GET", path)).status_code == 200


@pytest.mark.parametrize("query, status, code", [
    ("?api-version=2025-06-01", 200, None),
    ("?api-version=2024-02-01.19.0", 200, None),
    ("?api-version=2099-01-01.99.0", 400, "InvalidQueryParameterValue"),
    ("", 400, "MissingRequiredQueryParameter"),  # every Batch client sends one
])
def test_api_versions(alpha, query, status, code):
    path = "/batch/jobs" + query
    response = send("GET", path, signed(alpha, "GET", path))
    assert response.status_code == status, response.content
    if code:
        assert response.json()["code"] == code
        assert "api-version" in str(response.json()["values"])


def test_token_scripts_may_leave_the_api_version_out(api):
    assert api.get("/batch/jobs").status_code == 200
    assert api.get("/batch/jobs", {"api-version": "1999-01-01"}).json()["code"] == "InvalidQueryParameterValue"


def token_client(user, account_header: str | None = None) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}",
                       **({"HTTP_BATCHSITE_ACCOUNT": account_header} if account_header else {}))
    return client


def test_viewers_read_and_operators_change(django_user_model, alpha):
    job = make_job("j", account=alpha)
    add(job, "t")
    viewer = django_user_model.objects.create_user("viewer")
    operator = django_user_model.objects.create_user("operator")
    Membership.objects.create(user=viewer, account=alpha, role=Role.VIEWER)
    Membership.objects.create(user=operator, account=alpha, role=Role.OPERATOR)
    as_viewer, as_operator = token_client(viewer), token_client(operator)
    assert as_viewer.get("/batch/jobs/j/tasks/t").status_code == 200
    for response in (as_viewer.post("/batch/jobs/j/tasks/t/terminate"), as_viewer.delete("/batch/jobs/j"),
                     as_viewer.post("/batch/jobs", {"id": "x", "poolInfo": {"poolId": "local"}}, format="json")):
        assert response.status_code == 403
        assert response.json()["code"] == "InsufficientAccountPermissions"
    assert as_operator.post("/batch/jobs/j/tasks/t/terminate").status_code == 204
    # Nobody without a membership reaches anything.
    stranger = django_user_model.objects.create_user("stranger")
    assert token_client(stranger).get("/batch/jobs").status_code == 403


def test_a_member_of_several_accounts_names_one(django_user_model, alpha, beta):
    make_job("a-job", account=alpha)
    make_job("b-job", account=beta)
    user = django_user_model.objects.create_user("both")
    Membership.objects.create(user=user, account=alpha, role=Role.VIEWER)
    Membership.objects.create(user=user, account=beta, role=Role.VIEWER)
    response = token_client(user).get("/batch/jobs")
    assert response.status_code == 400 and response.json()["code"] == "MissingRequiredHeader"
    assert [j["id"] for j in token_client(user, "beta").get("/batch/jobs").json()["value"]] == ["b-job"]
    assert token_client(user, "beta").get("/batch/jobs/a-job").status_code == 404
    assert token_client(user, "gamma").get("/batch/jobs").status_code == 403


def test_a_logged_in_browser_uses_the_account_its_dashboard_shows(client, django_user_model, alpha, beta):
    make_job("a-job", account=alpha)
    make_job("b-job", account=beta)
    user = django_user_model.objects.create_user("both")
    Membership.objects.create(user=user, account=alpha, role=Role.VIEWER)
    Membership.objects.create(user=user, account=beta, role=Role.VIEWER)
    client.force_login(user)
    listed = client.get("/batch/jobs", HTTP_ACCEPT="application/json").json()["value"]
    assert [j["id"] for j in listed] == ["a-job"]
    client.post("/accounts/switch/", {"account": "beta"})
    listed = client.get("/batch/jobs", HTTP_ACCEPT="application/json").json()["value"]
    assert [j["id"] for j in listed] == ["b-job"]


def test_the_dashboard_shows_one_account_and_switches(client, django_user_model, alpha, beta):
    make_job("a-job", account=alpha)
    make_job("b-job", account=beta)
    user = django_user_model.objects.create_user("both")
    Membership.objects.create(user=user, account=alpha, role=Role.VIEWER)
    Membership.objects.create(user=user, account=beta, role=Role.OPERATOR)
    client.force_login(user)
    page = client.get("/").content.decode()
    assert "a-job" in page and "b-job" not in page  # the first account, by name
    assert client.get("/jobs/b-job/").status_code == 404
    assert client.post("/jobs/a-job/actions/terminate").status_code == 403  # a viewer of alpha
    assert client.post("/accounts/switch/", {"account": "beta"}).status_code == 302
    page = client.get("/").content.decode()
    assert "b-job" in page and "a-job" not in page
    assert client.get("/jobs/b-job/").status_code == 200
    assert client.post("/accounts/switch/", {"account": "gamma"}).status_code == 404
    outsider = django_user_model.objects.create_user("outsider")
    Membership.objects.create(user=outsider, account=beta, role=Role.VIEWER)
    client.force_login(outsider)
    assert client.post("/accounts/switch/", {"account": "alpha"}).status_code == 404
    assert client.get("/jobs/a-job/").status_code == 404

"""The web side's hardening: login throttling, the admin password from the environment,
the Content-Security-Policy header, and cookies and HSTS behind https.

The browser half (no page violates the policy) is in test_dashboard_browser.py.
"""

import json
import os
import re
import subprocess
import sys

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from rest_framework.authtoken.models import Token

from .conftest import ROOT, database_url
from .helpers import add, claim, make_job

pytestmark = pytest.mark.django_db

LOCKED = "Too many failed logins"
ADDRESS = "192.0.2.10"  # TEST-NET-1: a client address that is only ever a string here


def log_in(client, path: str, username: str, password: str, **extra):
    return client.post(path, {"username": username, "password": password, "next": "/"}, **extra)


def fail_until_locked(client, path: str, username: str, **extra):
    """Wrong passwords until the limit; returns the responses."""
    from django.conf import settings

    return [log_in(client, path, username, f"wrong-{i}", **extra) for i in range(settings.AXES_FAILURE_LIMIT)]


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


# --- login throttling ---------------------------------------------------------------------

def test_the_login_page_refuses_the_right_password_after_five_wrong_ones_until_reset(client, owner):
    responses = fail_until_locked(client, "/accounts/login/", "owner")
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 429]

    right = log_in(client, "/accounts/login/", "owner", "owner-password-1")
    assert right.status_code == 429 and LOCKED in right.content.decode()
    assert not logged_in(client)

    call_command("axes_reset_username", "owner")
    assert log_in(client, "/accounts/login/", "owner", "owner-password-1").status_code == 302 and logged_in(client)


def test_the_lockout_page_says_how_long_and_how_to_lift_it(client, owner):
    page = fail_until_locked(client, "/accounts/login/", "owner")[-1].content.decode()
    text = re.sub(r"\s+", " ", page)
    assert "refused for 15 minutes" in text
    assert "axes_reset_username owner" in text
    assert 'href="/accounts/login/"' in text


def test_the_admin_login_is_throttled_too(client, admin_user):
    responses = fail_until_locked(client, "/admin/login/", "admin")
    assert responses[-1].status_code == 429

    right = log_in(client, "/admin/login/", "admin", "password")
    assert right.status_code == 429 and LOCKED in right.content.decode()
    assert not logged_in(client)

    call_command("axes_reset")
    assert log_in(client, "/admin/login/", "admin", "password").status_code == 302 and logged_in(client)


def test_a_lockout_holds_for_one_username_from_one_address(client, owner, django_user_model):
    """Nobody locks the admin out from elsewhere, and a shared address does not lock out its other users."""
    django_user_model.objects.create_user("neighbour", password="neighbour-password-1")
    fail_until_locked(client, "/accounts/login/", "owner")
    assert log_in(client, "/accounts/login/", "owner", "owner-password-1").status_code == 429

    elsewhere = Client(REMOTE_ADDR=ADDRESS)
    assert log_in(elsewhere, "/accounts/login/", "owner", "owner-password-1").status_code == 302
    same_address = Client()
    assert log_in(same_address, "/accounts/login/", "neighbour", "neighbour-password-1").status_code == 302


def test_a_success_before_the_limit_forgets_the_failures(client, owner):
    from django.conf import settings

    for i in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, "/accounts/login/", "owner", f"wrong-{i}")
    assert log_in(client, "/accounts/login/", "owner", "owner-password-1").status_code == 302
    client.logout()
    # Counting starts again from one: the limit is reached again only after as many failures.
    again = fail_until_locked(client, "/accounts/login/", "owner")
    assert [r.status_code for r in again] == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]


def test_the_api_credentials_are_not_login_attempts_and_still_work_when_the_login_is_locked(client, owner):
    assert fail_until_locked(client, "/accounts/login/", "owner")[-1].status_code == 429
    attempts = AccessAttempt.objects.count()

    api = Client()
    for i in range(10):
        assert api.get("/batch/jobs", HTTP_AUTHORIZATION=f"Token wrong-{i}").status_code == 401
    assert AccessAttempt.objects.count() == attempts

    token = Token.objects.create(user=owner)
    assert api.get("/batch/jobs", HTTP_AUTHORIZATION=f"Token {token.key}").status_code == 200


# --- the admin password from the environment -----------------------------------------------

def ensure_admin(password: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url(), "BATCHSITE_ADMIN_PASSWORD": password,
           "BATCHSITE_ADMIN_USER": "env-admin"}
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), "ensure_admin"], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.django_db(transaction=True)
def test_ensure_admin_refuses_a_weak_password_from_the_environment_and_says_why():
    result = ensure_admin("1")
    assert result.returncode != 0  # `make run` (set -e) stops here
    assert "BATCHSITE_ADMIN_PASSWORD is not accepted" in result.stderr
    assert "too short" in result.stderr and "too common" in result.stderr and "entirely numeric" in result.stderr
    assert not get_user_model().objects.filter(username="env-admin").exists()


@pytest.mark.django_db(transaction=True)
def test_ensure_admin_creates_the_admin_with_a_strong_password_from_the_environment():
    result = ensure_admin("plum-orbit-lantern-42")
    assert result.returncode == 0, result.stderr
    user = get_user_model().objects.get(username="env-admin")
    assert user.is_superuser and user.check_password("plum-orbit-lantern-42")
    assert "plum-orbit-lantern-42" not in result.stdout


# --- Content-Security-Policy ----------------------------------------------------------------

def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in header.split(";") if d.strip()}


@pytest.fixture
def pages(client, owner, admin_user):
    """Every kind of page a browser shows, as (client, path), with what it needs to exist."""
    job = make_job("csp-job")
    (task,) = add(job, "csp-task")
    claim(node_id="n", limit=1)
    client.force_login(owner)
    admin = Client()
    admin.force_login(admin_user)
    return [(Client(), "/accounts/login/"), (client, "/"), (client, "/jobs/csp-job/"),
            (client, "/jobs/csp-job/tasks/csp-task/"), (client, "/batch/jobs"), (admin, "/admin/"),
            (admin, "/admin/jobs/job/"), (admin, f"/admin/jobs/job/{job.pk}/change/")]


def test_every_page_carries_a_policy_that_allows_no_inline_script(pages):
    for client, path in pages:
        response = client.get(path, HTTP_ACCEPT="text/html")
        assert response.status_code == 200, path
        csp = policy(response)
        assert csp["script-src"] == ["'self'"], path
        assert csp["default-src"] == ["'self'"] and csp["object-src"] == ["'none'"], path
        assert csp["frame-ancestors"] == ["'none'"] and csp["base-uri"] == ["'none'"], path
        assert csp["style-src"] == ["'self'", "'unsafe-inline'"], path
        assert response["X-Content-Type-Options"] == "nosniff" and response["Referrer-Policy"] == "same-origin"


def test_the_policy_lets_a_page_open_its_own_socket_and_no_other(client, owner, settings):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "batch.example.com"]
    client.force_login(owner)
    csp = policy(client.get("/", HTTP_HOST="batch.example.com:8443"))
    assert csp["connect-src"] == ["'self'", "ws://batch.example.com:8443", "wss://batch.example.com:8443"]


def test_our_pages_have_no_inline_event_handlers(pages):
    for client, path in pages[:4]:  # the admin's and DRF's pages are checked in the browser
        html = client.get(path).content.decode()
        assert not re.search(r"<[^>]+\son[a-z]+\s*=", html), path
        assert not re.search(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", html), path


def test_the_api_answers_json_with_the_policy_too(api):
    response = api.get("/batch/jobs")
    assert response["Content-Type"].startswith("application/json")
    assert policy(response)["script-src"] == ["'self'"]


# --- cookies and HSTS behind https -----------------------------------------------------------

def cookie_flags(client, name: str) -> dict:
    morsel = client.cookies[name]
    return {"secure": bool(morsel["secure"]), "httponly": bool(morsel["httponly"])}


def test_behind_https_the_cookies_are_secure_and_hsts_is_sent(settings, owner):
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    client = Client()  # its middleware reads the settings at the first request

    page = client.get("/accounts/login/", secure=True)
    assert page["Strict-Transport-Security"] == "max-age=31536000"
    assert cookie_flags(client, "csrftoken")["secure"]
    log_in(client, "/accounts/login/", "owner", "owner-password-1", secure=True)
    assert cookie_flags(client, "sessionid") == {"secure": True, "httponly": True}


def test_on_plain_http_by_default_the_cookies_are_not_secure_and_no_hsts(client, owner):
    page = client.get("/accounts/login/", secure=True)
    assert "Strict-Transport-Security" not in page
    assert not cookie_flags(client, "csrftoken")["secure"]
    log_in(client, "/accounts/login/", "owner", "owner-password-1")
    assert cookie_flags(client, "sessionid") == {"secure": False, "httponly": True}


def test_a_request_counts_as_https_only_by_the_proxy_header_it_was_told_of(settings):
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    client = Client()
    assert client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")["Strict-Transport-Security"] == "max-age=3600"
    assert "Strict-Transport-Security" not in client.get("/accounts/login/")


def settings_under(**env) -> dict:
    """The security settings as a fresh process reads them from this environment."""
    program = ("import json, django; django.setup(); from django.conf import settings as s; print(json.dumps({k: "
               "getattr(s, k, None) for k in ['SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', "
               "'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_HSTS_PRELOAD', 'SECURE_SSL_REDIRECT', "
               "'SECURE_PROXY_SSL_HEADER', 'AXES_FAILURE_LIMIT', 'AXES_COOLOFF_TIME']}, default=str))")
    base = {k: v for k, v in os.environ.items() if not k.startswith("BATCHSITE_") or k == "BATCHSITE_DATA_DIR"}
    result = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={**base, "DJANGO_SETTINGS_MODULE": "batchsite.settings", **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_environment_turns_https_settings_on_and_they_are_off_without_it():
    assert settings_under() == {
        "SESSION_COOKIE_SECURE": False, "CSRF_COOKIE_SECURE": False, "SECURE_HSTS_SECONDS": 0,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False, "SECURE_HSTS_PRELOAD": False, "SECURE_SSL_REDIRECT": False,
        "SECURE_PROXY_SSL_HEADER": None, "AXES_FAILURE_LIMIT": 5, "AXES_COOLOFF_TIME": "0:15:00"}
    assert settings_under(BATCHSITE_HTTPS="1", BATCHSITE_PROXY_SSL_HEADER="X-Forwarded-Proto",
                          BATCHSITE_HSTS_INCLUDE_SUBDOMAINS="1", BATCHSITE_SSL_REDIRECT="1",
                          BATCHSITE_LOGIN_FAILURE_LIMIT="8", BATCHSITE_LOGIN_COOLOFF_MINUTES="30") == {
        "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True, "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True, "SECURE_HSTS_PRELOAD": False, "SECURE_SSL_REDIRECT": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"], "AXES_FAILURE_LIMIT": 8,
        "AXES_COOLOFF_TIME": "0:30:00"}
    assert settings_under(BATCHSITE_HTTPS="1", BATCHSITE_HSTS_SECONDS="600")["SECURE_HSTS_SECONDS"] == 600

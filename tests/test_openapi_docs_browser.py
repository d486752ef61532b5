"""The Swagger UI at /api/docs/ in a real browser: it draws every Batch operation from files this
server serves (nothing from another host), under a Content-Security-Policy that allows no inline
script or style.

Until the server sends a policy of its own, the test adds a strict one to every answer.
"""

import os

import pytest

from .browser import CHROMIUM, CHROMIUM_ARGS, browser_missing, screenshot, session_cookie

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # Playwright's loop runs in this thread

MISSING = browser_missing()
pytestmark = [pytest.mark.skipif(MISSING is not None, reason=MISSING or ""),
              pytest.mark.django_db(transaction=True), pytest.mark.same_on_every_database]

STRICT = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
          "base-uri 'self'; frame-ancestors 'none'")


def test_the_swagger_ui_draws_every_operation_from_local_files_under_a_strict_policy(server, owner):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context()
        context.add_cookies([session_cookie(owner, server.url)])

        def with_policy(route):
            answer = route.fetch()
            headers = {k.lower(): v for k, v in answer.headers.items()}
            headers.setdefault("content-security-policy", STRICT)
            route.fulfill(response=answer, headers=headers)

        context.route(f"{server.url}/**", with_policy)
        page = context.new_page()
        problems, elsewhere = [], []
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        page.on("request", lambda request: None if request.url.startswith(server.url) else
                elsewhere.append(request.url))
        page.goto(f"{server.url}/api/docs/")
        page.wait_for_selector(".opblock", timeout=30_000)
        operations = page.locator(".opblock").count()
        screenshot(page, "api-docs")
        browser.close()
    assert operations == 42  # pools 10, nodes 6, node files 4, jobs 10, tasks 12
    assert problems == [] and elsewhere == []

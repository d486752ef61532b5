"""A real daphne server and a real headless Chromium for the dashboard's browser tests.

Chromium is Debian's (`apt-get install chromium`, which `make test` does where it
can), driven by Playwright without `playwright install`. Where neither exists
the browser tests skip and say why.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("BATCHSITE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(os.environ.get("BATCHSITE_SCREENSHOTS", ROOT / "var" / "screenshots"))


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set BATCHSITE_CHROMIUM)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -r requirements-dev.txt)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`daphne batchsite.asgi:application` in its own process, on the test database."""

    def __init__(self, env: dict, log_path: Path):
        self.env, self.log_path = env, log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.start()

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "batchsite.asgi:application"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daphne exited with {self.proc.returncode}; see {self.log_path}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("daphne did not start in 30 s")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def session_cookie(user, url: str) -> dict:
    """Log `user` in the way the login page would and hand the browser the session cookie."""
    client = Client()
    client.force_login(user)
    return {"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
            "url": url}


def logged_in_context(playwright, user, url: str):
    """Debian's Chromium with a context logged in as `user` (for the benchmarks)."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    context = browser.new_context()
    context.add_cookies([session_cookie(user, url)])
    return browser, context


# Runs in every page of a watched context before its own scripts (DevTools injects it,
# so the policy does not apply to it) and reports each violation to the test.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => window.__cspViolation(
    `${location.pathname}: ${e.effectiveDirective} blocked ${e.blockedURI || "inline"} `
    + `(${e.sourceFile || "?"}:${e.lineNumber}) ${e.sample || ""}`), true);
"""


def watch_policy(context) -> list[str]:
    """Violations of the Content-Security-Policy in any page of `context`, as they happen.

    Both the securitypolicyviolation events and the console's own errors about the
    policy (an invalid source, an eval refused) are collected.
    """
    seen: list[str] = []
    context.expose_binding("__cspViolation", lambda source, text: seen.append(text))
    context.add_init_script(REPORT_VIOLATIONS)

    def about_the_policy(text: str) -> bool:
        return "Content Security Policy" in text or "Content-Security-Policy" in text

    def on_console(message):
        if about_the_policy(message.text):
            seen.append(f"console {message.type}: {message.text}")

    def on_error(error):
        if about_the_policy(str(error.error)):
            seen.append(f"page error: {error.error}")

    context.on("console", on_console)
    context.on("weberror", on_error)
    return seen


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path

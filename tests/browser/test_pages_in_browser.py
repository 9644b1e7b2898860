"""The pages behind the emailed links, in a real headless Chromium, without JavaScript.

The service runs as a user would run it (``accounts serve`` over real HTTP, on its
embedded SQLite default) and sends real email to an SMTP sink; the test takes each
link from the email it received and opens it in Debian's Chromium, driven by
Playwright with JavaScript disabled: the pages must work as plain HTML forms, be
accessible, and say clearly what happened (done, expired, already used).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, Response, async_playwright, expect

from tests.conftest import IN_CI, SmtpSink, free_port
from tests.factories import PASSWORD, bearer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STARTUP_SECONDS = 30
SHUTDOWN_SECONDS = 15
NEW_PASSWORD = "a brand new passphrase for the browser"
COMMON_PASSWORD = "password1234"
LONG_AGO = "2000-01-01 00:00:00.000000"


# --- the server, as a user runs it ---------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    workdir: Path
    log: Path
    sink: SmtpSink

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def expire_unused_tokens(self) -> None:
        """Put every unused link's expiry in the past, in the server's SQLite file."""
        connection = sqlite3.connect(self.workdir / "accounts.db", timeout=10)
        try:
            with connection:
                changed = connection.execute(
                    "UPDATE one_time_tokens SET expires_at = ? WHERE used_at IS NULL", (LONG_AGO,)
                ).rowcount
        finally:
            connection.close()
        assert changed >= 1, "no unused token to expire"


def server_env(smtp_port: int, http_port: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ACCOUNTS_")}
    env.update(
        ACCOUNTS_SMTP_HOST="127.0.0.1",
        ACCOUNTS_SMTP_PORT=str(smtp_port),
        ACCOUNTS_SMTP_TLS="none",
        ACCOUNTS_PUBLIC_URL=f"http://127.0.0.1:{http_port}",
    )
    return env


def wait_until_healthy(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    with httpx.Client(base_url=server.base_url, timeout=2) as http:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                pytest.fail(f"server exited with {server.process.returncode}:\n{server.output()}")
            try:
                if http.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    pytest.fail(f"server did not answer /healthz within {STARTUP_SECONDS} s:\n{server.output()}")


@pytest.fixture
def server(tmp_path: Path, smtp: tuple[SmtpSink, int]) -> Iterator[Server]:
    """``accounts serve`` in an empty directory, sending its email to the ``smtp`` sink."""
    sink, smtp_port = smtp
    workdir = tmp_path / "work"
    workdir.mkdir()
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "accounts", "serve", "--port", str(port)],
            cwd=workdir,
            env=server_env(smtp_port, port),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    started = Server(process, f"http://127.0.0.1:{port}", workdir, log, sink)
    try:
        wait_until_healthy(started)
        yield started
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=SHUTDOWN_SECONDS)


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        yield client


# --- the browser ----------------------------------------------------------------------


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium; Playwright drives it and never downloads a browser of its own."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"{reason}; CI installs it, so a skip is a failure there")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A tab in a context with JavaScript disabled."""
    context = await browser.new_context(java_script_enabled=False)
    try:
        tab = await context.new_page()
        # Prove the switch holds: a page's own script does not run here.
        await tab.set_content("<title>no script</title><script>document.title = 'ran'</script>")
        assert await tab.title() == "no script"
        yield tab
    finally:
        await context.close()


# --- helpers ------------------------------------------------------------------------


async def sign_up(http: httpx.AsyncClient, password: str = PASSWORD) -> tuple[str, str]:
    """Register and log in over the API; (email, access token)."""
    email = f"browser-{uuid.uuid4().hex[:10]}@example.com"
    registered = await http.post(
        "/api/v1/users", json={"email": email, "password": password, "name": "Browser User"}
    )
    assert registered.status_code == 201, registered.text
    tokens = await log_in(http, email, password)
    assert tokens.status_code == 200, tokens.text
    return email, str(tokens.json()["access_token"])


async def log_in(http: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await http.post("/api/v1/auth/login", json={"email": email, "password": password})


async def email_verified(http: httpx.AsyncClient, access_token: str) -> bool:
    me = await http.get("/api/v1/users/me", headers=bearer(access_token))
    assert me.status_code == 200, me.text
    return bool(me.json()["email_verified"])


async def request_verification(server: Server, http: httpx.AsyncClient, token: str) -> str:
    """Ask for a verification email and return the link it carries."""
    count = len(server.sink.messages)
    response = await http.post("/api/v1/auth/verify-email/request", headers=bearer(token))
    assert response.status_code == 202, response.text
    messages = await server.sink.wait_for(count + 1)
    return link_in(messages[-1], f"{server.base_url}/verify-email?token=")


async def request_reset(server: Server, http: httpx.AsyncClient, email: str) -> str:
    """Ask for a password-reset email and return the link it carries."""
    count = len(server.sink.messages)
    response = await http.post("/api/v1/auth/password-reset/request", json={"email": email})
    assert response.status_code == 202, response.text
    messages = await server.sink.wait_for(count + 1)
    return link_in(messages[-1], f"{server.base_url}/reset-password?token=")


def link_in(message: EmailMessage, prefix: str) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    text: str = body.get_content()
    links = [word for word in text.split() if word.startswith(prefix)]
    assert len(links) == 1, text
    return links[0]


async def open_link(page: Page, link: str) -> Response:
    response = await page.goto(link)
    assert response is not None
    return response


async def submit(page: Page, button: str) -> Response:
    """Click a submit button and wait for the page the form posts to."""
    async with page.expect_navigation() as navigation:
        await page.get_by_role("button", name=button).click()
    return await navigation.value


async def assert_accessible_basics(page: Page) -> None:
    """<html lang>, a <title>, one <h1>, and a <label for> for every password input."""
    lang = await page.locator("html").get_attribute("lang")
    assert lang, "<html> has no lang"
    assert (await page.title()).strip(), "the page has no <title>"
    await expect(page.locator("h1")).to_have_count(1)
    inputs = page.locator("input[type=password]")
    for index in range(await inputs.count()):
        field_id = await inputs.nth(index).get_attribute("id")
        assert field_id, "a password input has no id for a label to point at"
        await expect(page.locator(f"label[for='{field_id}']")).to_have_count(1)


async def fill_passwords(page: Page, new: str, repeat: str) -> None:
    await page.get_by_label("New password", exact=True).fill(new)
    await page.get_by_label("Repeat the new password", exact=True).fill(repeat)


# --- verifying an address -------------------------------------------------------------


async def test_verification_link_confirms_the_address_then_says_already_used(
    server: Server, http: httpx.AsyncClient, page: Page
) -> None:
    _, access_token = await sign_up(http)
    link = await request_verification(server, http, access_token)

    opened = await open_link(page, link)

    assert opened.status == 200
    await assert_accessible_basics(page)
    await expect(page.locator("h1")).to_have_text("Verify your email address")
    confirm = page.get_by_role("button", name="Confirm my email address")
    await expect(confirm).to_be_visible()
    # Opening the link (as a mail scanner would) changes nothing by itself.
    assert await email_verified(http, access_token) is False

    done = await submit(page, "Confirm my email address")

    assert done.status == 200
    await assert_accessible_basics(page)
    await expect(page.get_by_role("status")).to_contain_text("is verified")
    assert await email_verified(http, access_token) is True

    again = await open_link(page, link)

    assert again.status == 400
    await assert_accessible_basics(page)
    await expect(page.get_by_role("alert")).to_contain_text("already been used")


# --- resetting a password ---------------------------------------------------------------


async def test_reset_link_takes_and_confirms_a_new_password(
    server: Server, http: httpx.AsyncClient, page: Page
) -> None:
    email, _ = await sign_up(http)
    link = await request_reset(server, http, email)

    opened = await open_link(page, link)

    assert opened.status == 200
    await assert_accessible_basics(page)
    await expect(page.locator("h1")).to_have_text("Reset your password")
    await expect(page.locator("input[type=password]")).to_have_count(2)

    await fill_passwords(page, NEW_PASSWORD, NEW_PASSWORD + " but different")
    mismatch = await submit(page, "Set new password")

    assert mismatch.status == 422
    await assert_accessible_basics(page)
    await expect(page.get_by_role("alert")).to_contain_text("do not match")

    await fill_passwords(page, COMMON_PASSWORD, COMMON_PASSWORD)
    common = await submit(page, "Set new password")

    assert common.status == 422
    await assert_accessible_basics(page)
    await expect(page.get_by_role("alert")).to_contain_text("most common passwords")
    # Neither refusal spent the link or changed the password.
    assert (await log_in(http, email, PASSWORD)).status_code == 200

    await fill_passwords(page, NEW_PASSWORD, NEW_PASSWORD)
    changed = await submit(page, "Set new password")

    assert changed.status == 200
    await assert_accessible_basics(page)
    await expect(page.get_by_role("status")).to_contain_text("Your password has been changed")
    assert (await log_in(http, email, NEW_PASSWORD)).status_code == 200
    assert (await log_in(http, email, PASSWORD)).status_code == 401

    again = await open_link(page, link)

    assert again.status == 400
    await expect(page.get_by_role("alert")).to_contain_text("already been used")


# --- links that no longer work ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["verify-email", "reset-password"])
async def test_expired_link_says_it_has_expired(
    server: Server, http: httpx.AsyncClient, page: Page, kind: str
) -> None:
    email, access_token = await sign_up(http)
    if kind == "verify-email":
        link = await request_verification(server, http, access_token)
    else:
        link = await request_reset(server, http, email)
    server.expire_unused_tokens()

    opened = await open_link(page, link)

    assert opened.status == 400
    await assert_accessible_basics(page)
    await expect(page.get_by_role("alert")).to_contain_text("expired")
    await expect(page.locator("form")).to_have_count(0)


async def test_reset_link_expiring_while_the_form_is_open_says_expired_on_submit(
    server: Server, http: httpx.AsyncClient, page: Page
) -> None:
    email, _ = await sign_up(http)
    link = await request_reset(server, http, email)
    await open_link(page, link)
    server.expire_unused_tokens()

    await fill_passwords(page, NEW_PASSWORD, NEW_PASSWORD)
    response = await submit(page, "Set new password")

    assert response.status == 400
    await expect(page.get_by_role("alert")).to_contain_text("expired")
    assert (await log_in(http, email, NEW_PASSWORD)).status_code == 401
    assert (await log_in(http, email, PASSWORD)).status_code == 200


@pytest.mark.parametrize("kind", ["verify-email", "reset-password"])
async def test_link_with_an_unknown_token_says_it_is_not_valid(
    server: Server, page: Page, kind: str
) -> None:
    response = await open_link(page, f"{server.base_url}/{kind}?token=not-a-real-token")

    assert response.status == 400
    await assert_accessible_basics(page)
    await expect(page.get_by_role("alert")).to_contain_text("not valid")

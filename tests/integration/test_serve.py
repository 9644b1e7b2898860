"""``accounts serve`` as a newcomer runs it: the real server, over real HTTP, on the
embedded default (a SQLite file in the working directory, no settings at all)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.factories import PASSWORD
from tests.servers import free_port, scrubbed_env

CONSOLE_SCRIPT = Path(sys.executable).parent / "accounts"
COMMAND = [str(CONSOLE_SCRIPT)] if CONSOLE_SCRIPT.exists() else [sys.executable, "-m", "accounts"]
STARTUP_SECONDS = 30
SHUTDOWN_SECONDS = 15


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    workdir: Path
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def wait_until_healthy(server: Server) -> None:
    """Poll /healthz until it answers 200, the process dies, or STARTUP_SECONDS pass."""
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


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=SHUTDOWN_SECONDS)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """``accounts serve --port N`` in an empty working directory, answering /healthz."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(  # noqa: S603
            [*COMMAND, "serve", "--port", str(port)],
            cwd=workdir,
            env=scrubbed_env(),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    started = Server(process, f"http://127.0.0.1:{port}", workdir, log)
    try:
        wait_until_healthy(started)
        yield started
    finally:
        stop(process)


def test_newcomer_session_over_real_http(server: Server) -> None:
    email = f"newcomer-{uuid.uuid4().hex[:8]}@example.com"
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        registered = http.post(
            "/api/v1/users", json={"email": email, "password": PASSWORD, "name": "Newcomer"}
        )
        assert registered.status_code == 201, registered.text
        user_id = registered.json()["id"]
        assert registered.headers["location"] == f"/api/v1/users/{user_id}"

        logged_in = http.post("/api/v1/auth/token", data={"username": email, "password": PASSWORD})
        assert logged_in.status_code == 200, logged_in.text
        pair = logged_in.json()
        assert pair["token_type"] == "bearer"

        me = http.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {pair['access_token']}"}
        )
        assert me.status_code == 200, me.text
        assert me.json()["id"] == user_id
        assert me.json()["email"] == email

        refreshed = http.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert refreshed.status_code == 200, refreshed.text
        new_pair = refreshed.json()
        assert new_pair["refresh_token"] != pair["refresh_token"]

        logged_out = http.post(
            "/api/v1/auth/logout", json={"refresh_token": new_pair["refresh_token"]}
        )
        assert logged_out.status_code == 204, logged_out.text

        after = http.get(
            "/api/v1/users/me", headers={"Authorization": f"Bearer {new_pair['access_token']}"}
        )
        assert after.status_code == 401


def test_embedded_default_creates_accounts_db_in_the_working_directory(server: Server) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        ready = http.get("/readyz")

    assert ready.status_code == 200
    assert (server.workdir / "accounts.db").is_file()


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux's /proc")
def test_the_serving_process_is_the_lean_server_with_huge_pages_for_malloc(
    server: Server,
) -> None:
    # The pid we started now runs accounts.http.server (exec keeps the pid), which
    # imports none of the command line, with the allocator tuned for argon2's buffers.
    proc = Path(f"/proc/{server.process.pid}")
    command = proc.joinpath("cmdline").read_bytes().split(b"\0")
    environ = proc.joinpath("environ").read_bytes().split(b"\0")

    assert command[1:4] == [b"-P", b"-m", b"accounts.http.server"]
    tunables = [v.split(b"=", 1)[1] for v in environ if v.startswith(b"GLIBC_TUNABLES=")]
    assert len(tunables) == 1
    assert b"glibc.malloc.hugetlb=1" in tunables[0].split(b":")


def test_sigterm_stops_the_server_promptly(server: Server) -> None:
    server.process.send_signal(signal.SIGTERM)

    try:
        returncode = server.process.wait(timeout=SHUTDOWN_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"server still running {SHUTDOWN_SECONDS} s after SIGTERM")
    # Uvicorn shuts down gracefully, then re-raises the signal it caught, so a clean
    # stop on SIGTERM ends "killed by SIGTERM" (what init systems count as clean).
    assert returncode in {0, -signal.SIGTERM}, server.output()
    assert "Traceback" not in server.output()

"""The benchmark runner: ``python -m bench.run --profile short|full`` (``make bench``).

For each database (SQLite, PostgreSQL) and worker count (1, 2) it seeds users, starts
the real service (``accounts serve``) and the floor app (bench/floor_app.py) on free
loopback ports, logs in through the API for tokens, and drives both with wrk from a
separate process, interleaving the scenarios run by run so that every ratio compares
figures taken moments apart. It writes bench/results/latest.json, latest.md and
latest.png. Every subprocess runs under a timeout and is stopped in ``finally``.
See bench/README.md for what each scenario measures and why.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: python bench/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from accounts.http.server import serving_environment
from bench import seed as seeding

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "bench" / "scripts"
RESULTS = REPO / "bench" / "results"
HOST = "127.0.0.1"  # loopback only, always
WRK = shutil.which("wrk") or "/usr/bin/wrk"
PG_PORT = os.environ.get("BENCH_PG_PORT", "54339")
# Settings the runner passes through to the service from its own environment; every
# other ACCOUNTS_* variable is dropped so that runs are comparable.
PASSTHROUGH = (
    "ACCOUNTS_PASSWORD_HASH_MEMORY_KIB",
    "ACCOUNTS_PASSWORD_HASH_TIME_COST",
    "ACCOUNTS_PASSWORD_HASH_PARALLELISM",
    "ACCOUNTS_PASSWORD_HASH_WORKERS",
)
READ_CONNECTIONS = 16
HASH_CONNECTIONS = 8
STORM_CONNECTIONS = 50
REFRESH_SPARE = 8
ME_TOKENS = 16
DEEP = 0.9  # a deep page starts 90% of the way down the list
WARM_UP = ("floor_me", "me", "graphql_me", "list_first")  # 1 s each before the first run


@dataclass(frozen=True)
class Profile:
    name: str
    users: int
    runs: int
    duration: int  # seconds per wrk run
    backends: tuple[str, ...] = ("sqlite", "postgres")
    workers: tuple[int, ...] = (1, 2)
    scaling: tuple[int, ...] = ()


PROFILES = {
    # ~10 minutes: 4 server set-ups x 11 scenarios x 3 runs x 3 s, plus start-ups.
    "short": Profile("short", users=5_000, runs=3, duration=3),
    # The same matrix at a million users, plus list latency at 10k, 100k and 1M.
    "full": Profile(
        "full", users=1_000_000, runs=3, duration=5, scaling=(10_000, 100_000, 1_000_000)
    ),
}


@dataclass(frozen=True)
class Scenario:
    name: str
    script: str
    connections: int
    target: str = "service"  # or "floor"
    read: bool = False  # reported with its ratio to the floor
    description: str = ""


SCENARIOS = [
    Scenario("floor_me", "me.lua", READ_CONNECTIONS, "floor", True, "floor app GET /me"),
    Scenario("me", "me.lua", READ_CONNECTIONS, read=True, description="GET /api/v1/users/me"),
    Scenario("graphql_me", "graphql_me.lua", READ_CONNECTIONS, read=True, description="{ me }"),
    Scenario("user_by_id", "user_by_id.lua", READ_CONNECTIONS, read=True, description="GET /{id}"),
    Scenario("list_first", "list.lua", READ_CONNECTIONS, read=True, description="first page"),
    Scenario("list_cursor", "list.lua", READ_CONNECTIONS, read=True, description="deep, cursor"),
    Scenario("list_skip", "list.lua", READ_CONNECTIONS, read=True, description="deep, skip"),
    Scenario("login", "login.lua", HASH_CONNECTIONS, description="POST /auth/login"),
    Scenario("register", "register.lua", HASH_CONNECTIONS, description="POST /users"),
    Scenario("refresh", "refresh.lua", READ_CONNECTIONS, description="POST /auth/refresh"),
]
LIST_SCENARIOS = ("list_first", "list_cursor", "list_skip")


def log(message: str) -> None:
    stamp = dt.datetime.now().strftime("%H:%M:%S")
    print(f"[{stamp}] {message}", flush=True)


# -- processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def http(
    method: str,
    url: str,
    body: dict[str, Any] | None = None,
    token: str | None = None,
    timeout: float = 30,
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http://127.0.0.1 only
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")


def tree(process: psutil.Process) -> list[psutil.Process]:
    try:
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return []


class Server:
    """A server subprocess in its own process group, stopped (and waited for) in stop()."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], cwd: Path, workers: int):
        self.name = name
        self.workers = workers
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = cwd / f"{name}-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - our own fixed command line
            [*command, "--host", HOST, "--port", str(self.port), "--workers", str(workers)],
            env=env,
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.ps = psutil.Process(self.process.pid)

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_tail()}")
            try:
                status, _ = http("GET", f"{self.url}/healthz", timeout=2)
                if status == 200 and len(self.worker_processes()) >= self.workers:
                    time.sleep(1.0 if self.workers > 1 else 0.2)  # let every worker listen
                    return
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} not ready after {timeout}s: {self.log_tail()}")

    def worker_processes(self) -> list[psutil.Process]:
        """The processes that serve requests: uvicorn's workers, or the server itself."""
        if self.workers == 1:
            return [self.ps]
        workers = []
        for child in tree(self.ps)[1:]:
            try:
                cmdline = " ".join(child.cmdline())
            except psutil.Error:
                continue
            if "resource_tracker" not in cmdline and "multiprocessing" in cmdline:
                workers.append(child)
        return workers

    def rss(self) -> tuple[float, float]:
        """(largest worker RSS, RSS of the whole process tree), in MiB."""
        per_worker = 0.0
        for process in self.worker_processes():
            with contextlib.suppress(psutil.Error):
                per_worker = max(per_worker, process.memory_info().rss / 2**20)
        total = 0.0
        for process in tree(self.ps):
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss / 2**20
        return per_worker, total

    def cpu_seconds(self) -> float:
        spent = 0.0
        for process in tree(self.ps):
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                spent += times.user + times.system
        return spent

    def wait_quiet(self, limit: float = 20.0) -> None:
        """Wait until the server has finished what wrk left in flight (CPU near idle)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            before = self.cpu_seconds()
            time.sleep(0.3)
            if (self.cpu_seconds() - before) / 0.3 < 0.10:
                return

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()


class RssWatch:
    """Samples a server's RSS in a thread while a load runs; keeps the peaks."""

    def __init__(self, server: Server, interval: float = 0.2) -> None:
        self.server = server
        self.interval = interval
        self.peak_worker = 0.0
        self.peak_total = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            worker, total = self.server.rss()
            self.peak_worker = max(self.peak_worker, worker)
            self.peak_total = max(self.peak_total, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# -- wrk --------------------------------------------------------------------------------


@dataclass
class WrkRun:
    ok: bool
    rps: float = 0.0  # good responses per second
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    requests: int = 0
    errors: int = 0  # socket errors and timeouts plus responses the scenario refused
    socket_errors: dict[str, int] = field(default_factory=dict)
    status: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    dry: int = 0
    sample: str = ""
    rss_worker_mb: float = 0.0
    rss_total_mb: float = 0.0
    failure: str = ""

    def public(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        if not data["failure"]:
            data.pop("failure")
        if not data["sample"]:
            data.pop("sample")
        return data


def wrk_command(
    script: str, url: str, connections: int, duration: float, args: list[str]
) -> list[str]:
    return [
        "timeout",
        "-k",
        "5",
        str(int(duration) + 30),
        WRK,
        "-t1",
        f"-c{connections}",
        f"-d{int(duration)}s",
        "--latency",
        "--timeout",
        "20s",
        "-s",
        str(SCRIPTS / script),
        url,
        "--",
        *args,
    ]


def parse_wrk(stdout: str, stderr: str) -> WrkRun:
    for line in stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            data = json.loads(line[len("BENCH_JSON ") :])
            break
    else:
        return WrkRun(ok=False, failure=(stderr or stdout)[-500:])
    seconds = max(data["duration_us"], 1) / 1e6
    sockets = {k: v for k, v in data["errors"].items() if k != "status"}
    good = data["requests"] - data["rejected"]
    latency = data["latency_us"]
    return WrkRun(
        ok=True,
        rps=round(good / seconds, 1),
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        requests=data["requests"],
        errors=sum(sockets.values()) + data["rejected"],
        socket_errors=sockets,
        status=data["status"],
        rejected=data["rejected"],
        dry=data.get("dry", 0),
        sample=data.get("sample", ""),
    )


def start_wrk(
    script: str, url: str, connections: int, duration: float, args: list[str]
) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - fixed command line, loopback URL
        wrk_command(script, url, connections, duration, args),
        cwd=SCRIPTS,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish_wrk(process: subprocess.Popen[str], duration: float) -> WrkRun:
    try:
        stdout, stderr = process.communicate(timeout=duration + 45)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=10)
        return WrkRun(ok=False, failure="wrk did not finish in time")
    return parse_wrk(stdout, stderr)


def run_wrk(
    server: Server, script: str, connections: int, duration: float, args: list[str]
) -> WrkRun:
    with RssWatch(server) as watch:
        result = finish_wrk(start_wrk(script, server.url, connections, duration, args), duration)
    result.rss_worker_mb = round(watch.peak_worker, 1)
    result.rss_total_mb = round(watch.peak_total, 1)
    server.wait_quiet()
    return result


# -- the hashing limit --------------------------------------------------------------------


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class HashTimer:
    """Times one argon2id verify with the service's hasher and configured parameters."""

    def __init__(self, env: dict[str, str]) -> None:
        overrides = {
            key.removeprefix("ACCOUNTS_").lower(): env[key] for key in PASSTHROUGH[:3] if key in env
        }
        settings = seeding.load_settings(_env_file=None, **overrides)
        self.parameters = seeding.HashParameters(
            memory_kib=settings.password_hash_memory_kib,
            time_cost=settings.password_hash_time_cost,
            parallelism=settings.password_hash_parallelism,
        )
        self._hasher = seeding.PasswordHasher(self.parameters, workers=1)
        self._all_cores = seeding.PasswordHasher(self.parameters, workers=cores())
        self.hash = asyncio.run(self._hasher.hash(seeding.PASSWORD))

    def verify_times(self, samples: int = 4) -> list[float]:
        """Seconds of ``samples`` verifies, one after another."""

        async def measure() -> list[float]:
            times = []
            for _ in range(samples):
                started = time.perf_counter()
                assert await self._hasher.verify(self.hash, seeding.PASSWORD)
                times.append(time.perf_counter() - started)
            return times

        return asyncio.run(measure())

    def parallel_rate(self, seconds: float = 2.0) -> float:
        """Verifies per second with every core verifying at once and nothing else
        running: what this machine can hash, for context. The limit (cores ÷ one
        verify) assumes the cores scale perfectly; verifies running side by side
        share the caches and the memory bus, so this is lower."""

        async def measure() -> float:
            done = 0
            started = time.perf_counter()

            async def verifier() -> None:
                nonlocal done
                while time.perf_counter() - started < seconds:
                    assert await self._all_cores.verify(self.hash, seeding.PASSWORD)
                    done += 1

            await asyncio.gather(*(verifier() for _ in range(cores())))
            return done / (time.perf_counter() - started)

        return asyncio.run(measure())

    def close(self) -> None:
        self._hasher.close()
        self._all_cores.close()


# -- one database, one worker count ----------------------------------------------------------


@dataclass
class Database:
    backend: str
    users: int
    url: str
    seed: seeding.SeedInfo


def server_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCOUNTS_")}
    env.update({k: os.environ[k] for k in PASSTHROUGH if k in os.environ})
    env["ACCOUNTS_DATABASE_URL"] = database_url
    env["ACCOUNTS_RATE_LIMITS"] = "off"
    env["BENCH_FLOOR_DATABASE_URL"] = database_url
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


def start_service(db: Database, workers: int, workdir: Path) -> Server:
    command = [sys.executable, "-m", "accounts", "serve"]
    return Server("service", command, server_env(db.url), workdir, workers)


def start_floor(db: Database, workers: int, workdir: Path) -> Server:
    command = [sys.executable, "-m", "bench.floor_app"]
    return Server("floor", command, server_env(db.url), workdir, workers)


def login(base: str, email: str, password: str = seeding.PASSWORD) -> dict[str, Any]:
    status, body = http("POST", f"{base}/api/v1/auth/login", {"email": email, "password": password})
    if status != 200:
        raise RuntimeError(f"login as {email} answered {status}: {body}")
    return dict(body)


def logins(base: str, emails: list[str]) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda email: login(base, email), emails))


def write_lines(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@dataclass
class Fixtures:
    """What the scripts need: tokens, ids, paths. Obtained through the API."""

    admin_token: str
    me_tokens: str
    ids: str
    emails: str
    first_path: str
    cursor_path: str
    skip_path: str
    refresh_pools: list[str]
    depth: int


def prepare(
    service: Server, db: Database, workdir: Path, runs: int, *, refresh: bool = True
) -> Fixtures:
    base = service.url
    tag = f"{db.backend}-{db.users}-{service.port}"
    admin = login(base, db.seed.admin_email)["access_token"]
    depth = max(1, int(db.users * DEEP))
    status, page = http(
        "GET", f"{base}/api/v1/users?limit=1&skip={depth - 1}", token=admin, timeout=120
    )
    if status != 200 or not page.get("next_cursor"):
        raise RuntimeError(f"could not get a deep cursor: {status} {page}")
    me_emails = db.seed.sample_emails[:ME_TOKENS]
    me_tokens = [pair["access_token"] for pair in logins(base, me_emails)]
    pools: list[str] = []
    if refresh:
        size = READ_CONNECTIONS + REFRESH_SPARE
        emails = [
            db.seed.sample_emails[(i * 37) % len(db.seed.sample_emails)] for i in range(size * runs)
        ]
        tokens = [pair["refresh_token"] for pair in logins(base, emails)]
        pools = [
            write_lines(workdir / f"refresh-{tag}-{run}.txt", tokens[run * size : (run + 1) * size])
            for run in range(runs)
        ]
    return Fixtures(
        admin_token=admin,
        me_tokens=write_lines(workdir / f"me-{tag}.txt", me_tokens),
        ids=write_lines(workdir / f"ids-{tag}.txt", db.seed.sample_ids),
        emails=write_lines(workdir / f"emails-{tag}.txt", db.seed.sample_emails),
        first_path="/api/v1/users?limit=20",
        cursor_path=f"/api/v1/users?limit=20&cursor={page['next_cursor']}",
        skip_path=f"/api/v1/users?limit=20&skip={depth}",
        refresh_pools=pools,
        depth=depth,
    )


def scenario_args(scenario: Scenario, fx: Fixtures, run: int, prefix: str) -> list[str]:
    match scenario.name:
        case "floor_me":
            return [f"tokens={fx.me_tokens}", "path=/me"]
        case "me" | "graphql_me":
            return [f"tokens={fx.me_tokens}"]
        case "user_by_id":
            return [f"token={fx.admin_token}", f"ids={fx.ids}"]
        case "list_first":
            return [f"token={fx.admin_token}", f"path={fx.first_path}"]
        case "list_cursor":
            return [f"token={fx.admin_token}", f"path={fx.cursor_path}"]
        case "list_skip":
            return [f"token={fx.admin_token}", f"path={fx.skip_path}"]
        case "login":
            return [f"emails={fx.emails}", f"password={seeding.PASSWORD}"]
        case "register":
            return [f"prefix={prefix}{run}", f"password={seeding.PASSWORD}"]
        case "refresh":
            return [f"tokens={fx.refresh_pools[run]}"]
    raise ValueError(scenario.name)


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3) if values else 0.0


def summarise(runs: list[WrkRun]) -> dict[str, Any]:
    good = [run for run in runs if run.ok]
    return {
        "rps": median([r.rps for r in good]),
        "p50_ms": median([r.p50_ms for r in good]),
        "p90_ms": median([r.p90_ms for r in good]),
        "p99_ms": median([r.p99_ms for r in good]),
        "errors": sum(r.errors for r in good),
        "requests": sum(r.requests for r in good),
        "5xx": sum(r.status.get("5xx", 0) for r in good),
        "rss_worker_peak_mb": max((r.rss_worker_mb for r in good), default=0.0),
        "failed_runs": len(runs) - len(good),
    }


def login_storm(service: Server, fx: Fixtures, duration: float) -> dict[str, Any]:
    """/healthz latency while STORM_CONNECTIONS logins are in flight at once."""
    login_args = [f"emails={fx.emails}", f"password={seeding.PASSWORD}"]
    with RssWatch(service) as watch:
        storm = start_wrk("login.lua", service.url, STORM_CONNECTIONS, duration, login_args)
        time.sleep(0.5)  # let the storm fill the hashing pool first
        probe = start_wrk("healthz.lua", service.url, 1, max(1, duration - 1), [])
        health = finish_wrk(probe, duration)
        logins_run = finish_wrk(storm, duration)
    service.wait_quiet()
    return {
        "healthz": health.public(),
        "login": logins_run.public(),
        "rss_worker_mb": round(watch.peak_worker, 1),
    }


def scan_log(path: Path) -> dict[str, Any]:
    """What the service logged: requests by status class, 5xx by route, errors by kind.

    wrk closes its connections when a run ends, with requests still in flight: those
    show here (and in the service's metrics) but never reach wrk's counts.
    """
    counts: dict[str, int] = {}
    server_errors: dict[str, int] = {}
    kinds: dict[str, int] = {}
    examples: list[str] = []
    other: list[str] = []
    with contextlib.suppress(OSError), path.open(errors="replace") as handle:
        for line in handle:
            if not line.startswith("{"):
                if line.strip() and len(other) < 5:
                    other.append(line.strip()[:500])
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            status = entry.get("status")
            if isinstance(status, int):
                key = f"{status // 100}xx"
                counts[key] = counts.get(key, 0) + 1
                if status >= 500:
                    route = f"{entry.get('method')} {entry.get('route')} {status}"
                    server_errors[route] = server_errors.get(route, 0) + 1
            if entry.get("level") in ("error", "critical"):
                trace = str(entry.get("exception") or "").strip().splitlines()
                kind = f"{entry.get('event')}: {trace[-1] if trace else ''}"[:200]
                kinds[kind] = kinds.get(kind, 0) + 1
                if len(examples) < 2:
                    examples.append(line.strip()[:4000])
    return {
        "requests_by_status": counts,
        "5xx_by_route": server_errors,
        "errors_by_kind": kinds,
        "first_errors": examples,
        "other_output": other,
    }


def run_matrix(
    db: Database,
    workers: int,
    profile: Profile,
    workdir: Path,
    timer: HashTimer,
    scenarios: list[Scenario],
) -> dict[str, Any]:
    log(f"== {db.backend}, {workers} worker(s), {db.users:,} users")
    source = source_version()  # the service is started from the tree as it is now
    service = start_service(db, workers, workdir)
    floor = start_floor(db, workers, workdir)
    servers = {"service": service, "floor": floor}
    results: dict[str, list[WrkRun]] = {s.name: [] for s in scenarios}
    storms: list[dict[str, Any]] = []
    verify_ms: list[float] = []
    login_ratios: list[float] = []
    parallel_rates: list[float] = []
    login_over_parallel: list[float] = []
    prefix = secrets.token_hex(4)
    try:
        service.wait_ready()
        floor.wait_ready()
        fx = prepare(
            service, db, workdir, profile.runs, refresh=any(s.name == "refresh" for s in scenarios)
        )
        # Warm-up: connection pools, caches and code paths, not measured.
        for scenario in scenarios:
            if scenario.name in WARM_UP:
                run_wrk(
                    servers[scenario.target],
                    scenario.script,
                    scenario.connections,
                    1,
                    scenario_args(scenario, fx, 0, prefix),
                )
        for run in range(profile.runs):
            for scenario in scenarios:
                # The hashing limit is timed just before and just after each login run
                # (the servers idle), so that a burst of noise on either side counts half.
                before = timer.verify_times() if scenario.name == "login" else []
                args = scenario_args(scenario, fx, run, prefix)
                result = run_wrk(
                    servers[scenario.target],
                    scenario.script,
                    scenario.connections,
                    profile.duration,
                    args,
                )
                if scenario.name == "login":
                    # The fastest of the eight: noise on a shared machine only ever slows
                    # a verify, so the fastest is nearest its true cost and gives the
                    # highest, strictest limit (a median let one noisy burst lower the
                    # limit until a run's ratio read 1.7).
                    verify_ms.append(min(before + timer.verify_times()) * 1000)
                    parallel_rates.append(timer.parallel_rate())
                results[scenario.name].append(result)
                if scenario.name == "login" and result.ok:
                    login_ratios.append(result.rps / (cores() / (verify_ms[-1] / 1000)))
                    login_over_parallel.append(result.rps / parallel_rates[-1])
                log(
                    f"   run {run + 1} {scenario.name:12} {result.rps:9.1f} req/s  "
                    f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:8.2f} ms  "
                    f"errors {result.errors}  rss {result.rss_worker_mb:.0f} MiB"
                    + (f"  FAILED {result.failure}" if not result.ok else "")
                    + (f"  e.g. {result.sample[:120]!r}" if result.sample else "")
                )
            storm = login_storm(service, fx, profile.duration)
            storms.append(storm)
            log(
                f"   run {run + 1} login storm: healthz p99 {storm['healthz']['p99_ms']:.1f} ms, "
                f"logins {storm['login']['rps']:.1f}/s, errors {storm['login']['errors']}"
            )
    finally:
        floor.stop()
        service.stop()
    scenarios_out: dict[str, Any] = {}
    floor_runs = results.get("floor_me", [])
    for scenario in scenarios:
        runs = results[scenario.name]
        entry: dict[str, Any] = {
            "description": scenario.description,
            "connections": scenario.connections,
            "median": summarise(runs),
            "runs": [r.public() for r in runs],
        }
        if scenario.read and scenario.name != "floor_me" and floor_runs:
            ratios = [
                r.rps / f.rps
                for r, f in zip(runs, floor_runs, strict=False)
                if r.ok and f.ok and f.rps
            ]
            entry["ratio_to_floor"] = median(ratios)
            entry["ratio_to_floor_runs"] = [round(x, 3) for x in ratios]
        scenarios_out[scenario.name] = entry
    limit_runs = [cores() / (ms / 1000) for ms in verify_ms]
    return {
        "backend": db.backend,
        "workers": workers,
        "users": db.users,
        "source": source,
        "scenarios": scenarios_out,
        "hashing": {
            "verify_ms_runs": [round(x, 2) for x in verify_ms],
            "limit_rps_runs": [round(x, 1) for x in limit_runs],
            "limit_rps": median(limit_runs),
            "login_ratio_runs": [round(x, 3) for x in login_ratios],
            "login_ratio": median(login_ratios),
            "parallel_rps_runs": [round(x, 1) for x in parallel_rates],
            "parallel_rps": median(parallel_rates),
            "login_over_parallel_runs": [round(x, 3) for x in login_over_parallel],
            "login_over_parallel": median(login_over_parallel),
        },
        "login_storm": {
            "connections": STORM_CONNECTIONS,
            "healthz_p50_ms": median(
                [s["healthz"]["p50_ms"] for s in storms if s["healthz"]["ok"]]
            ),
            "healthz_p99_ms": median(
                [s["healthz"]["p99_ms"] for s in storms if s["healthz"]["ok"]]
            ),
            "healthz_max_ms": max((s["healthz"]["max_ms"] for s in storms), default=0.0),
            "login_rps": median([s["login"]["rps"] for s in storms if s["login"]["ok"]]),
            "login_errors": sum(s["login"]["errors"] for s in storms),
            "runs": storms,
        },
        "rss_worker_peak_mb": max(
            [e["median"]["rss_worker_peak_mb"] for n, e in scenarios_out.items() if n != "floor_me"]
            + [s["rss_worker_mb"] for s in storms],
            default=0.0,
        ),
        "server_log": scan_log(service.log_path),
    }


def run_scaling(db: Database, profile: Profile, workdir: Path) -> dict[str, Any]:
    """List-page latency on one worker with one connection: first page, cursor, skip."""
    log(f"== scaling: {db.backend}, {db.users:,} users")
    source = source_version()
    service = start_service(db, 1, workdir)
    results: dict[str, list[WrkRun]] = {name: [] for name in LIST_SCENARIOS}
    depth = 0
    try:
        service.wait_ready()
        fx = prepare(service, db, workdir, profile.runs, refresh=False)
        depth = fx.depth
        paths = {
            "list_first": fx.first_path,
            "list_cursor": fx.cursor_path,
            "list_skip": fx.skip_path,
        }
        for name in LIST_SCENARIOS:  # warm-up
            run_wrk(service, "list.lua", 1, 1, [f"token={fx.admin_token}", f"path={paths[name]}"])
        for run in range(profile.runs):
            for name in LIST_SCENARIOS:
                result = run_wrk(
                    service,
                    "list.lua",
                    1,
                    profile.duration,
                    [f"token={fx.admin_token}", f"path={paths[name]}"],
                )
                results[name].append(result)
                log(
                    f"   run {run + 1} {name:12} p50 {result.p50_ms:8.2f} ms  "
                    f"p99 {result.p99_ms:8.2f} ms  errors {result.errors}"
                )
    finally:
        service.stop()
    ratios = [
        c.p50_ms / f.p50_ms
        for c, f in zip(results["list_cursor"], results["list_first"], strict=False)
        if c.ok and f.ok and f.p50_ms
    ]
    return {
        "backend": db.backend,
        "users": db.users,
        "source": source,
        "depth": depth,
        "scenarios": {
            name: {"median": summarise(runs), "runs": [r.public() for r in runs]}
            for name, runs in results.items()
        },
        "cursor_over_first_p50": median(ratios),
        "cursor_over_first_p50_runs": [round(x, 3) for x in ratios],
    }


# -- PostgreSQL ------------------------------------------------------------------------------


@contextlib.contextmanager
def postgres(needed: bool) -> Iterator[str | None]:
    """A PostgreSQL server URL prefix; starts scripts/postgres.sh on BENCH_PG_PORT if needed."""
    if not needed:
        yield None
        return
    given = os.environ.get("BENCH_POSTGRES_URL")
    if given:
        yield given.rsplit("/", 1)[0]
        return
    env = {**os.environ, "ACCOUNTS_PG_PORT": PG_PORT}
    with socket.socket() as probe:
        already = probe.connect_ex((HOST, int(PG_PORT))) == 0
    script = str(REPO / "scripts" / "postgres.sh")
    if not already:
        log(f"starting a throwaway PostgreSQL on {HOST}:{PG_PORT}")
        subprocess.run([script, "start"], env=env, check=True, timeout=120, capture_output=True)  # noqa: S603
    try:
        url = subprocess.run(  # noqa: S603
            [script, "url"], env=env, check=True, timeout=10, capture_output=True, text=True
        ).stdout.strip()
        yield url.rsplit("/", 1)[0]
    finally:
        if not already:
            log("stopping the throwaway PostgreSQL")
            subprocess.run([script, "stop"], env=env, check=False, timeout=120, capture_output=True)  # noqa: S603


def make_database(
    backend: str, users: int, workdir: Path, pg_base: str | None, password_hash: str
) -> Database:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / f'bench_{users}.db'}"
    else:
        assert pg_base is not None
        url = f"{pg_base}/bench_{users}"
    log(f"seeding {backend} with {users:,} users")
    info = asyncio.run(seeding.seed(url, users, password_hash=password_hash))
    log(f"   seeded in {info.seconds:.1f} s (inserts {info.insert_seconds:.1f} s)")
    return Database(backend, users, url, info)


# -- report ------------------------------------------------------------------------------


TIMES = "\u00d7"  # the multiplication sign, for "0.8x" in the report


def target(name: str, value: float, threshold: float, ok: bool, where: str) -> dict[str, Any]:
    return {"target": name, "value": value, "threshold": threshold, "ok": ok, "where": where}


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, judged on PostgreSQL with 1 worker (else the first set-up)."""
    configs = report["configs"]
    main = next((c for c in configs if (c["backend"], c["workers"]) == ("postgres", 1)), None)
    main = main or (configs[0] if configs else None)
    if main is None:
        return []
    out = []
    where = f"{main['backend']}, {main['workers']} worker, {main['users']:,} users"
    me = main["scenarios"].get("me", {})
    if "ratio_to_floor" in me:
        value = me["ratio_to_floor"]
        name = f"GET /users/me \u2265 0.8{TIMES} the floor's throughput"
        out.append(target(name, value, 0.8, value >= 0.8, where))
    if main["hashing"]["login_ratio"]:
        value = main["hashing"]["login_ratio"]
        name = f"login \u2265 0.85{TIMES} the hashing limit"
        out.append(target(name, value, 0.85, value >= 0.85, where))
    p99 = main["login_storm"]["healthz_p99_ms"]
    if p99:
        name = "/healthz p99 < 50 ms during the login storm (ms)"
        out.append(target(name, p99, 50, p99 < 50, where))
    name = f"a deep cursor page \u2264 1.3{TIMES} the first page's latency (p50)"
    scaling = [s for s in report.get("scaling", []) if s["backend"] == main["backend"]]
    if scaling:
        top = max(scaling, key=lambda s: s["users"])
        value = top["cursor_over_first_p50"]
        at = f"{top['backend']}, {top['users']:,} users, 1 worker, 1 connection"
        out.append(target(name, value, 1.3, value <= 1.3, at))
    else:
        first = main["scenarios"].get("list_first", {}).get("runs", [])
        cursor = main["scenarios"].get("list_cursor", {}).get("runs", [])
        ratios = [
            c["p50_ms"] / f["p50_ms"]
            for c, f in zip(cursor, first, strict=False)
            if c["ok"] and f["ok"] and f["p50_ms"]
        ]
        if ratios:
            value = median(ratios)
            at = f"{where}, {READ_CONNECTIONS} connections (the target is at 1M: full profile)"
            out.append(target(name, value, 1.3, value <= 1.3, at))
    rss = max((c["rss_worker_peak_mb"] for c in configs), default=0.0)
    users = max((c["users"] for c in configs), default=0)
    name = "server RSS < 150 MB per worker (peak of any set-up, MiB)"
    out.append(target(name, rss, 150, rss < 150, f"{users:,} users"))
    return out


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}" if value else "\u2013"


def config_section(config: dict[str, Any]) -> list[str]:
    h = config["hashing"]
    storm = config["login_storm"]
    logged = config["server_log"]
    lines = [
        "",
        f"## {config['backend']}, {config['workers']} worker(s), {config['users']:,} users",
        "",
        f"Source: {config.get('source', 'unknown')}.",
        "",
        "| scenario | conns | req/s | p50 ms | p90 ms | p99 ms | errors | 5xx "
        f"| peak RSS/worker MiB | {TIMES} floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, entry in config["scenarios"].items():
        m = entry["median"]
        ratio = f"{entry['ratio_to_floor']:.2f}" if "ratio_to_floor" in entry else ""
        cells = [
            name,
            str(entry["connections"]),
            fmt(m["rps"]),
            fmt(m["p50_ms"], 2),
            fmt(m["p90_ms"], 2),
            fmt(m["p99_ms"], 2),
            str(m["errors"]),
            str(m["5xx"]),
            fmt(m["rss_worker_peak_mb"], 0),
            "1.00 (floor)" if name == "floor_me" else ratio,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    verify = statistics.median(h["verify_ms_runs"]) if h["verify_ms_runs"] else 0.0
    runs = ", ".join(f"{x:.2f}" for x in h["login_ratio_runs"])
    context = []
    if h.get("parallel_rps") and h["limit_rps"]:
        context.append(
            f"- For context: with all {cores()} cores verifying at once and nothing else "
            f"running, this machine did {fmt(h['parallel_rps'])} verifies/s "
            f"({h['parallel_rps'] / h['limit_rps']:.2f}{TIMES} the limit, which assumes the "
            f"cores scale perfectly); login reached {h['login_over_parallel']:.2f}{TIMES} of that."
        )
    lines += [
        "",
        f"- Hashing limit: {cores()} cores \u00f7 {fmt(verify, 1)} ms per argon2id verify = "
        f"**{fmt(h['limit_rps'])} logins/s**; login reached **{h['login_ratio']:.2f}{TIMES}** "
        f"of it (runs: {runs}).",
        *context,
        f"- Login storm ({storm['connections']} logins at once): /healthz p50 "
        f"{fmt(storm['healthz_p50_ms'], 2)} ms, **p99 {fmt(storm['healthz_p99_ms'], 2)} ms** "
        f"(max {fmt(storm['healthz_max_ms'], 1)} ms); logins {fmt(storm['login_rps'])}/s, "
        f"{storm['login_errors']} errors.",
        f"- Service log: requests by status {logged['requests_by_status']}; 5xx by route "
        f"{logged['5xx_by_route'] or 'none'}; logged errors {logged['errors_by_kind'] or 'none'}.",
    ]
    return lines


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    settings = report["settings"]
    lines = [
        f"# Benchmark results ({report['profile']} profile)",
        "",
        f"{report['finished_at']}; source {machine.get('source', 'unknown')}; "
        f"{machine['cpus']} cores; load average "
        f"{machine['load_before']} before, {machine['load_after']} after; "
        f"{settings['runs']} runs of {settings['duration_s']} s per scenario, interleaved. "
        "Figures are medians of the runs; ratios are taken within each run, then the median. "
        "req/s counts good responses only; errors are socket errors plus responses the "
        "scenario refused. Made by `python -m bench.run` (see bench/README.md).",
        "",
        "## Targets",
        "",
        "| target | measured | threshold | met | where |",
        "|---|---:|---:|:-:|---|",
    ]
    for t in report["targets"]:
        met = "yes" if t["ok"] else "**no**"
        lines.append(
            f"| {t['target']} | {t['value']:.2f} | {t['threshold']} | {met} | {t['where']} |"
        )
    for config in report["configs"]:
        lines += config_section(config)
    if report.get("scaling"):
        lines += [
            "",
            "## List latency by size (1 worker, 1 connection; p50 / p99 ms)",
            "",
            "| backend | users | first page | deep page by cursor | deep page by skip "
            "| cursor \u00f7 first |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for s in report["scaling"]:
            cells = [
                f"{fmt(s['scenarios'][n]['median']['p50_ms'], 2)} / "
                f"{fmt(s['scenarios'][n]['median']['p99_ms'], 2)}"
                for n in LIST_SCENARIOS
            ]
            ratio = s["cursor_over_first_p50"]
            lines.append(f"| {s['backend']} | {s['users']:,} | {' | '.join(cells)} | {ratio:.2f} |")
    lines += ["", "## Seeding", "", "| backend | users | seconds |", "|---|---:|---:|"]
    for s in report["seeding"]:
        lines.append(f"| {s['backend']} | {s['users']:,} | {s['seconds']:.1f} |")
    lines += ["", "![Throughput per scenario](latest.png)", ""]
    return "\n".join(lines)


def chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    configs = report["configs"]
    scaling = report.get("scaling", [])
    columns = 2
    rows = (len(configs) + columns - 1) // columns + (1 if scaling else 0)
    figure, axes = plt.subplots(rows, columns, figsize=(14, 4.6 * rows), squeeze=False)
    for index, config in enumerate(configs):
        ax = axes[index // columns][index % columns]
        names = [n for n in config["scenarios"] if n != "floor_me"]
        values = [config["scenarios"][n]["median"]["rps"] for n in names]
        colours = [
            "#4878d0" if config["scenarios"][n].get("ratio_to_floor") is not None else "#ee854a"
            for n in names
        ]
        bars = ax.bar(names, values, color=colours)
        for bar, name in zip(bars, names, strict=True):
            ratio = config["scenarios"][name].get("ratio_to_floor")
            label = f"{bar.get_height():,.0f}" + (
                f"\n{ratio:.2f}{TIMES}" if ratio is not None else ""
            )
            ax.annotate(
                label,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
        limit = config["hashing"]["limit_rps"]
        if limit and "login" in names:
            x = names.index("login")
            ax.hlines(limit, x - 0.45, x + 0.45, colors="#2ca02c", linestyles=":", linewidth=2)
            ax.annotate("hashing limit", (x, limit), ha="center", va="bottom", fontsize=7)
        floor = config["scenarios"].get("floor_me", {}).get("median", {}).get("rps", 0)
        if floor:
            ax.axhline(
                floor,
                color="#d62728",
                linestyle="--",
                linewidth=1.2,
                label=f"floor app: {floor:,.0f} req/s",
            )
            ax.legend(loc="upper right", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylim(top=max([*values, floor, 1]) * 3)
        ax.set_ylabel("requests/s (median, log scale)")
        ax.set_title(
            f"{config['backend']}, {config['workers']} worker(s), {config['users']:,} users",
            fontsize=10,
        )
        ax.tick_params(axis="x", rotation=35, labelsize=8)
    for index in range(len(configs), ((len(configs) + columns - 1) // columns) * columns):
        axes[index // columns][index % columns].axis("off")
    if scaling:
        for column, backend in enumerate(("sqlite", "postgres")):
            ax = axes[rows - 1][column]
            points = sorted(
                (s for s in scaling if s["backend"] == backend), key=lambda s: s["users"]
            )
            if not points:
                ax.axis("off")
                continue
            users = [p["users"] for p in points]
            for name, style in (("list_first", "o-"), ("list_cursor", "s-"), ("list_skip", "^-")):
                ax.plot(
                    users,
                    [p["scenarios"][name]["median"]["p50_ms"] for p in points],
                    style,
                    label=name,
                )
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_formatter(ScalarFormatter())
            ax.set_xlabel("users")
            ax.set_ylabel("p50 latency, ms (1 connection)")
            ax.set_title(f"list page latency vs users: {backend}", fontsize=10)
            ax.legend(fontsize=8)
            ax.grid(True, which="both", alpha=0.3)
    figure.suptitle(
        f"Accounts benchmark ({report['profile']} profile, {report['finished_at']})", fontsize=12
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# -- main -------------------------------------------------------------------------------------


def source_version() -> str:
    """The commit benchmarked, and whether src/ differed from it (read-only git calls)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],  # noqa: S607
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}{' + uncommitted changes in src/' if dirty else ''}"


def preflight(profile: Profile) -> None:
    if not Path(WRK).exists():
        raise SystemExit("wrk is not installed: apt-get install wrk (Debian's, with LuaJIT)")
    if shutil.which("timeout") is None:
        raise SystemExit("coreutils' timeout is missing")
    if "postgres" in profile.backends and not os.environ.get("BENCH_POSTGRES_URL"):
        pg_ctl = shutil.which("pg_ctl") or "/usr/local/bin/pg_ctl"
        if not Path(pg_ctl).exists() and not os.environ.get("PG_BIN"):
            raise SystemExit("PostgreSQL is not installed (pg_ctl); or pass --backends sqlite")


def parse_args() -> tuple[Profile, argparse.Namespace]:
    parser = argparse.ArgumentParser(description="Run the Accounts benchmarks (bench/README.md).")
    parser.add_argument(
        "--profile", choices=sorted(PROFILES), default=os.environ.get("BENCH_PROFILE", "short")
    )
    parser.add_argument("--users", type=int, help="override the profile's user count")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--duration", type=int, help="seconds per wrk run")
    parser.add_argument("--backends", help="comma-separated: sqlite,postgres")
    parser.add_argument("--workers", help="comma-separated worker counts, e.g. 1,2")
    parser.add_argument(
        "--scaling", help="comma-separated user counts for the list-latency curve ('' for none)"
    )
    parser.add_argument(
        "--scenarios", help="comma-separated subset of: " + ",".join(s.name for s in SCENARIOS)
    )
    parser.add_argument(
        "--output", default=str(RESULTS / "latest"), help="path prefix of the .json/.md/.png"
    )
    args = parser.parse_args()
    base = PROFILES[args.profile]
    profile = Profile(
        name=base.name,
        users=args.users or base.users,
        runs=args.runs or base.runs,
        duration=args.duration or base.duration,
        backends=tuple(args.backends.split(",")) if args.backends else base.backends,
        workers=tuple(int(w) for w in args.workers.split(",")) if args.workers else base.workers,
        scaling=tuple(int(n) for n in args.scaling.split(",") if n)
        if args.scaling is not None
        else base.scaling,
    )
    return profile, args


def under_the_services_allocator() -> None:
    """Re-exec this run with the environment ``accounts serve`` gives its server
    (``serving_environment``: huge pages for malloc's mappings), so that the hashing
    limit is timed with the allocator settings the service hashes with, and the floor
    app runs under them too. A hash timed without them costs ~40% more, which would
    flatter the login ratio."""
    env = serving_environment(os.environ)
    if env != dict(os.environ):
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, "-m", "bench.run", *sys.argv[1:]], env)  # noqa: S606 - our own interpreter, no shell


def main() -> None:
    under_the_services_allocator()
    profile, args = parse_args()
    preflight(profile)
    scenarios = SCENARIOS
    if args.scenarios:
        wanted = set(args.scenarios.split(",")) | {"floor_me"}
        scenarios = [s for s in SCENARIOS if s.name in wanted]
    started = time.monotonic()
    load_before = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    workdir = Path(tempfile.mkdtemp(prefix="accounts-bench-"))
    report: dict[str, Any] = {
        "profile": profile.name,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "settings": {
            "users": profile.users,
            "runs": profile.runs,
            "duration_s": profile.duration,
            "backends": list(profile.backends),
            "workers": list(profile.workers),
            "scaling": list(profile.scaling),
            "wrk": f"{WRK} -t1 --latency; reads -c{READ_CONNECTIONS}, "
            f"login/register -c{HASH_CONNECTIONS}, refresh -c{READ_CONNECTIONS}, "
            f"storm -c{STORM_CONNECTIONS} + /healthz -c1",
            "service": "accounts serve (uvicorn), ACCOUNTS_RATE_LIMITS=off, no Redis, "
            "other settings default",
            "deep_page": f"{DEEP:.0%} of the way down, 20 per page",
        },
        "configs": [],
        "scaling": [],
        "seeding": [],
    }
    timer = HashTimer(dict(os.environ))
    report["hashing"] = {
        "memory_kib": timer.parameters.memory_kib,
        "time_cost": timer.parameters.time_cost,
        "parallelism": timer.parameters.parallelism,
        "cores": cores(),
    }
    log(f"profile {profile.name}: {profile}; work directory {workdir}")
    try:
        with postgres("postgres" in profile.backends) as pg_base:
            databases: dict[tuple[str, int], Database] = {}

            def database(backend: str, users: int) -> Database:
                key = (backend, users)
                if key not in databases:
                    databases[key] = make_database(backend, users, workdir, pg_base, timer.hash)
                    info = databases[key].seed
                    report["seeding"].append(
                        {
                            "backend": backend,
                            "users": users,
                            "seconds": round(info.seconds, 1),
                            "insert_seconds": round(info.insert_seconds, 1),
                        }
                    )
                return databases[key]

            for backend in profile.backends:
                db = database(backend, profile.users)
                for workers in profile.workers:
                    report["configs"].append(
                        run_matrix(db, workers, profile, workdir, timer, scenarios)
                    )
                for users in profile.scaling:
                    report["scaling"].append(
                        run_scaling(database(backend, users), profile, workdir)
                    )
                # Drop the big ones as soon as they are done with (disk, page cache).
                for key in [k for k in databases if k[0] == backend]:
                    if backend == "sqlite":
                        for suffix in ("", "-wal", "-shm"):
                            Path(f"{seeding.sqlite_path(databases[key].url)}{suffix}").unlink(
                                missing_ok=True
                            )
                    del databases[key]
    finally:
        timer.close()
        shutil.rmtree(workdir, ignore_errors=True)
    report["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    report["seconds"] = round(time.monotonic() - started, 1)
    report["machine"] = {
        "cpus": cores(),
        "load_before": load_before,
        "load_after": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
        "source": source_version(),
        "platform": platform.platform(),
    }
    report["targets"] = targets(report)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    output.with_suffix(".md").write_text(markdown(report))
    chart(report, output.with_suffix(".png"))
    log(f"done in {report['seconds']:.0f} s: {output.with_suffix('.md')}")
    for t in report["targets"]:
        log(f"   {'ok  ' if t['ok'] else 'MISS'} {t['target']}: {t['value']:.2f} ({t['where']})")


if __name__ == "__main__":
    main()

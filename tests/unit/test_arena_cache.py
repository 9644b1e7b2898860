"""The cache in front of CPython's arena allocator (accounts/arena_cache.py): frame
stacks of finished greenlets are reused, not unmapped, and nothing else changes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from accounts import arena_cache
from tests.conftest import IN_CI
from tests.servers import scrubbed_env

pytestmark = pytest.mark.skipif(
    not arena_cache.available() and not IN_CI,
    reason="accounts._arena_cache was not built (no C compiler or Python headers at install)",
)


def run_python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(  # noqa: S603 - our own interpreter, our own code
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_the_extension_is_built() -> None:
    # In CI a missing extension is a failure, not a skip: the build must not have
    # silently fallen back.
    assert arena_cache.available()


def test_finished_greenlets_reuse_one_frame_stack() -> None:
    # In a process of its own: in this one, other tests' threads could take the block.
    out = run_python(
        """
        import greenlet
        from accounts import arena_cache
        assert arena_cache.install()
        before = arena_cache.stats()
        for _ in range(200):
            greenlet.greenlet(lambda: None).switch()
        after = arena_cache.stats()
        print(after["reused"] - before["reused"])
        print(after["passed_through"] - before["passed_through"])
        """
    ).stdout
    reused, passed_through = map(int, out.split())
    assert reused == 199
    assert passed_through == 1


def test_at_most_64_freed_stacks_are_held_and_the_rest_given_back() -> None:
    out = run_python(
        """
        import greenlet
        from accounts import arena_cache
        assert arena_cache.install()
        # 100 greenlets alive at once, each holding a stack; then all finish.
        paused = [greenlet.greenlet(lambda: greenlet.getcurrent().parent.switch())
                  for _ in range(100)]
        for g in paused:
            g.switch()
        for g in paused:
            g.switch()
        assert all(g.dead for g in paused)
        print(arena_cache.stats()["held"])
        """
    ).stdout
    assert int(out) == 64


def test_install_is_idempotent() -> None:
    assert arena_cache.install()
    assert arena_cache.install()

    stats = arena_cache.stats()
    assert stats is not None
    assert stats["installed"]


def test_threads_deep_frames_and_a_fork_run_correctly_under_the_cache() -> None:
    # Frames larger than a 16 KiB stack chunk, chunks of several sizes freed by many
    # threads and greenlets, the collector, and a forked child that allocates too:
    # every result must be right and the cache must stay within its bound.
    out = run_python(
        r"""
        import gc, os, threading, greenlet
        from accounts import arena_cache
        assert arena_cache.install()

        def depth(n):
            pad = [n] * 8
            return n if n == 0 else depth(n - 1) + 1 + len(pad) - 8

        # A frame with 3,000 locals needs more than one 16 KiB chunk to itself.
        names = [f"v{i}" for i in range(3000)]
        exec("def big(x):\n " + "; ".join(f"{n} = x" for n in names)
             + "\n return " + " + ".join(names[:3]), globals())

        def greenlets(k):
            total = 0
            for i in range(k):
                run = (lambda i=i: big(i) // 3 + 50 + i % 400 - i) if i % 7 == 0 \
                    else (lambda i=i: depth(50 + i % 400))
                total += greenlet.greenlet(run).switch()
            return total

        expected = sum(50 + i % 400 for i in range(600))
        results = []
        def work():
            results.append(greenlets(600))
            gc.collect()
        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads: t.start()
        for t in threads: t.join()
        assert results == [expected] * 6, results

        pid = os.fork()
        if pid == 0:
            ok = greenlets(300) == sum(50 + i % 400 for i in range(300))
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status

        stats = arena_cache.stats()
        assert stats["reused"] > 3000, stats
        print("ok")
        """
    ).stdout
    assert out.strip() == "ok"


def test_the_serving_app_installs_the_cache(tmp_path: Path) -> None:
    out = run_python(
        """
        from accounts import arena_cache
        from accounts.http.app import serve_app
        assert not arena_cache.stats()["installed"]
        serve_app()
        print(arena_cache.stats()["installed"])
        """,
        env=scrubbed_env(database_url=f"sqlite+aiosqlite:///{tmp_path / 'accounts.db'}"),
    ).stdout
    assert out.strip() == "True"


def test_without_the_extension_the_server_starts_and_says_so(tmp_path: Path) -> None:
    out = run_python(
        """
        from accounts import arena_cache
        arena_cache._arena_cache = None  # as when the build skipped it
        from accounts.http.app import serve_app
        app = serve_app()
        assert app.title == "Accounts"
        assert not arena_cache.install()
        assert arena_cache.stats() is None
        """,
        env=scrubbed_env(database_url=f"sqlite+aiosqlite:///{tmp_path / 'accounts.db'}"),
    )
    assert '"event":"arena_cache_unavailable"' in (out.stdout + out.stderr).replace(" ", "")

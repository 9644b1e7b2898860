"""argon2id password hashing, off the event loop in a bounded thread pool.

One verify costs tens of milliseconds of CPU and 7 MiB or more of memory (19 MiB by
default). Done on the event loop it would stall every other request; done in an
unbounded pool a login storm would exhaust memory. argon2-cffi releases the GIL while
hashing, so a pool as wide as the machine has cores uses it fully.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import enum
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from accounts.domain.users import normalize_password


class Match(enum.Enum):
    """How a password matched its hash. Falsy when it did not."""

    NONE = "none"
    NORMALISED = "normalised"
    # A hash of the password as typed, made before passwords were normalised: right,
    # but to be replaced by a hash of the normalised form.
    AS_TYPED = "as_typed"

    def __bool__(self) -> bool:
        return self is not Match.NONE


@dataclass(frozen=True, slots=True)
class HashParameters:
    memory_kib: int = 19 * 1024
    time_cost: int = 2
    parallelism: int = 1


# glibc's mallopt(M_MMAP_THRESHOLD, ...). Set explicitly, it stops glibc raising the
# threshold after the first large free, so every argon2 buffer (7 MiB or more) is
# mmapped and handed back to the OS when the hash is done, instead of staying in a
# thread's heap: about 45 MiB of resident memory saved per process after a login storm.
# Mapping afresh costs a page fault per page touched; the serving process has malloc
# advise huge pages for its mappings (http/server.py), which keeps that cheap.
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 1024 * 1024


def return_large_buffers_to_the_os() -> None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


class PasswordHasher:
    def __init__(self, parameters: HashParameters, *, workers: int | None = None) -> None:
        return_large_buffers_to_the_os()
        self._argon2 = Argon2Hasher(
            time_cost=parameters.time_cost,
            memory_cost=parameters.memory_kib,
            parallelism=parameters.parallelism,
            type=Type.ID,
        )
        self._pool = ThreadPoolExecutor(
            max_workers=workers or os.cpu_count() or 1, thread_name_prefix="argon2"
        )
        # Verified against when the email is unknown, so that an unknown email costs
        # the same time as a wrong password (no user enumeration by timing).
        self._dummy_hash = self._argon2.hash("dummy password for timing equalisation")

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, self._argon2.hash, normalize_password(password)
        )

    async def verify(self, password_hash: str | None, password: str) -> Match:
        """Whether ``password`` matches, and how; with no hash, spend the same time and
        say NONE."""
        target = password_hash if password_hash is not None else self._dummy_hash
        loop = asyncio.get_running_loop()
        matched = await loop.run_in_executor(self._pool, self._verify_sync, target, password)
        return matched if password_hash is not None else Match.NONE

    def _verify_sync(self, password_hash: str, password: str) -> Match:
        normalized = normalize_password(password)
        if self._matches(password_hash, normalized):
            return Match.NORMALISED
        # Hashes made before passwords were normalised hold the password as typed;
        # login replaces such a hash (Match.AS_TYPED). Only a password that
        # normalisation changes costs a second verify, and an unknown email (the dummy
        # hash) pays the same.
        if normalized != password and self._matches(password_hash, password):
            return Match.AS_TYPED
        return Match.NONE

    def _matches(self, password_hash: str, password: str) -> bool:
        try:
            return self._argon2.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError, UnicodeEncodeError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters than the current ones."""
        return self._argon2.check_needs_rehash(password_hash)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

"""The environment ``accounts serve`` starts its serving process with."""

from __future__ import annotations

from accounts.http.server import serving_environment


def test_malloc_gets_huge_pages_when_nothing_is_tuned() -> None:
    env = serving_environment({"PATH": "/usr/bin"})

    assert env == {"PATH": "/usr/bin", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}


def test_other_tunables_are_kept_and_huge_pages_added() -> None:
    env = serving_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})

    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"


def test_the_operators_own_huge_page_choice_wins() -> None:
    tuned = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0:glibc.malloc.arena_max=2"}

    assert serving_environment(tuned) == tuned


def test_the_callers_mapping_is_not_changed() -> None:
    environ = {"PATH": "/usr/bin"}

    serving_environment(environ)

    assert environ == {"PATH": "/usr/bin"}

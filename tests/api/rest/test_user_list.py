"""``GET /api/v1/users``: the superuser's list, its paging, sorting and filtering."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from accounts.bootstrap import Container
from accounts.http.app import create_app
from accounts.models import User
from accounts.services.list_totals import LargeTotals
from accounts.services.users import UserChanges
from accounts.settings import Settings
from tests.factories import PASSWORD, Account, account, superuser, unique_email

USERS = "/api/v1/users"
SORTS = ["created_at", "-created_at", "email", "-email"]
PAGE_FIELDS = {"items", "total", "skip", "limit", "next_cursor"}
USER_FIELDS = {
    "id",
    "email",
    "name",
    "is_active",
    "is_superuser",
    "email_verified",
    "created_at",
    "updated_at",
}


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app itself, its lifespan running.

    Overrides conftest's ``app``, which yields ``LifespanManager.app``: in asgi-lifespan
    2.1 that is a plain ASGI function wrapping the app, so conftest's ``container``
    fixture (``app.state.container``) fails with AttributeError. Remove this override
    once conftest yields the FastAPI instance.
    """
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


# --- helpers ---------------------------------------------------------------------------


async def create_users(
    container: Container, count: int, *, prefix: str = "user", name: str = "Listed User"
) -> list[User]:
    """Users made through the service (one hash each, no login), oldest first."""
    return [
        await container.users.create(unique_email(f"{prefix}{index:02d}"), PASSWORD, name)
        for index in range(count)
    ]


async def list_users(client: httpx.AsyncClient, who: Account, **params: Any) -> dict[str, Any]:
    response = await client.get(USERS, headers=who.headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["items"]]


def expected_order(users: list[User], sort: str) -> list[str]:
    """The ids of ``users`` as the contract orders them under ``sort``."""
    if sort.lstrip("-") == "created_at":
        ordered = sorted(users, key=lambda user: (user.created_at, user.id))
    else:
        ordered = sorted(users, key=lambda user: (user.email.lower(), user.id))
    if sort.startswith("-"):
        ordered.reverse()
    return [str(user.id) for user in ordered]


async def walk_by_cursor(
    client: httpx.AsyncClient, who: Account, *, limit: int, **params: Any
) -> list[dict[str, Any]]:
    pages = [await list_users(client, who, limit=limit, **params)]
    while pages[-1]["next_cursor"] is not None:
        assert len(pages) <= 50, "the cursor walk does not end"
        pages.append(
            await list_users(client, who, limit=limit, cursor=pages[-1]["next_cursor"], **params)
        )
    return pages


def validation_errors(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body.keys() >= {"type", "title", "status", "detail", "request_id", "errors"}
    assert body["status"] == 422
    errors: list[dict[str, Any]] = body["errors"]
    assert errors
    for error in errors:
        assert set(error) == {"loc", "msg", "type"}
    return errors


def encode_cursor(raw: object) -> str:
    text = raw if isinstance(raw, str) else json.dumps(raw)
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


async def as_admin_user(container: Container, admin: Account) -> User:
    async with container.uow() as uow:
        user = await uow.users.get(uuid.UUID(admin.id))
    assert user is not None
    return user


# --- who may list ---------------------------------------------------------------------


async def test_non_superuser_listing_users_gets_403(client: httpx.AsyncClient) -> None:
    ada = await account(client)
    response = await client.get(USERS, headers=ada.headers)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 403
    assert ada.email not in response.text


async def test_listing_users_without_a_token_gets_401(client: httpx.AsyncClient) -> None:
    response = await client.get(USERS)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_deactivated_superuser_listing_users_gets_401(
    client: httpx.AsyncClient, container: Container
) -> None:
    first = await superuser(client, container)
    second = await superuser(client, container)
    await container.users.update(
        await as_admin_user(container, first), uuid.UUID(second.id), UserChanges(is_active=False)
    )
    response = await client.get(USERS, headers=second.headers)
    assert response.status_code == 401


# --- shape and defaults ---------------------------------------------------------------


async def test_list_response_has_items_total_skip_limit_and_next_cursor(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    page = await list_users(client, admin)
    assert set(page) == PAGE_FIELDS
    assert page["total"] == 1
    assert page["next_cursor"] is None
    assert [set(item) for item in page["items"]] == [USER_FIELDS]
    assert page["items"][0]["id"] == admin.id
    assert "password" not in json.dumps(page)


async def test_list_defaults_to_skip_0_limit_20_newest_first(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    users = [await as_admin_user(container, admin), *await create_users(container, 24)]
    page = await list_users(client, admin)
    assert (page["skip"], page["limit"], page["total"]) == (0, 20, 25)
    assert ids(page) == expected_order(users, "-created_at")[:20]
    assert page["next_cursor"] is not None


async def test_default_sort_is_the_same_as_minus_created_at(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    await create_users(container, 4)
    assert ids(await list_users(client, admin)) == ids(
        await list_users(client, admin, sort="-created_at")
    )


# --- out-of-range parameters ----------------------------------------------------------


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5"])
async def test_listing_with_limit_out_of_range_gets_422(
    client: httpx.AsyncClient, container: Container, limit: str
) -> None:
    admin = await superuser(client, container)
    response = await client.get(USERS, headers=admin.headers, params={"limit": limit})
    errors = validation_errors(response)
    assert any("limit" in error["loc"] for error in errors)


@pytest.mark.parametrize("limit", [1, 100])
async def test_listing_with_limit_at_a_bound_is_accepted(
    client: httpx.AsyncClient, container: Container, limit: int
) -> None:
    admin = await superuser(client, container)
    await create_users(container, 1)
    page = await list_users(client, admin, limit=limit)
    assert page["limit"] == limit
    assert len(page["items"]) == min(limit, 2)


@pytest.mark.parametrize("skip", ["-1", "abc"])
async def test_listing_with_a_negative_or_non_numeric_skip_gets_422(
    client: httpx.AsyncClient, container: Container, skip: str
) -> None:
    admin = await superuser(client, container)
    response = await client.get(USERS, headers=admin.headers, params={"skip": skip})
    errors = validation_errors(response)
    assert any("skip" in error["loc"] for error in errors)


@pytest.mark.parametrize("sort", ["bogus", "name", "--email", "password_hash"])
async def test_listing_with_an_unknown_sort_gets_422(
    client: httpx.AsyncClient, container: Container, sort: str
) -> None:
    admin = await superuser(client, container)
    response = await client.get(USERS, headers=admin.headers, params={"sort": sort})
    errors = validation_errors(response)
    assert any("sort" in error["loc"] for error in errors)


async def test_listing_with_a_non_boolean_is_active_gets_422(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    response = await client.get(USERS, headers=admin.headers, params={"is_active": "maybe"})
    validation_errors(response)


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!!",
        "%%%",
        "é",
        encode_cursor("not json"),
        encode_cursor({"sort": "-created_at"}),
        encode_cursor(42),
        encode_cursor(["-created_at", "2026-01-01T00:00:00+00:00"]),
        encode_cursor(["-created_at", "2026-01-01T00:00:00+00:00", "not-a-uuid"]),
        encode_cursor(["-created_at", "not a time", str(uuid.uuid4())]),
        encode_cursor(["-created_at", "2026-01-01T00:00:00", str(uuid.uuid4())]),
        "A" * 1025,
    ],
    ids=[
        "garbage",
        "punctuation",
        "percent",
        "non-ascii",
        "not-json",
        "object",
        "number",
        "two-parts",
        "bad-uuid",
        "bad-time",
        "naive-time",
        "too-long",
    ],
)
async def test_listing_with_a_malformed_cursor_gets_422(
    client: httpx.AsyncClient, container: Container, cursor: str
) -> None:
    admin = await superuser(client, container)
    response = await client.get(USERS, headers=admin.headers, params={"cursor": cursor})
    errors = validation_errors(response)
    assert any("cursor" in error["loc"] for error in errors)


@pytest.mark.parametrize(
    ("made_for", "used_with"),
    [("email", "-email"), ("-created_at", "created_at"), ("email", "-created_at")],
)
async def test_cursor_made_for_one_sort_used_with_another_gets_422(
    client: httpx.AsyncClient, container: Container, made_for: str, used_with: str
) -> None:
    admin = await superuser(client, container)
    await create_users(container, 2)
    cursor = (await list_users(client, admin, sort=made_for, limit=1))["next_cursor"]
    assert cursor is not None
    response = await client.get(
        USERS, headers=admin.headers, params={"sort": used_with, "cursor": cursor, "limit": 1}
    )
    errors = validation_errors(response)
    assert any("cursor" in error["loc"] for error in errors)


async def test_cursor_without_an_explicit_sort_is_checked_against_the_default(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    await create_users(container, 2)
    cursor = (await list_users(client, admin, sort="email", limit=1))["next_cursor"]
    response = await client.get(USERS, headers=admin.headers, params={"cursor": cursor})
    validation_errors(response)


# --- walking the list -----------------------------------------------------------------


@pytest.mark.parametrize("sort", SORTS)
async def test_walking_by_cursor_sees_every_user_once_in_order(
    client: httpx.AsyncClient, container: Container, sort: str
) -> None:
    admin = await superuser(client, container)
    users = [await as_admin_user(container, admin), *await create_users(container, 25)]
    pages = await walk_by_cursor(client, admin, limit=7, sort=sort)
    assert [len(page["items"]) for page in pages] == [7, 7, 7, 5]
    seen = [user_id for page in pages for user_id in ids(page)]
    assert seen == expected_order(users, sort)
    assert len(set(seen)) == len(users)
    assert [page["next_cursor"] is None for page in pages] == [False, False, False, True]
    assert {page["total"] for page in pages} == {26}


@pytest.mark.parametrize("sort", SORTS)
async def test_skip_limit_pages_agree_with_cursor_pages(
    client: httpx.AsyncClient, container: Container, sort: str
) -> None:
    admin = await superuser(client, container)
    await create_users(container, 25)
    by_cursor = await walk_by_cursor(client, admin, limit=7, sort=sort)
    by_skip = [
        await list_users(client, admin, sort=sort, limit=7, skip=skip) for skip in range(0, 28, 7)
    ]
    assert [ids(page) for page in by_skip] == [ids(page) for page in by_cursor]
    assert [page["skip"] for page in by_skip] == [0, 7, 14, 21]
    assert by_skip[-1]["next_cursor"] is None


async def test_skip_past_the_end_returns_no_items_and_no_cursor(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    await create_users(container, 2)
    page = await list_users(client, admin, skip=3)
    assert page["items"] == []
    assert page["total"] == 3
    assert page["next_cursor"] is None


async def test_page_exactly_filling_the_list_has_no_next_cursor(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    await create_users(container, 3)
    page = await list_users(client, admin, limit=4)
    assert len(page["items"]) == 4
    assert page["next_cursor"] is None


async def test_cursor_walk_keeps_the_order_of_users_with_equal_created_at(
    client: httpx.AsyncClient, container: Container
) -> None:
    """Rows created in the same microsecond (say, on two instances) are ordered by id."""
    admin = await superuser(client, container)
    template = (await create_users(container, 1))[0]
    emails = [unique_email("twin") for _ in range(6)]
    async with container.uow(write=True) as uow:
        twins = [
            User(
                email=email,
                email_key=email,
                name="Twin",
                password_hash=template.password_hash,
                is_active=True,
                is_superuser=False,
                email_verified=False,
                version=1,
                created_at=template.created_at,
                updated_at=template.created_at,
            )
            for email in emails
        ]
        for twin in twins:
            await uow.users.add(twin)
        await uow.commit()
    users = [await as_admin_user(container, admin), template, *twins]
    for sort in ("created_at", "-created_at"):
        pages = await walk_by_cursor(client, admin, limit=2, sort=sort)
        assert [user_id for page in pages for user_id in ids(page)] == expected_order(users, sort)


async def test_cursor_walk_does_not_repeat_users_created_during_the_walk(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    await create_users(container, 5)
    first = await list_users(client, admin, limit=3)
    await create_users(container, 2, prefix="late")
    rest = await list_users(client, admin, limit=10, cursor=first["next_cursor"])
    assert not set(ids(first)) & set(ids(rest))
    assert len(ids(first)) + len(ids(rest)) == 6


# --- filters --------------------------------------------------------------------------


async def test_q_matches_email_case_insensitively(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    grace = await container.users.create(
        f"Grace.Hopper-{uuid.uuid4().hex[:8]}@Example.com", PASSWORD, "Someone"
    )
    await create_users(container, 3)
    for q in ("grace.hopper", "GRACE.HOPPER", "gRaCe.HoPpEr-", "hopper"):
        page = await list_users(client, admin, q=q)
        assert ids(page) == [str(grace.id)], q
        assert page["total"] == 1


async def test_q_matches_name_case_insensitively(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    ada = await container.users.create(unique_email(), PASSWORD, "Ada Lovelace")
    await create_users(container, 3)
    for q in ("lovelace", "LOVELACE", "a lOvE"):
        page = await list_users(client, admin, q=q)
        assert ids(page) == [str(ada.id)], q
        assert page["total"] == 1


async def test_q_matches_non_ascii_names_case_insensitively(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    elodie = await container.users.create(unique_email(), PASSWORD, "ÉLODIE Ørsted")
    await create_users(container, 2)
    for q in ("élodie", "ørsted", "Élodie ØRSTED"):
        page = await list_users(client, admin, q=q)
        assert ids(page) == [str(elodie.id)], q


async def test_q_matching_both_email_and_name_returns_the_user_once(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    both = await container.users.create(unique_email("zebra"), PASSWORD, "Zebra")
    page = await list_users(client, admin, q="zebra")
    assert ids(page) == [str(both.id)]
    assert page["total"] == 1


@pytest.mark.parametrize("char", ["%", "_", "\\", "/", "[", "*"])
async def test_q_takes_like_wildcards_and_escapes_literally_in_names(
    client: httpx.AsyncClient, container: Container, char: str
) -> None:
    admin = await superuser(client, container)
    literal = await container.users.create(unique_email(), PASSWORD, f"pre{char}fix")
    await container.users.create(unique_email(), PASSWORD, "preXfix")
    await container.users.create(unique_email(), PASSWORD, "prefix")
    await container.users.create(unique_email(), PASSWORD, f"pre{char}{char}fix")
    page = await list_users(client, admin, q=f"pre{char}fix")
    assert ids(page) == [str(literal.id)]
    assert page["total"] == 1


async def test_q_of_a_lone_percent_matches_only_names_containing_percent(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    sure = await container.users.create(unique_email(), PASSWORD, "100% Sure")
    await create_users(container, 3)
    page = await list_users(client, admin, q="%")
    assert ids(page) == [str(sure.id)]
    assert page["total"] == 1


async def test_q_takes_underscore_literally_in_emails(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    tag = uuid.uuid4().hex[:8]
    underscored = await container.users.create(f"first_last.{tag}@example.com", PASSWORD, "A")
    await container.users.create(f"firstxlast.{tag}@example.com", PASSWORD, "B")
    page = await list_users(client, admin, q="first_last")
    assert ids(page) == [str(underscored.id)]
    assert page["total"] == 1


async def test_q_matching_nothing_returns_an_empty_page(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    await create_users(container, 2)
    page = await list_users(client, admin, q="no-such-user-anywhere")
    assert page["items"] == []
    assert page["total"] == 0
    assert page["next_cursor"] is None


async def test_is_active_false_lists_only_deactivated_users(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    users = await create_users(container, 5)
    for user in users[:2]:
        response = await client.patch(
            f"{USERS}/{user.id}", headers=admin.headers, json={"is_active": False}
        )
        assert response.status_code == 200
    page = await list_users(client, admin, is_active="false")
    assert sorted(ids(page)) == sorted(str(user.id) for user in users[:2])
    assert page["total"] == 2
    assert all(item["is_active"] is False for item in page["items"])


async def test_is_active_true_lists_only_active_users(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    users = await create_users(container, 4)
    await container.users.update(
        await as_admin_user(container, admin), users[0].id, UserChanges(is_active=False)
    )
    page = await list_users(client, admin, is_active="true")
    assert sorted(ids(page)) == sorted([admin.id, *(str(user.id) for user in users[1:])])
    assert page["total"] == 4


async def test_total_counts_the_whole_filtered_set_not_the_page(
    client: httpx.AsyncClient, container: Container
) -> None:
    admin = await superuser(client, container)
    matching = await create_users(container, 9, prefix="match")
    await create_users(container, 3, prefix="other")
    await container.users.update(
        await as_admin_user(container, admin), matching[0].id, UserChanges(is_active=False)
    )
    page = await list_users(client, admin, q="match", limit=2)
    assert page["total"] == 9
    assert len(page["items"]) == 2
    filtered = await list_users(client, admin, q="match", is_active="true", limit=2)
    assert filtered["total"] == 8
    later = await list_users(client, admin, q="match", limit=2, cursor=page["next_cursor"])
    assert later["total"] == 9


@pytest.mark.parametrize("sort", ["email", "-created_at"])
async def test_walking_a_filtered_list_by_cursor_sees_exactly_the_filtered_users(
    client: httpx.AsyncClient, container: Container, sort: str
) -> None:
    admin = await superuser(client, container)
    matching = await create_users(container, 8, prefix="match")
    await create_users(container, 4, prefix="other")
    pages = await walk_by_cursor(client, admin, limit=3, sort=sort, q="MATCH")
    seen = [user_id for page in pages for user_id in ids(page)]
    assert seen == expected_order(matching, sort)
    assert {page["total"] for page in pages} == {8}


async def test_a_large_total_is_reused_for_a_few_seconds_and_then_counted_again(
    client: httpx.AsyncClient, container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = await superuser(client, container)
    await create_users(container, 3, prefix="before")
    now = [0.0]
    # Large from 4 users here rather than 10,000, on a clock the test moves.
    monkeypatch.setattr(
        container.users,
        "_large_totals",
        LargeTotals(threshold=4, ttl_seconds=5, clock=lambda: now[0]),
    )

    assert (await list_users(client, admin))["total"] == 4
    await create_users(container, 2, prefix="after")
    assert (await list_users(client, admin))["total"] == 4
    assert (await list_users(client, admin, q="after"))["total"] == 2  # small: exact
    now[0] += 5
    assert (await list_users(client, admin))["total"] == 6

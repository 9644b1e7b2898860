"""Account lifecycle over REST and the pages behind the emailed links.

Emails really go out over SMTP to an aiosmtpd server on loopback (the ``smtp`` sink);
each test reads the message a user would get, takes the link from it and follows it,
through the API or through the HTML pages (plain HTTP, forms submitted as a browser
would). Rows are looked at directly only to prove what the API cannot show: that
tokens are stored as hashes, that the outbox keeps no copy of a sent link, and what
a failed transaction leaves behind.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from accounts.settings import Settings
from tests.conftest import SmtpSink
from tests.factories import PASSWORD, account, bearer, login, unique_email
from tests.lifecycle_helpers import (
    LOGIN,
    ME,
    PROBLEM_JSON,
    PUBLIC_URL,
    REFRESH,
    RESET_CONFIRM,
    RESET_PATH,
    RESET_REQUEST,
    VERIFY_CONFIRM,
    VERIFY_PATH,
    VERIFY_REQUEST,
    assert_page,
    container_of,
    execute_sql,
    expire_token,
    failing_inserts,
    html_part,
    link_in,
    next_email,
    no_more_email,
    poll_rows,
    reset_mail,
    rows,
    sha256_hex,
    submit,
    text_part,
    the_form,
    token_of,
    verification_mail,
    wait_until_sent,
)

NEW_PASSWORD = "a brand new passphrase"
OTHER_PASSWORD = "yet another passphrase"

Smtp = tuple[SmtpSink, int]


def assert_bad_token(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == 400
    assert isinstance(body["detail"], str)
    assert body["detail"]


async def me(client: httpx.AsyncClient, access_token: str) -> dict[str, Any]:
    response = await client.get(ME, headers=bearer(access_token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def can_log_in(client: httpx.AsyncClient, email: str, password: str) -> bool:
    response = await client.post(LOGIN, json={"email": email, "password": password})
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


# --- email verification over the API ---------------------------------------------------


async def test_verification_email_is_plain_text_and_html_with_the_same_link(
    mail_client: httpx.AsyncClient, smtp: Smtp, mail_settings: Settings
) -> None:
    sink, _ = smtp
    user = await account(mail_client)

    mail = await verification_mail(mail_client, sink, user.access_token)

    message = mail.message
    assert message.get_content_type() == "multipart/alternative"
    assert parseaddr(str(message["To"]))[1] == user.email
    assert parseaddr(str(message["From"]))[1] == parseaddr(mail_settings.email_from)[1]
    assert "email" in str(message["Subject"]).lower()
    assert mail.link == f"{PUBLIC_URL}{VERIFY_PATH}?token={mail.token}"
    assert len(mail.token) >= 43  # 256 bits of URL-safe base64
    assert mail.link in text_part(message)
    assert mail.link in html_part(message)


async def test_confirming_the_emailed_token_verifies_the_email(
    mail_client: httpx.AsyncClient, smtp: Smtp
) -> None:
    user = await account(mail_client)
    assert (await me(mail_client, user.access_token))["email_verified"] is False
    mail = await verification_mail(mail_client, smtp[0], user.access_token)

    response = await mail_client.post(VERIFY_CONFIRM, json={"token": mail.token})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == user.id
    assert body["email"] == user.email
    assert body["email_verified"] is True
    assert (await me(mail_client, user.access_token))["email_verified"] is True


async def test_confirming_a_verification_token_twice_fails(
    mail_client: httpx.AsyncClient, smtp: Smtp
) -> None:
    user = await account(mail_client)
    mail = await verification_mail(mail_client, smtp[0], user.access_token)
    first = await mail_client.post(VERIFY_CONFIRM, json={"token": mail.token})
    assert first.status_code == 200, first.text

    second = await mail_client.post(VERIFY_CONFIRM, json={"token": mail.token})

    assert_bad_token(second)


async def test_an_expired_verification_token_fails(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    user = await account(mail_client)
    mail = await verification_mail(mail_client, smtp[0], user.access_token)
    await expire_token(mail_app, mail.token)

    response = await mail_client.post(VERIFY_CONFIRM, json={"token": mail.token})

    assert_bad_token(response)
    assert (await me(mail_client, user.access_token))["email_verified"] is False


async def test_a_garbage_verification_token_fails(
    mail_client: httpx.AsyncClient, smtp: Smtp
) -> None:
    user = await account(mail_client)
    mail = await verification_mail(mail_client, smtp[0], user.access_token)
    # Looks like a token, is not one (the real one, altered in its last character).
    forged = mail.token[:-1] + ("A" if mail.token[-1] != "A" else "B")

    response = await mail_client.post(VERIFY_CONFIRM, json={"token": forged})

    assert_bad_token(response)
    assert (await me(mail_client, user.access_token))["email_verified"] is False


async def test_requesting_verification_without_a_token_is_401(
    mail_client: httpx.AsyncClient, smtp: Smtp
) -> None:
    response = await mail_client.post(VERIFY_REQUEST)

    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    await no_more_email(smtp[0], 0)


async def test_changing_the_email_invalidates_an_outstanding_verification_link(
    mail_client: httpx.AsyncClient, smtp: Smtp
) -> None:
    user = await account(mail_client)
    mail = await verification_mail(mail_client, smtp[0], user.access_token)
    changed = await mail_client.patch(
        ME, json={"email": unique_email("moved")}, headers=user.headers
    )
    assert changed.status_code == 200, changed.text

    response = await mail_client.post(VERIFY_CONFIRM, json={"token": mail.token})

    assert_bad_token(response)
    assert (await me(mail_client, user.access_token))["email_verified"] is False


async def test_only_the_hash_of_a_verification_token_is_stored(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    user = await account(mail_client)
    mail = await verification_mail(mail_client, smtp[0], user.access_token)

    stored = await rows(mail_app, "SELECT * FROM one_time_tokens")

    assert len(stored) == 1
    assert stored[0]["token_hash"] == sha256_hex(mail.token)
    assert all(mail.token not in str(value) for value in stored[0].values())


async def test_the_outbox_keeps_no_copy_of_a_sent_link(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    user = await account(mail_client)
    mail = await verification_mail(mail_client, smtp[0], user.access_token)

    sent = await wait_until_sent(mail_app, user.email)

    assert sent["text_body"] == ""
    assert sent["html_body"] == ""
    everything = await rows(mail_app, "SELECT * FROM outbox_emails")
    assert len(everything) == 1
    assert all(mail.token not in str(value) for value in everything[0].values())


async def test_a_refused_delivery_is_retried_and_never_fails_the_request(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    sink, _ = smtp
    user = await account(mail_client)
    sink.refuse = True

    response = await mail_client.post(VERIFY_REQUEST, headers=user.headers)

    assert response.status_code == 202, response.text
    queued = await poll_rows(
        mail_app, "SELECT * FROM outbox_emails", until=lambda found: found[0]["attempts"] >= 1
    )
    assert len(queued) == 1
    assert queued[0]["sent_at"] is None
    assert queued[0]["failed_at"] is None
    assert queued[0]["last_error"]
    assert sink.messages == []
    # The server takes mail again and the retry falls due: the message arrives, and
    # its link works.
    sink.refuse = False
    await execute_sql(mail_app, "UPDATE outbox_emails SET next_attempt_at = created_at")
    await container_of(mail_app).outbox.drain()
    message = await next_email(sink, 0)
    token = token_of(link_in(message, VERIFY_PATH))
    confirmed = await mail_client.post(VERIFY_CONFIRM, json={"token": token})
    assert confirmed.status_code == 200, confirmed.text


async def test_a_token_is_not_kept_when_its_email_cannot_be_queued(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    user = await account(mail_client)

    async with failing_inserts(mail_app, "outbox_emails"):
        response = await mail_client.post(VERIFY_REQUEST, headers=user.headers)

    assert response.status_code >= 500, response.text
    assert await rows(mail_app, "SELECT id FROM one_time_tokens") == []
    await no_more_email(smtp[0], 0)


# --- password reset over the API -------------------------------------------------------


async def test_reset_request_for_an_existing_email_sends_a_reset_link(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    user = await account(mail_client)

    mail = await reset_mail(mail_client, mail_app, smtp[0], user.email)

    assert parseaddr(str(mail.message["To"]))[1] == user.email
    assert "password" in str(mail.message["Subject"]).lower()
    assert mail.link == f"{PUBLIC_URL}{RESET_PATH}?token={mail.token}"
    assert mail.link in html_part(mail.message)


async def test_reset_request_finds_the_account_in_any_letter_case(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    user = await account(mail_client)

    mail = await reset_mail(mail_client, mail_app, smtp[0], user.email.upper())

    assert parseaddr(str(mail.message["To"]))[1] == user.email


async def test_reset_request_for_an_unknown_email_answers_the_same_and_sends_nothing(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    sink, _ = smtp
    user = await account(mail_client)
    known = await mail_client.post(RESET_REQUEST, json={"email": user.email})
    await container_of(mail_app).jobs.drain()
    await sink.wait_for(1)

    unknown = await mail_client.post(RESET_REQUEST, json={"email": unique_email("nobody")})
    await container_of(mail_app).jobs.drain()
    await container_of(mail_app).outbox.drain()

    assert known.status_code == unknown.status_code == 202
    assert known.content == unknown.content

    def fixed(headers: httpx.Headers) -> dict[str, str]:
        # Per-request values (id, date, rate-limit counters) may differ; nothing else.
        return {
            key: value
            for key, value in headers.items()
            if key not in {"x-request-id", "date"} and "ratelimit" not in key
        }

    assert fixed(known.headers) == fixed(unknown.headers)
    await no_more_email(sink, 1)
    assert len(await rows(mail_app, "SELECT id FROM outbox_emails")) == 1
    assert len(await rows(mail_app, "SELECT id FROM one_time_tokens")) == 1


async def test_reset_confirm_sets_the_password_and_revokes_every_session(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    user = await account(mail_client)
    second = await login(mail_client, user.email)
    mail = await reset_mail(mail_client, mail_app, smtp[0], user.email)

    response = await mail_client.post(
        RESET_CONFIRM, json={"token": mail.token, "new_password": NEW_PASSWORD}
    )

    assert response.status_code == 204, response.text
    assert response.content == b""
    for access, refresh in (
        (user.access_token, user.refresh_token),
        (second["access_token"], second["refresh_token"]),
    ):
        assert (await mail_client.get(ME, headers=bearer(access))).status_code == 401
        refreshed = await mail_client.post(REFRESH, json={"refresh_token": refresh})
        assert refreshed.status_code == 401, refreshed.text
    assert not await can_log_in(mail_client, user.email, PASSWORD)
    assert await can_log_in(mail_client, user.email, NEW_PASSWORD)


async def test_a_reset_password_changes_the_users_etag_and_updated_at(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    user = await account(mail_client)
    before = await mail_client.get(f"/api/v1/users/{user.id}", headers=user.headers)
    mail = await reset_mail(mail_client, mail_app, smtp[0], user.email)
    response = await mail_client.post(
        RESET_CONFIRM, json={"token": mail.token, "new_password": NEW_PASSWORD}
    )
    assert response.status_code == 204, response.text

    pair = await login(mail_client, user.email, NEW_PASSWORD)
    after = await mail_client.get(f"/api/v1/users/{user.id}", headers=bearer(pair["access_token"]))
    assert after.json()["updated_at"] != before.json()["updated_at"]
    assert after.headers["ETag"] != before.headers["ETag"]


async def test_confirming_a_reset_token_twice_fails(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    user = await account(mail_client)
    mail = await reset_mail(mail_client, mail_app, smtp[0], user.email)
    first = await mail_client.post(
        RESET_CONFIRM, json={"token": mail.token, "new_password": NEW_PASSWORD}
    )
    assert first.status_code == 204, first.text

    second = await mail_client.post(
        RESET_CONFIRM, json={"token": mail.token, "new_password": OTHER_PASSWORD}
    )

    assert_bad_token(second)
    assert await can_log_in(mail_client, user.email, NEW_PASSWORD)
    assert not await can_log_in(mail_client, user.email, OTHER_PASSWORD)


async def test_an_expired_reset_token_fails(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    user = await account(mail_client)
    mail = await reset_mail(mail_client, mail_app, smtp[0], user.email)
    await expire_token(mail_app, mail.token)

    response = await mail_client.post(
        RESET_CONFIRM, json={"token": mail.token, "new_password": NEW_PASSWORD}
    )

    assert_bad_token(response)
    assert await can_log_in(mail_client, user.email, PASSWORD)


async def test_reset_and_verification_tokens_are_not_interchangeable(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    user = await account(mail_client)
    verify = await verification_mail(mail_client, smtp[0], user.access_token)
    reset = await reset_mail(mail_client, mail_app, smtp[0], user.email)

    reset_as_verify = await mail_client.post(VERIFY_CONFIRM, json={"token": reset.token})
    verify_as_reset = await mail_client.post(
        RESET_CONFIRM, json={"token": verify.token, "new_password": NEW_PASSWORD}
    )

    assert_bad_token(reset_as_verify)
    assert_bad_token(verify_as_reset)
    assert (await me(mail_client, user.access_token))["email_verified"] is False
    assert await can_log_in(mail_client, user.email, PASSWORD)
    # Each still works for its own purpose.
    verified = await mail_client.post(VERIFY_CONFIRM, json={"token": verify.token})
    assert verified.status_code == 200, verified.text
    reset_done = await mail_client.post(
        RESET_CONFIRM, json={"token": reset.token, "new_password": NEW_PASSWORD}
    )
    assert reset_done.status_code == 204, reset_done.text


async def test_changing_the_password_invalidates_an_outstanding_reset_link(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    user = await account(mail_client)
    mail = await reset_mail(mail_client, mail_app, smtp[0], user.email)
    changed = await mail_client.post(
        f"{ME}/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=user.headers,
    )
    assert changed.status_code == 204, changed.text

    response = await mail_client.post(
        RESET_CONFIRM, json={"token": mail.token, "new_password": OTHER_PASSWORD}
    )

    assert_bad_token(response)
    assert await can_log_in(mail_client, user.email, NEW_PASSWORD)
    assert not await can_log_in(mail_client, user.email, OTHER_PASSWORD)


async def test_changing_the_email_invalidates_an_outstanding_reset_link(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    user = await account(mail_client)
    mail = await reset_mail(mail_client, mail_app, smtp[0], user.email)
    new_email = unique_email("moved")
    changed = await mail_client.patch(ME, json={"email": new_email}, headers=user.headers)
    assert changed.status_code == 200, changed.text

    response = await mail_client.post(
        RESET_CONFIRM, json={"token": mail.token, "new_password": NEW_PASSWORD}
    )

    assert_bad_token(response)
    assert await can_log_in(mail_client, new_email, PASSWORD)


# --- the pages behind the links --------------------------------------------------------


async def test_opening_the_verification_link_shows_a_form_and_verifies_nothing(
    mail_client: httpx.AsyncClient, smtp: Smtp
) -> None:
    user = await account(mail_client)
    mail = await verification_mail(mail_client, smtp[0], user.access_token)

    page = await mail_client.get(mail.link)
    again = await mail_client.get(mail.link)  # link scanners fetch links too

    assert_page(page, 200)
    assert_page(again, 200)
    form = the_form(page.text)
    assert form.action == VERIFY_PATH
    assert form.method.lower() == "post"
    assert form.hidden == {"token": mail.token}
    assert (await me(mail_client, user.access_token))["email_verified"] is False


async def test_submitting_the_verification_page_verifies_the_email(
    mail_client: httpx.AsyncClient, smtp: Smtp
) -> None:
    user = await account(mail_client)
    mail = await verification_mail(mail_client, smtp[0], user.access_token)
    form = the_form((await mail_client.get(mail.link)).text)

    done = await submit(mail_client, form)

    assert_page(done, 200)
    assert "verified" in done.text
    assert user.email in done.text
    assert (await me(mail_client, user.access_token))["email_verified"] is True


async def test_submitting_the_verification_page_again_says_the_link_was_used(
    mail_client: httpx.AsyncClient, smtp: Smtp
) -> None:
    user = await account(mail_client)
    mail = await verification_mail(mail_client, smtp[0], user.access_token)
    form = the_form((await mail_client.get(mail.link)).text)
    assert (await submit(mail_client, form)).status_code == 200

    again = await submit(mail_client, form)

    assert_page(again, 400)
    assert "already been used" in again.text


async def test_opening_the_reset_link_shows_a_password_form(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    user = await account(mail_client)
    mail = await reset_mail(mail_client, mail_app, smtp[0], user.email)

    page = await mail_client.get(mail.link)

    assert_page(page, 200)
    form = the_form(page.text)
    assert form.action == RESET_PATH
    assert form.method.lower() == "post"
    assert form.hidden == {"token": mail.token}
    assert {"new_password", "confirm_password"} <= set(form.inputs)
    assert await can_log_in(mail_client, user.email, PASSWORD)


async def test_reset_page_with_mismatching_passwords_changes_nothing(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    user = await account(mail_client)
    mail = await reset_mail(mail_client, mail_app, smtp[0], user.email)
    form = the_form((await mail_client.get(mail.link)).text)

    response = await submit(
        mail_client, form, new_password=NEW_PASSWORD, confirm_password=OTHER_PASSWORD
    )

    assert_page(response, 422)
    assert "do not match" in response.text
    assert the_form(response.text).hidden == {"token": mail.token}  # the user can try again
    assert await can_log_in(mail_client, user.email, PASSWORD)
    assert (await mail_client.get(ME, headers=user.headers)).status_code == 200
    assert_page(await mail_client.get(mail.link), 200)  # the link is still good


async def test_reset_page_refuses_a_common_password_and_says_why(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    user = await account(mail_client)
    mail = await reset_mail(mail_client, mail_app, smtp[0], user.email)
    form = the_form((await mail_client.get(mail.link)).text)

    response = await submit(
        mail_client, form, new_password="password1", confirm_password="password1"
    )

    assert_page(response, 422)
    assert "common" in response.text
    assert await can_log_in(mail_client, user.email, PASSWORD)
    assert not await can_log_in(mail_client, user.email, "password1")


async def test_reset_page_sets_the_new_password(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    user = await account(mail_client)
    mail = await reset_mail(mail_client, mail_app, smtp[0], user.email)
    form = the_form((await mail_client.get(mail.link)).text)

    response = await submit(
        mail_client, form, new_password=NEW_PASSWORD, confirm_password=NEW_PASSWORD
    )

    assert_page(response, 200)
    assert "changed" in response.text
    assert await can_log_in(mail_client, user.email, NEW_PASSWORD)
    assert not await can_log_in(mail_client, user.email, PASSWORD)
    assert (await mail_client.get(ME, headers=user.headers)).status_code == 401


@pytest.mark.parametrize("path", [VERIFY_PATH, RESET_PATH])
@pytest.mark.parametrize(
    ("state", "message"),
    [
        ("expired", "expired"),
        ("used", "already been used"),
        ("garbage", "not valid"),
    ],
)
async def test_a_link_page_with_a_bad_token_says_what_is_wrong(
    mail_client: httpx.AsyncClient,
    mail_app: FastAPI,
    smtp: Smtp,
    path: str,
    state: str,
    message: str,
) -> None:
    user = await account(mail_client)
    if path == VERIFY_PATH:
        mail = await verification_mail(mail_client, smtp[0], user.access_token)
        use: dict[str, str] = {}
    else:
        mail = await reset_mail(mail_client, mail_app, smtp[0], user.email)
        use = {"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}
    link = mail.link
    if state == "expired":
        await expire_token(mail_app, mail.token)
    elif state == "used":
        assert (
            await submit(mail_client, the_form((await mail_client.get(link)).text), **use)
        ).status_code == 200
    else:
        link = f"{PUBLIC_URL}{path}?token=not-a-real-token"

    page = await mail_client.get(link)

    assert_page(page, 400)
    assert message in page.text
    assert "<form" not in page.text


async def test_a_link_page_without_any_token_says_the_link_is_not_valid(
    mail_client: httpx.AsyncClient, smtp: Smtp
) -> None:
    for path in (VERIFY_PATH, RESET_PATH):
        page = await mail_client.get(path)
        assert_page(page, 400)
        assert "not valid" in page.text


async def test_link_pages_forbid_referrers_and_caching(
    mail_client: httpx.AsyncClient, mail_app: FastAPI, smtp: Smtp
) -> None:
    user = await account(mail_client)
    verify = await verification_mail(mail_client, smtp[0], user.access_token)
    reset = await reset_mail(mail_client, mail_app, smtp[0], user.email)
    verify_form = the_form((await mail_client.get(verify.link)).text)
    reset_form = the_form((await mail_client.get(reset.link)).text)

    responses = [
        await mail_client.get(verify.link),
        await mail_client.get(reset.link),
        await submit(mail_client, verify_form),
        await submit(mail_client, reset_form, new_password="x" * 8, confirm_password="y" * 8),
        await submit(
            mail_client, reset_form, new_password=NEW_PASSWORD, confirm_password=NEW_PASSWORD
        ),
        await mail_client.get(reset.link),
    ]

    assert [response.status_code for response in responses] == [200, 200, 200, 422, 200, 400]
    for response in responses:
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"

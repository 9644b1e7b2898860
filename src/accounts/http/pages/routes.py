"""``/verify-email`` and ``/reset-password``: the pages the emailed links open.

A GET only looks at the token and shows a button or a form; it changes nothing,
because mail scanners and link previews fetch links before the user does. The
POST does the work and says plainly what happened: done, expired, or already used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from accounts.domain.errors import InvalidInput, InvalidOneTimeToken
from accounts.http.dependencies import ClientInfoDep, LifecycleServiceDep
from accounts.services.lifecycle import RESET_PASSWORD, VERIFY_EMAIL

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

# The token is in the URL: never leak it through Referer, caches or frames.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}
TokenForm = Annotated[str, Form(max_length=512)]
PasswordForm = Annotated[str, Form(max_length=1024)]

HINTS = {
    "expired": "Ask for a new link and use it within its time limit.",
    "used": "Each link works once. If that was not you, ask for a new one.",
    "invalid": "Check that you opened the whole link from the email, or ask for a new one.",
}


def _page(request: Request, name: str, status: int = 200, **context: object) -> Response:
    return templates.TemplateResponse(
        request, name, context, status_code=status, headers=PAGE_HEADERS
    )


def _link_problem(request: Request, title: str, error: InvalidOneTimeToken) -> Response:
    return _page(
        request,
        "message.html",
        400,
        title=title,
        ok=False,
        message=error.message,
        hint=HINTS[error.reason],
    )


@router.get("/verify-email")
async def verify_email_page(
    request: Request, lifecycle: LifecycleServiceDep, token: str = ""
) -> Response:
    try:
        await lifecycle.check_token(token, VERIFY_EMAIL)
    except InvalidOneTimeToken as error:
        return _link_problem(request, "Verify your email address", error)
    return _page(request, "verify_email.html", title="Verify your email address", token=token)


@router.post("/verify-email")
async def verify_email(
    request: Request, lifecycle: LifecycleServiceDep, client: ClientInfoDep, token: TokenForm
) -> Response:
    try:
        user = await lifecycle.confirm_email(token, client)
    except InvalidOneTimeToken as error:
        return _link_problem(request, "Verify your email address", error)
    return _page(
        request,
        "message.html",
        title="Email address verified",
        ok=True,
        message=f"Thank you: {user.email} is verified.",
        hint="You can close this page.",
    )


@router.get("/reset-password")
async def reset_password_page(
    request: Request, lifecycle: LifecycleServiceDep, token: str = ""
) -> Response:
    try:
        await lifecycle.check_token(token, RESET_PASSWORD)
    except InvalidOneTimeToken as error:
        return _link_problem(request, "Reset your password", error)
    return _page(request, "reset_password.html", title="Reset your password", token=token)


@router.post("/reset-password")
async def reset_password(
    request: Request,
    lifecycle: LifecycleServiceDep,
    client: ClientInfoDep,
    token: TokenForm,
    new_password: PasswordForm,
    confirm_password: PasswordForm,
) -> Response:
    def form_again(error: str, status: int) -> Response:
        return _page(
            request,
            "reset_password.html",
            status,
            title="Reset your password",
            token=token,
            error=error,
        )

    if new_password != confirm_password:
        return form_again("The two passwords do not match.", 422)
    try:
        await lifecycle.reset_password(token, new_password, client)
    except InvalidOneTimeToken as error:
        return _link_problem(request, "Reset your password", error)
    except InvalidInput as error:
        message = error.errors[0].msg if error.errors else error.message
        return form_again(f"The new password {message}.", 422)
    return _page(
        request,
        "message.html",
        title="Password changed",
        ok=True,
        message="Your password has been changed.",
        hint="You have been signed out everywhere; sign in again with the new password.",
    )

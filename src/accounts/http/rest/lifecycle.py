"""``/api/v1/auth``: email verification, password reset, and the caller's sessions."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from accounts.http.dependencies import (
    ClientInfoDep,
    ContainerDep,
    LifecycleServiceDep,
    PrincipalDep,
    SessionServiceDep,
)
from accounts.http.rest.schemas import (
    OneTimeTokenBody,
    PasswordResetConfirm,
    PasswordResetRequest,
    ResourceId,
    SessionRead,
    UserRead,
    problems,
)

router = APIRouter(prefix="/api/v1/auth", tags=["account lifecycle"])


@router.post(
    "/verify-email/request",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    responses=problems(401, 429),
    summary="Email the caller a link that verifies their address",
)
async def request_email_verification(
    principal: PrincipalDep, lifecycle: LifecycleServiceDep
) -> Response:
    await lifecycle.request_email_verification(principal)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/verify-email/confirm",
    response_model=UserRead,
    responses=problems(400),
    summary="Verify an address with the token from the emailed link",
)
async def confirm_email(
    body: OneTimeTokenBody, lifecycle: LifecycleServiceDep, client: ClientInfoDep
) -> UserRead:
    return UserRead.model_validate(await lifecycle.confirm_email(body.token, client))


@router.post(
    "/password-reset/request",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    responses=problems(429),
    summary="Email a password-reset link (the same answer whether or not the account exists)",
)
async def request_password_reset(
    body: PasswordResetRequest, container: ContainerDep, client: ClientInfoDep
) -> Response:
    await container.lifecycle.accept_password_reset(body.email, client)
    # Answer first, work after: the response cannot reveal, by content or by
    # timing, whether an account has this email.
    container.jobs.spawn(
        container.lifecycle.request_password_reset(body.email), name="password-reset-request"
    )
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(400),
    summary="Set a new password with the token from the emailed link; ends every session",
)
async def confirm_password_reset(
    body: PasswordResetConfirm, lifecycle: LifecycleServiceDep, client: ClientInfoDep
) -> Response:
    await lifecycle.reset_password(body.token, body.new_password, client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/sessions",
    response_model=list[SessionRead],
    responses=problems(401),
    summary="The caller's live sessions",
)
async def list_sessions(principal: PrincipalDep, sessions: SessionServiceDep) -> list[SessionRead]:
    views = await sessions.list(principal)
    return [SessionRead.model_validate(view, from_attributes=True) for view in views]


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(401, 404),
    summary="End one of the caller's sessions",
)
async def revoke_session(
    session_id: ResourceId, principal: PrincipalDep, sessions: SessionServiceDep
) -> Response:
    await sessions.revoke(principal, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

"""``/api/v1/audit-events``: the audit log, for superusers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from accounts.domain.audit import AuditEventType
from accounts.http.dependencies import AuditServiceDep, PrincipalDep, single_valued
from accounts.http.rest.schemas import AuditEventList, AuditEventRead, ResourceId, problems

router = APIRouter(prefix="/api/v1/audit-events", tags=["audit"])


@router.get(
    "",
    dependencies=[single_valued("user_id", "type", "cursor", "limit")],
    response_model=AuditEventList,
    responses=problems(401, 403),
    summary="Audit events, newest first (superusers only)",
)
async def list_audit_events(
    principal: PrincipalDep,
    audit: AuditServiceDep,
    user_id: ResourceId | None = None,
    type: AuditEventType | None = None,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> AuditEventList:
    type_ = type.value if type is not None else None
    page = await audit.list(
        principal.user, user_id=user_id, type_=type_, cursor=cursor, limit=limit
    )
    return AuditEventList(
        items=[AuditEventRead.model_validate(event) for event in page.items],
        next_cursor=page.next_cursor,
    )

"""Operational endpoints: liveness, readiness and the JWK Set."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from accounts.http.dependencies import ContainerDep
from accounts.http.problems import http_problem, request_id_of

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process runs")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: the database answers", responses={503: {}})
async def readyz(container: ContainerDep, request: Request) -> Any:
    try:
        await container.database.ping()
    except Exception:
        return http_problem(503, "The database is not answering.", request_id_of(request))
    return {"status": "ok", "database": "ok"}


@router.get("/.well-known/jwks.json", summary="Public keys that verify access tokens")
async def jwks(container: ContainerDep, response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = "public, max-age=300"
    return container.key_ring.jwks()

"""Operational endpoints: liveness, readiness and the JWK Set."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from accounts.http.dependencies import ContainerDep
from accounts.http.problems import http_problem, request_id_of
from accounts.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process runs")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database (and Redis, if configured) answer",
    responses={503: {}},
)
async def readyz(container: ContainerDep, request: Request) -> Any:
    checks: dict[str, str] = {}
    try:
        await container.database.ping()
        checks["database"] = "ok"
    except Exception:
        checks["database"] = "unavailable"
    if container.uses_redis:
        checks["redis"] = "ok" if await container.redis_ready() else "unavailable"
    failing = [name for name, state in checks.items() if state != "ok"]
    if failing:
        return http_problem(
            503,
            f"Not ready: {', '.join(failing)} not answering.",
            request_id_of(request),
            extra={"checks": checks},
        )
    return {"status": "ok", **checks}


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(container: ContainerDep) -> Response:
    return Response(container.metrics.render(), media_type=METRICS_CONTENT_TYPE)


@router.get("/.well-known/jwks.json", summary="Public keys that verify access tokens")
async def jwks(container: ContainerDep, response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = "public, max-age=300"
    return container.key_ring.jwks()

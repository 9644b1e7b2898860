"""``CallerOnlyRoute``: the hot path's route class, and what it refuses to route."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response

from accounts.http.app import create_app
from accounts.http.dependencies import PrincipalDep, get_principal
from accounts.http.routing import CallerOnlyRoute
from accounts.settings import Settings


async def caller_only(principal: PrincipalDep) -> Response:
    return Response(str(principal.user.id))


def test_an_endpoint_taking_only_the_principal_is_routed() -> None:
    router = APIRouter()

    router.add_api_route("/me", caller_only, methods=["GET"], route_class_override=CallerOnlyRoute)

    assert isinstance(router.routes[0], CallerOnlyRoute)


async def with_a_query(principal: PrincipalDep, verbose: bool = False) -> Response:
    return Response()


async def with_the_request(principal: PrincipalDep, request: Request) -> Response:
    return Response()


async def something_else() -> str:
    return "x"


async def with_another_dependency(
    principal: PrincipalDep, other: Annotated[str, Depends(something_else)]
) -> Response:
    return Response()


async def without_the_principal() -> Response:
    return Response()


async def returning_a_model(principal: PrincipalDep) -> dict[str, str]:
    return {}


def synchronous(principal: PrincipalDep) -> Response:
    return Response()


@pytest.mark.parametrize(
    "endpoint",
    [
        with_a_query,
        with_the_request,
        with_another_dependency,
        without_the_principal,
        synchronous,
        returning_a_model,
    ],
    ids=["query", "request", "dependency", "no-principal", "sync", "not-a-response"],
)
def test_an_endpoint_with_any_other_input_is_refused_when_declared(endpoint: Any) -> None:
    router = APIRouter()

    with pytest.raises(TypeError, match="takes the principal and nothing else"):
        router.add_api_route("/me", endpoint, methods=["GET"], route_class_override=CallerOnlyRoute)


def test_route_level_dependencies_are_refused_too() -> None:
    router = APIRouter()

    with pytest.raises(TypeError, match="takes the principal and nothing else"):
        router.add_api_route(
            "/me",
            caller_only,
            methods=["GET"],
            dependencies=[Depends(something_else)],
            route_class_override=CallerOnlyRoute,
        )


def test_the_callers_own_read_is_documented_as_before(tmp_path: Any) -> None:
    """The route class changes how a request is handled, not the contract: the
    operation keeps its bearer security, its 401 and its response schema."""
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/a.db"))

    operation = app.openapi()["paths"]["/api/v1/users/me"]["get"]

    assert operation["security"] == [{"OAuth2PasswordBearer": []}]
    assert {"200", "401"} <= operation["responses"].keys()
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/UserRead"
    }


def caller_only_app(**include: Any) -> FastAPI:
    router = APIRouter()
    router.add_api_route("/me", caller_only, methods=["GET"], route_class_override=CallerOnlyRoute)
    app = FastAPI()
    app.include_router(router, **include)
    return app


async def get(app: FastAPI) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get("/me", headers={"Authorization": "Bearer x"})


async def refuse() -> None:
    raise HTTPException(status_code=418, detail="the router's own guard ran")


async def test_dependencies_added_where_the_router_is_included_still_run() -> None:
    app = caller_only_app(dependencies=[Depends(refuse)])

    response = await get(app)

    assert response.status_code == 418
    assert response.json() == {"detail": "the router's own guard ran"}


class Caller:
    class user:
        id = "overridden-caller"


async def test_an_override_of_the_principal_is_honoured() -> None:
    app = caller_only_app()

    async def override() -> Caller:
        return Caller()

    app.dependency_overrides[get_principal] = override

    response = await get(app)

    assert response.status_code == 200
    assert response.text == "overridden-caller"

"""app.protocols: one object per protocol, and the catalog that says which owns a path."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, Request, Response

from app.auth import Access
from app.main import PROTOCOLS, create_app
from app.protocols import Protocols, rest
from app.protocols.protocol import ServingProtocol, direct


@pytest.mark.parametrize(
    ("path", "owner"),
    [
        ("/forecast", "rest"),
        ("/jobs/abc", "rest"),
        ("/nowhere", "rest"),
        ("/v2/forecast", "timegpt"),
        ("/v2/models", "timegpt"),
        ("/v2/finetuned_models/a/b", "timegpt"),
        ("/v2/models/stats", "oip"),
        ("/v2/models/m/infer", "oip"),
        ("/v2/anything-else", "oip"),
        ("/v2", "oip"),
        ("/metrics", "operations"),
        ("/docs", "operations"),
        ("/docs-assets/swagger-ui.css", "operations"),
    ],
)
def test_each_path_has_one_owner_whatever_order_the_protocols_are_listed_in(path: str, owner: str) -> None:
    reversed_order = Protocols(*reversed(PROTOCOLS.served), fallback=rest.PROTOCOL)
    assert PROTOCOLS.owner(path).name == owner
    assert reversed_order.owner(path).name == owner


def test_a_route_claimed_by_two_protocols_is_refused_at_startup() -> None:
    router = APIRouter()

    @router.get("/forecast")
    async def clash() -> dict[str, str]:
        return {}

    other = ServingProtocol("other", (router,), rest.error_body)
    with pytest.raises(ValueError, match="/forecast is claimed by two protocols"):
        Protocols(rest.PROTOCOL, other, fallback=rest.PROTOCOL)


@pytest.mark.parametrize(
    ("method", "path", "access"),
    [
        ("GET", "/v2/health/live", Access.OPEN),
        ("GET", "/v2/health/ready", Access.OPEN),
        ("POST", "/v2/repository/models/m/load", Access.CONTROL),
        ("POST", "/v2/repository/models/m/unload", Access.CONTROL),
        ("GET", "/v2/repository/models/m/load", Access.API_KEY),
        ("POST", "/jobs", Access.ADMIN),
        ("DELETE", "/jobs/j1", Access.ADMIN),
        ("GET", "/metrics", Access.METRICS),
        ("GET", "/openapi.json", Access.OPEN),
        ("POST", "/forecast", Access.API_KEY),
        ("POST", "/v2/finetune", Access.API_KEY),
        ("GET", "/unknown", Access.API_KEY),
    ],
)
def test_access_is_the_owning_protocols_rule(method: str, path: str, access: Access) -> None:
    assert PROTOCOLS.access(method, path) is access


def test_direct_routes_are_derived_from_the_routers_and_registered_once() -> None:
    direct_routes = {(r.method, r.template) for r in PROTOCOLS.direct_routes}
    assert direct_routes == {
        ("POST", "/forecast"),
        ("POST", "/streams/{stream_id}/points"),
        ("POST", "/v2/models/{name}/infer"),
        ("POST", "/v2/models/{name}/versions/{version}/infer"),
    }
    templates = [route.path for protocol in PROTOCOLS.served for route in protocol.routes]
    schema = create_app().openapi()["paths"]
    for method, template in direct_routes:
        assert templates.count(template) == 1
        assert method.lower() in schema[template]


def test_a_direct_route_calls_its_handler_not_the_declared_endpoint() -> None:
    async def handler(request: Request) -> Response:
        return Response("direct")

    router = APIRouter()

    @router.post("/things/{thing}")
    @direct(handler)
    async def declared(thing: str, request: Request) -> Response:
        return Response("router")

    (route,) = ServingProtocol("things", (router,), rest.error_body).direct_routes
    assert (route.method, route.template, route.endpoint) == ("POST", "/things/{thing}", handler)
    assert route.pattern.match("/things/a") and not route.pattern.match("/things/a/b")


def test_decode_cost_reads_the_binary_tensor_header_only_on_oip_paths() -> None:
    body = b'{"inputs": []}' + b"\x00" * 100_000
    headers = {"content-type": "application/octet-stream", "inference-header-content-length": "14"}
    oip_cost = PROTOCOLS.decode_cost("/v2/models/m/infer", body, headers)
    rest_cost = PROTOCOLS.decode_cost("/forecast", body, headers)
    assert oip_cost != rest_cost

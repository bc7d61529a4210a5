"""A serving protocol as one object: its routes, the paths it owns, and how a request on them is guarded, charged
and refused. The middleware, the key check and the error mapping ask the protocol instead of matching paths."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.routing import compile_path

from app import admission
from app.auth import Access

Endpoint = Callable[[Request], Awaitable[Response]]
F = TypeVar("F", bound=Callable[..., Any])
DIRECT = "__gatecast_direct__"


class Problem(Protocol):
    @property
    def code(self) -> str: ...

    @property
    def message(self) -> str: ...


def direct(handler: Endpoint | None = None) -> Callable[[F], F]:
    """Mark a route to be served by the middleware itself, without FastAPI's router: it calls `handler` (the
    endpoint itself when None), which reads its own body and takes no dependencies. The route stays registered
    once, on its router, which gives it its schema and its path parameters."""

    def mark(endpoint: F) -> F:
        setattr(endpoint, DIRECT, handler or endpoint)
        return endpoint

    return mark


@dataclass(frozen=True)
class DirectRoute:
    method: str
    template: str  # "/v2/models/{name}/infer"
    endpoint: Endpoint

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        return compile_path(self.template)[0]


def key_everywhere(method: str, path: str) -> Access:
    return Access.API_KEY


def decode_cost(body: bytes, headers: Mapping[str, str]) -> int:
    """The memory decoding `body` will take, from its media type (app.admission)."""
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    return admission.decode_cost(body, media)


@dataclass(frozen=True)
class ServingProtocol:
    name: str
    routers: tuple[APIRouter, ...]
    error_body: Callable[[Problem], dict[str, Any]]  # an error's JSON body on this protocol's paths
    prefixes: tuple[str, ...] = ()  # paths it owns beyond its routes: its 404s answer in its shape
    paths: frozenset[str] = frozenset()  # exact paths it owns that no router of its serves (FastAPI's docs)
    access: Callable[[str, str], Access] = key_everywhere  # (method, path) -> what the caller must present
    decode_cost: Callable[[bytes, Mapping[str, str]], int] = decode_cost
    bodies: tuple[type[BaseModel], ...] = ()  # what its direct routes read themselves, for the OpenAPI schema

    @functools.cached_property
    def routes(self) -> tuple[APIRoute, ...]:
        return tuple(route for router in self.routers for route in router.routes if isinstance(route, APIRoute))

    @functools.cached_property
    def direct_routes(self) -> tuple[DirectRoute, ...]:
        return tuple(
            DirectRoute(method, route.path, getattr(route.endpoint, DIRECT))
            for route in self.routes
            if hasattr(route.endpoint, DIRECT)
            for method in sorted(route.methods or ())
        )

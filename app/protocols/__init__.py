"""The serving protocols, one object each (app.protocols.protocol.ServingProtocol):

    rest        gatecast's own API: /forecast (JSON and CSV), /cross_validation, /anomalies, streams, models, jobs
    timegpt     Nixtla's TimeGPT API, as the `nixtla` client sends it
    oip         the Open Inference Protocol v2 over HTTP (its gRPC server: app.protocols.oip.grpc_server)
    operations  /metrics and the API's docs

`Protocols` says which one owns a path: the one with a route for it, else the longest prefix one declares.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter
from starlette.routing import compile_path

from app.auth import Access
from app.protocols.protocol import DirectRoute, Problem, ServingProtocol


class Protocols:
    def __init__(self, *served: ServingProtocol, fallback: ServingProtocol) -> None:
        """`fallback` owns the paths no protocol claims (gatecast's own 404s)."""
        self.served = served
        self.fallback = fallback
        self._static: dict[str, ServingProtocol] = {}
        templated: dict[str, ServingProtocol] = {}
        for protocol in served:
            for path in [route.path for route in protocol.routes] + sorted(protocol.paths):
                table = templated if "{" in path else self._static
                other = table.setdefault(path, protocol)
                if other is not protocol:
                    raise ValueError(f"{path} is claimed by two protocols: {other.name} and {protocol.name}")
        # The most literal template first: /v2/models/stats is not a model named "stats".
        self._templated = [
            (compile_path(path)[0], protocol)
            for path, protocol in sorted(templated.items(), key=lambda item: -len(re.sub(r"{[^}]*}", "", item[0])))
        ]
        self._prefixes = sorted(
            ((prefix, protocol) for protocol in served for prefix in protocol.prefixes), key=lambda p: -len(p[0])
        )
        self.owner = functools.lru_cache(maxsize=4096)(self._owner)

    def _owner(self, path: str) -> ServingProtocol:
        found = self._static.get(path)
        if found is not None:
            return found
        for pattern, protocol in self._templated:
            if pattern.match(path):
                return protocol
        for prefix, protocol in self._prefixes:
            if path.startswith(prefix):
                return protocol
        return self.fallback

    @property
    def routers(self) -> list[APIRouter]:
        return [router for protocol in self.served for router in protocol.routers]

    @property
    def direct_routes(self) -> list[DirectRoute]:
        return [route for protocol in self.served for route in protocol.direct_routes]

    def access(self, method: str, path: str) -> Access:
        return self.owner(path).access(method, path)

    def error_body(self, problem: Problem, path: str) -> dict[str, Any]:
        return self.owner(path).error_body(problem)

    def decode_cost(self, path: str, body: bytes, headers: Mapping[str, str]) -> int:
        return self.owner(path).decode_cost(body, headers)

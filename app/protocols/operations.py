"""The operator's routes: Prometheus metrics, and the API's docs (FastAPI's own routes, served offline)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app import metrics
from app.auth import Access
from app.protocols import rest
from app.protocols.protocol import ServingProtocol

DOCS_ASSETS = "/docs-assets"  # Swagger UI's and ReDoc's files, served from the package (open, like the docs)
DOCS = frozenset({"/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request) -> Response:
    body, content_type = metrics.render(request.headers.get("accept", ""))
    return Response(body, media_type=content_type)


def access(method: str, path: str) -> Access:
    return Access.METRICS if path == "/metrics" else Access.OPEN


PROTOCOL = ServingProtocol(
    "operations", (router,), rest.error_body, prefixes=(DOCS_ASSETS + "/",), paths=DOCS, access=access
)

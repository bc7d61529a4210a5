"""Compressed request bodies (Content-Encoding zstd or gzip, stacked or not), inflated with a hard output bound. More:
docs/design.md#appencoding.
"""

from __future__ import annotations

import io
import zlib

import zstandard

from app.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, shown

ACCEPTED = ("zstd", "gzip")
GZIP_MAGIC = b"\x1f\x8b"
MAX_LAYERS = 4  # codings stacked on one body; more is not a client, it is a probe


def codings(header: str) -> list[str]:
    """The codings of a Content-Encoding header, in the order they were applied; 415 naming one not read here."""
    found = [c.strip().lower() for c in header.split(",") if c.strip()]
    found = [c for c in found if c != "identity"]
    for coding in found:
        if coding not in ACCEPTED:
            raise UnsupportedMediaType(
                f"Content-Encoding {shown(coding)} is not read here; send the body uncompressed, or as zstd or gzip"
            )
    if len(found) > MAX_LAYERS:
        raise UnsupportedMediaType(f"Content-Encoding stacks {len(found)} codings; send at most {MAX_LAYERS}")
    return found


def check(header: str) -> None:
    """Refuse, from the headers alone, an encoding that is not read here."""
    codings(header)


def inflate(body: bytes, header: str, limit: int) -> bytes:
    """`body` decompressed; PayloadTooLarge past `limit` bytes, BadRequest when it is not what the header says."""
    for coding in reversed(codings(header)):
        body = _zstd(body, limit) if coding == "zstd" else _gzip(body, limit)
        if len(body) > limit:
            raise PayloadTooLarge(
                f"the body inflates to more than {limit} bytes (GATECAST_MAX_BODY_BYTES); send fewer or shorter series"
            )
    return body


def _zstd(body: bytes, limit: int) -> bytes:
    try:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body), read_across_frames=True) as reader:
            out: bytes = reader.read(limit + 1)
    except zstandard.ZstdError as exc:
        raise BadRequest(f"the body is not valid zstd ({exc}); send it as Content-Encoding declares") from None
    return out


def _gzip(body: bytes, limit: int) -> bytes:
    parts: list[bytes] = []
    size, rest = 0, body
    while True:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            part = inflater.decompress(rest, limit + 1 - size)
        except zlib.error as exc:
            raise BadRequest(f"the body is not valid gzip ({exc}); send it as Content-Encoding declares") from None
        parts.append(part)
        size += len(part)
        if size > limit:
            break
        if not inflater.eof:
            raise BadRequest("the gzip body ends early; send the whole stream")
        rest = inflater.unused_data
        if not rest:
            break
        if not rest.startswith(GZIP_MAGIC):
            raise BadRequest(
                f"the gzip body has {len(rest)} bytes after its last member; send the compressed stream alone"
            )
    return parts[0] if len(parts) == 1 else b"".join(parts)

"""Compressed request bodies (Content-Encoding zstd or gzip), inflated with a hard output bound.

The nixtla client compresses every body over 1 MB with zstd and cannot be told not to. A small compressed
body can expand to gigabytes, so inflation stops one byte past GATECAST_MAX_BODY_BYTES and answers 413: the
limit holds for what the routes read, not for what crossed the wire.
"""

from __future__ import annotations

import io
import zlib

import zstandard

from app.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

ACCEPTED = ("zstd", "gzip")


def check(encoding: str) -> None:
    """Refuse, from the headers alone, an encoding that is not read here."""
    if encoding not in ("", "identity", *ACCEPTED):
        raise UnsupportedMediaType(
            f"Content-Encoding {encoding!r} is not read here; send the body uncompressed, or as zstd or gzip"
        )


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """`body` decompressed; PayloadTooLarge past `limit` bytes, BadRequest when it is not valid `encoding`."""
    if encoding == "zstd":
        try:
            with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body), read_across_frames=True) as reader:
                out: bytes = reader.read(limit + 1)
        except zstandard.ZstdError as exc:
            raise BadRequest(f"the body is not valid zstd ({exc}); send it as Content-Encoding declares") from None
    elif encoding == "gzip":
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            raise BadRequest(f"the body is not valid gzip ({exc}); send it as Content-Encoding declares") from None
        if len(out) <= limit and not inflater.eof:
            raise BadRequest("the gzip body ends early; send the whole stream")
    else:
        return body
    if len(out) > limit:
        raise PayloadTooLarge(
            f"the body inflates to more than {limit} bytes (GATECAST_MAX_BODY_BYTES); send fewer or shorter series"
        )
    return out

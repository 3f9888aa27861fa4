"""The HTTP server's own limit on request headers: 431 over ``limits.max_header_bytes``.

An ASGI middleware sees a request only once the server has read every header, so the limit
lives in the server's protocol: uvicorn's httptools protocol, counting the bytes received while
the request line and headers are still coming. Past the limit it answers 431 (Request Header
Fields Too Large, naming the limit) and closes the connection, having read at most one socket
read past the limit, never the whole header. The limit is read when `tier-router serve` starts
(a reload does not change it).
"""

from __future__ import annotations

import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeaderLimitProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a bound on the request line and headers together."""

    max_header_bytes = 65_536

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._in_headers = True  # between a message's first byte and its headers' end

    def data_received(self, data: bytes) -> None:
        room = self.max_header_bytes - self._header_bytes
        if not self._in_headers or len(data) <= room:
            if self._in_headers:
                self._header_bytes += len(data)
            super().data_received(data)
            return
        # past the limit if the headers go on: parse up to it, and the rest only if they ended
        super().data_received(data[:room])
        if self._in_headers:
            self._too_large()
        elif not self.transport.is_closing():
            super().data_received(data[room:])

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._header_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_headers = True

    def _too_large(self) -> None:
        limit = self.max_header_bytes
        body = json.dumps({"error": "request header fields too large", "detail": [{
            "field": "headers", "limit": limit,
            "message": f"the request line and headers exceed the limit of {limit} bytes "
                       "(limits.max_header_bytes)"}]}).encode()
        self.transport.write(b"".join([
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n", body]))
        self.transport.close()
        self._in_headers = False  # nothing more is read from this connection


def header_limited(max_header_bytes: int) -> type[HeaderLimitProtocol]:
    """The protocol class for `uvicorn.run(http=...)` with this limit."""
    return type("HeaderLimitProtocol", (HeaderLimitProtocol,),
                {"max_header_bytes": max_header_bytes})

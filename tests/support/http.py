"""JSON over HTTP to a server on loopback (a web process, a container, a port-forward): one
request, never through a proxy; an HTTP error status is returned, not raised."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from email.message import Message
from typing import NamedTuple

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Response(NamedTuple):
    status: int
    headers: Message
    body: bytes

    @property
    def json(self):
        """The body parsed as JSON (None for an empty body); a body that is not JSON raises."""
        return json.loads(self.body) if self.body else None

    @property
    def data(self):
        """The body parsed as JSON where it is JSON (None for an empty body), else the raw bytes."""
        try:
            return self.json
        except ValueError:
            return self.body


def request_json(
    method: str,
    url: str,
    body: object = None,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> Response:
    """`body` (unless None) is sent as JSON with Content-Type: application/json."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with _DIRECT.open(request, timeout=timeout) as response:
            return Response(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        return Response(exc.code, exc.headers, exc.read())

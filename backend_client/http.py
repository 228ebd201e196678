"""HTTP to a backend on 127.0.0.1: one request, and server-sent events parsed as they arrive."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def error(self) -> dict[str, Any]:
        """The ``{"error": {...}}`` body of a failed request (empty when there is none)."""
        try:
            data = self.json()
        except ValueError:
            return {}
        return data.get("error", {}) if isinstance(data, dict) else {}

    def summary(self, limit: int = 300) -> str:
        return f"{self.status} {self.body[:limit].decode('utf-8', 'replace')}"


def http_request(
    port: int, method: str, path: str, body: Any = None, *, token: str | None = None, timeout: float = 60.0,
    headers: Mapping[str, str] | None = None, raw_body: bytes | None = None,
) -> Response:
    """One request to a backend on 127.0.0.1: JSON ``body`` (or ``raw_body``), bearer ``token`` if given."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        sent_headers = {"Host": f"127.0.0.1:{port}", **(headers or {})}
        if token is not None:
            sent_headers["Authorization"] = f"Bearer {token}"
        payload = raw_body
        if body is not None:
            payload = json.dumps(body).encode()
            sent_headers["Content-Type"] = "application/json"
        connection.request(method, path, body=payload, headers=sent_headers)
        response = connection.getresponse()
        return Response(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


def iter_sse(lines: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    """Events of a server-sent-event stream, as ``{"id"?, "event"?, "data"}`` dicts, as they complete."""
    entry: dict[str, Any] = {}
    data_lines: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data_lines:
                entry["data"] = json.loads("\n".join(data_lines))
                yield entry
            entry, data_lines = {}, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data_lines.append(value)
        elif name in ("id", "event"):
            entry[name] = value
    if data_lines:
        entry["data"] = json.loads("\n".join(data_lines))
        yield entry


def parse_sse(text: str) -> list[dict[str, Any]]:
    return list(iter_sse(iter(line.encode() + b"\n" for line in text.replace("\r\n", "\n").split("\n"))))


def open_stream(
    port: int, method: str, path: str, body: Any = None, *, token: str | None = None, timeout: float = 120.0,
    headers: Mapping[str, str] | None = None,
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """Start a request whose answer is read as it arrives (SSE); the caller closes the connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    sent_headers = {"Host": f"127.0.0.1:{port}", "Accept": "text/event-stream", **(headers or {})}
    if token is not None:
        sent_headers["Authorization"] = f"Bearer {token}"
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        sent_headers["Content-Type"] = "application/json"
    connection.request(method, path, body=payload, headers=sent_headers)
    return connection, connection.getresponse()

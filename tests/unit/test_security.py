"""Host header check (DNS rebinding) and CORS allowlist."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.security import host_allowed, host_name
from backend.settings import Settings


@pytest.mark.parametrize(("header", "name"), [
    ("127.0.0.1:8000", "127.0.0.1"), ("localhost", "localhost"), ("LOCALHOST:1", "localhost"),
    ("[::1]:9000", "::1"), ("[::1]", "::1"), ("evil.example:80", "evil.example"), ("::1", "::1"),
])
def test_host_name(header: str, name: str) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize(("header", "allowed"), [
    ("127.0.0.1:5000", True), ("localhost:5000", True), ("[::1]:5000", True),
    ("evil.example", False), ("127.0.0.1.evil.example", False), ("localhost.evil.example:80", False),
    ("0.0.0.0:5000", False), (None, False), ("", False),
])
def test_host_allowed(header: str | None, allowed: bool) -> None:
    assert host_allowed(header) is allowed


def test_rebinding_host_rejected_everywhere(client: TestClient) -> None:
    for path in ("/health", "/api/jobs"):
        response = client.get(path, headers={"Host": "attacker.example"})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "bad_host"


def test_cors_only_for_allowlisted_origins(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, token="x" * 20, cors_origins=("http://localhost:5173",)))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        preflight = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
        allowed = client.options("/api/jobs", headers={"Origin": "http://localhost:5173", **preflight})
        assert allowed.headers.get("access-control-allow-origin") == "http://localhost:5173"
        denied = client.options("/api/jobs", headers={"Origin": "http://evil.example", **preflight})
        assert "access-control-allow-origin" not in denied.headers


def test_no_cors_headers_without_allowlist(client: TestClient) -> None:
    response = client.get("/health", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in response.headers

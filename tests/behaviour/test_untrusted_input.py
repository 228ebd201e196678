"""Untrusted input costs nothing before authentication, every read is bounded, names are safe on every
OS, error bodies stay small, and no answer tells what another file holds. Each case here was found
from outside against the built standalone (issue 27)."""

from __future__ import annotations

import http.client
import json
import os
import threading
from pathlib import Path

import pytest

from backend_client.manager import BackendProcess
from tests.support import TINY_MODEL, RunningBackends, Target
from tests.support.probes import sampled_rss

MEMORY_BOUND_MIB = 16


@pytest.fixture
def server(backends: RunningBackends) -> BackendProcess:
    _, process = backends.start()
    return process


def post_raw(port: int, path: str, body: bytes, headers: dict[str, str]) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("POST", path, body=body, headers={"Host": f"127.0.0.1:{port}", **headers})
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return 0  # the connection broke before an answer
    finally:
        connection.close()


def test_a_body_without_a_token_is_refused_before_it_is_parsed(server: BackendProcess) -> None:
    assert server.ready is not None
    answer = server.request("POST", "/api/jobs", auth=False, raw_body=b"{not json",
                            headers={"Content-Type": "application/json"})
    assert answer.status == 401, answer.summary()


def test_four_huge_bodies_without_a_token_cost_no_memory(server: BackendProcess) -> None:
    assert server.ready is not None
    port = server.ready.port
    body = b'{"model": "' + b"x" * (200 << 20) + b'"}'
    statuses: list[int] = []
    with sampled_rss(server.server_pid) as rss:
        threads = [threading.Thread(target=lambda: statuses.append(post_raw(
            port, "/api/jobs", body, {"Content-Type": "application/json"}))) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
    print(f"four 200 MiB bodies without a token: {statuses}, the server grew by {rss.growth_mib:.1f} MiB")
    assert statuses == [401] * 4, statuses
    assert rss.growth_mib < MEMORY_BOUND_MIB, f"the server grew by {rss.growth_mib:.0f} MiB"


def test_a_huge_prompt_with_a_token_is_refused_by_its_size_before_it_is_read(server: BackendProcess) -> None:
    assert server.ready is not None
    body = json.dumps({"model": TINY_MODEL, "prompt": "x" * (200 << 20)}).encode()
    with sampled_rss(server.server_pid) as rss:
        status = post_raw(server.ready.port, "/api/generate", body, {
            "Content-Type": "application/json", "Authorization": f"Bearer {server.ready.token}"})
    assert status == 413
    assert rss.growth_mib < MEMORY_BOUND_MIB, f"the server grew by {rss.growth_mib:.0f} MiB"


def biggest_file(root: Path) -> Path:
    return max((p for p in root.rglob("*") if p.is_file() and not p.is_symlink()), key=lambda p: p.stat().st_size)


def test_hashing_bundle_files_is_bounded(server: BackendProcess, target: Target) -> None:
    """A large library named three times, from eight clients at once: hashed in chunks."""
    assert server.ready is not None
    bundle = Path(server.request("POST", "/api/system/bundle-files", {"paths": ["x"]}).json()["root"])
    large = biggest_file(bundle / ("ml_sidecar" if (bundle / "ml_sidecar").is_dir() else "backend"))
    relative = str(large.relative_to(bundle))
    statuses: list[int] = []
    with sampled_rss(server.server_pid) as rss:
        threads = [threading.Thread(target=lambda: statuses.append(server.request(
            "POST", "/api/system/bundle-files", {"paths": [relative] * 3}, timeout=300).status)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
    assert statuses == [200] * 8
    assert rss.growth_mib < MEMORY_BOUND_MIB, f"hashing {large.stat().st_size >> 20} MiB grew the server by " \
                                              f"{rss.growth_mib:.0f} MiB"


def test_a_fifo_in_the_bundle_is_reported_not_read(server: BackendProcess, target: Target) -> None:
    if target.variant.onefile:
        pytest.skip("a onefile's bundle is its unpack folder, shared by every start of it")
    bundle = Path(server.request("POST", "/api/system/bundle-files", {"paths": ["x"]}).json()["root"])
    fifo = bundle / "backend" / "resources" / "test-fifo"
    os.mkfifo(fifo)
    try:
        answer = server.request("POST", "/api/system/bundle-files", {"paths": ["backend/resources/test-fifo"]},
                                timeout=20)
    finally:
        fifo.unlink()
    assert answer.status == 200 and answer.json()["files"][0]["error"] == "not a regular file"


def test_a_sparse_gigabyte_config_is_refused_without_reading_it(server: BackendProcess, tmp_path: Path) -> None:
    folder = tmp_path / "sparse"
    folder.mkdir()
    with (folder / "config.json").open("wb") as handle:
        handle.truncate(1 << 30)
    with sampled_rss(server.server_pid) as rss:
        answer = server.request("POST", "/api/models", {"name": "sparse", "path": str(folder)})
    assert answer.status == 404 and "is not a model folder" in answer.json()["error"]["message"]
    assert rss.growth_mib < MEMORY_BOUND_MIB, f"the server grew by {rss.growth_mib:.0f} MiB"


def test_no_answer_tells_what_another_file_holds(server: BackendProcess, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "config.json").write_text(json.dumps({"model_type": "SECRET-VALUE-FROM-FILE"}))
    binary = tmp_path / "binary"
    binary.mkdir()
    (binary / "config.json").write_bytes(b"\xff\xfeSECRET")
    answers = {}
    for name, folder in (("missing", tmp_path / "missing"), ("empty", tmp_path), ("secret", secret),
                         ("binary", binary)):
        response = server.request("POST", "/api/models", {"name": "probe", "path": str(folder)}, timeout=300)
        assert response.status in (404, 409), response.summary()  # no model folder; one it cannot train
        assert "SECRET" not in response.body.decode(), response.summary()
        answers[name] = response.json()["error"]["message"].replace(str(folder), "PATH")
    assert answers["missing"] == answers["empty"] == answers["binary"], answers


@pytest.mark.parametrize("name", ["d" * 59, "d" * 64, "Data.set_1-v2"])
def test_every_name_the_rule_allows_is_accepted(server: BackendProcess, name: str) -> None:
    answer = server.request("POST", f"/api/datasets?name={name}", raw_body=b'{"text": "x"}\n')
    assert answer.status == 201, answer.summary()


@pytest.mark.parametrize("name", ["COM0", "lpt0", "CON", "nul.txt", "Aux.jsonl", "COM9.x", "name.", "a..b", "d" * 65])
def test_names_unsafe_on_some_os_are_refused_before_the_body(server: BackendProcess, name: str) -> None:
    answer = server.request("POST", f"/api/datasets?name={name}", raw_body=b'{"text": "x"}\n')
    assert answer.status == 422 and answer.json()["error"]["field"] == "name", answer.summary()


def test_names_that_differ_only_by_case_are_one_name(server: BackendProcess) -> None:
    assert server.request("POST", "/api/datasets?name=CaseName", raw_body=b'{"text": "x"}\n').status == 201
    again = server.request("POST", "/api/datasets?name=casename", raw_body=b'{"text": "x"}\n')
    assert again.status == 409 and "only by case" in again.json()["error"]["message"]


def test_an_error_lists_a_few_allowed_values_and_where_the_rest_are(server: BackendProcess) -> None:
    for index in range(12):
        assert server.request("POST", f"/api/datasets?name=set-{index:02d}", raw_body=b'{"text": "x"}\n').status == 201
    error = server.request("GET", "/api/datasets/absent").json()["error"]
    assert len(error["allowed"]) == 10 and error["allowed_total"] == 13
    assert error["allowed_listed_at"] == "/api/datasets"

"""Hostile and careless clients: generations left behind, a stream nobody reads, a flood of idle
connections, a large upload. Whatever they do, the cheap routes answer, abandoned work stops, and the
log stays small.

The documented bounds (docs/user-guide/protocol.md, "Limits"): ``/health`` answers within 1 s
whatever the load; a generation whose client left stops at its next token; a streamed reader that
stalls holds the model at most 10 s after its last read, plus one token. The tests assert each with a
margin that holds on a loaded 2-core machine."""

from __future__ import annotations

import json
import re
import select
import socket
import threading
import time
from pathlib import Path

from backend_client.manager import BackendProcess
from tests.support import TINY_MODEL, RunningBackends
from tests.support.probes import probing_health

LONG = {"model": TINY_MODEL, "prompt": "Count to a thousand.", "max_new_tokens": 4096}
HEALTH_BOUND_S = 3.0  # documented: 1 s; the margin is for a loaded 2-core machine
STALL_BOUND_S = 30.0  # documented: 10 s after the last read, plus one token
MAX_WAITING = 4  # Settings.max_waiting_generations


def raw_request(server: BackendProcess, body: dict, *, receive_buffer: int | None = None) -> socket.socket:
    """A POST /api/generate sent over a plain socket that the test then reads from, or abandons."""
    assert server.ready is not None
    client = socket.socket()
    if receive_buffer:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    client.connect(("127.0.0.1", server.ready.port))
    payload = json.dumps(body).encode()
    client.sendall(b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   + f"Authorization: Bearer {server.ready.token}\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
                   + payload)
    return client


def first_answers(clients: list[socket.socket], *, expected: int, within_s: float) -> dict[int, bytes]:
    """What each client has received (its status line and headers), until ``expected`` have an answer."""
    answers: dict[int, bytes] = {}
    deadline = time.monotonic() + within_s
    while len(answers) < expected and time.monotonic() < deadline:
        waiting = [c for c in clients if c.fileno() not in answers]
        ready, _, _ = select.select(waiting, [], [], 0.1)
        for client in ready:
            answers[client.fileno()] = client.recv(512)
    return answers


def short_generation_takes(server: BackendProcess, timeout: float = 120) -> float:
    started = time.perf_counter()
    answer = server.request("POST", "/api/generate", {"model": TINY_MODEL, "prompt": "hi", "max_new_tokens": 4},
                            timeout=timeout)
    assert answer.status == 200, answer.summary()
    return time.perf_counter() - started


def test_generations_whose_clients_left_are_cancelled_and_health_always_answers(backends: RunningBackends) -> None:
    _, server = backends.start()
    assert server.ready is not None
    short_generation_takes(server)  # the model is loaded: what follows measures generation, not loading
    clients: list[socket.socket] = []
    with probing_health(server.ready.port) as probe:
        for _ in range(45):
            clients.append(raw_request(server, LONG))
        answers = first_answers(clients, expected=45 - 1 - MAX_WAITING, within_s=15.0)
        for client in clients:  # then every client leaves, answered or not
            client.close()
        took = short_generation_takes(server)
        time.sleep(1.0)
    print(f"flood of 45 long generations: /health {len(probe.latencies)} probes, {probe.failures} failed, "
          f"p50 {probe.percentile(0.5) * 1000:.0f} ms, p99 {probe.percentile(0.99) * 1000:.0f} ms, "
          f"worst {probe.worst * 1000:.0f} ms; the next generation after {took:.2f}s")
    assert probe.failures == 0, f"/health failed {probe.failures} of {len(probe.latencies)} probes"
    assert probe.worst < HEALTH_BOUND_S, f"/health took {probe.worst:.2f}s under the flood"
    busy = [answer for answer in answers.values() if answer.startswith(b"HTTP/1.1 429")]
    done = [answer for answer in answers.values() if answer.startswith(b"HTTP/1.1 200")]
    # one runs, MAX_WAITING wait, the rest are told to retry; each generation that finished during the
    # flood let one more in
    assert len(busy) >= 45 - 1 - MAX_WAITING - len(done), f"{len(busy)} told to retry, {len(done)} done: {answers}"
    assert all(b"retry-after:" in answer.lower() for answer in busy)
    waited = [int(match) for answer in busy for match in re.findall(rb'"(\d+) requests already wait', answer)]
    assert max(waited, default=0) <= MAX_WAITING, f"the queue held {max(waited)} of {MAX_WAITING}"
    assert took < STALL_BOUND_S, f"the next generation waited {took:.1f}s behind abandoned ones"


def test_a_non_streamed_generation_whose_client_leaves_frees_the_model(backends: RunningBackends) -> None:
    _, server = backends.start()
    short_generation_takes(server)
    client = raw_request(server, LONG)
    time.sleep(1.0)
    client.close()
    took = short_generation_takes(server)
    assert took < STALL_BOUND_S, f"the next generation waited {took:.1f}s behind one whose client left"


def test_a_stream_nobody_reads_holds_the_model_for_a_bounded_time(backends: RunningBackends) -> None:
    """A client that reads the first token of a 4,096-token stream and then stops reading (the socket
    fills): the model is free again within the stall bound, and the stream's end, read once the reader
    comes back, says that the stall stopped it: a generation that merely ran to its end in time does not
    pass (that was the case before the send buffers were bounded: 57 s on a loaded CI machine)."""
    _, server = backends.start()
    short_generation_takes(server)
    stalled = raw_request(server, {**LONG, "stream": True}, receive_buffer=4096)
    try:
        stalled.settimeout(60)
        received = b""
        while b"event: token" not in received:  # the first token, then it stops reading
            chunk = stalled.recv(4096)
            assert chunk, f"the stream closed before its first token: {received[:300]!r}"
            received += chunk
        took = short_generation_takes(server, timeout=STALL_BOUND_S + 60)
        print(f"a stalled reader held the model for {took:.1f}s after its first token")
        assert took < STALL_BOUND_S, f"a stalled reader held the model for {took:.1f}s"
        marker = b"event: done\ndata: "
        while marker not in received or b"\n\n" not in received.split(marker, 1)[1]:  # the reader comes back:
            chunk = stalled.recv(65536)  # the stream's done event says why the generation ended
            assert chunk, f"the stream closed without its done event: {received[-300:]!r}"
            received += chunk
        done = json.loads(received.split(marker, 1)[1].split(b"\n", 1)[0])
        assert done["stopped"] == "stalled", (f"the generation was not stopped for its stalled reader: it ended "
                                              f"{done['stopped']!r} after {len(done['text'])} characters")
    finally:
        stalled.close()
    events = server.iter_events("/api/generate", method="POST", body={**LONG, "stream": True})
    assert next(events)["event"] == "token"
    events.close()  # the app's stop button: the connection closes mid-stream
    streamed = server.stream_events("/api/generate", method="POST", body={
        "model": TINY_MODEL, "prompt": "hi", "max_new_tokens": 4, "stream": True}, timeout=60)
    assert streamed[-1]["event"] == "done"


def test_a_flood_of_idle_connections_neither_silences_the_server_nor_floods_its_log(backends: RunningBackends) -> None:
    """1,100 connections that send nothing, against a server started with the 1,024-descriptor soft limit
    of a desktop session: /health and an upload still get through, and stderr stays small."""
    _, server = backends.start(prefix=("prlimit", "--nofile=1024:4096", "--"))
    assert server.ready is not None
    before = Path(server.stderr_path).stat().st_size
    idle: list[socket.socket] = []
    try:
        with probing_health(server.ready.port, interval_s=0.2) as probe:
            for _ in range(1100):
                try:
                    idle.append(socket.create_connection(("127.0.0.1", server.ready.port), timeout=5))
                except OSError:
                    break
            upload = server.request("POST", "/api/datasets?name=during-flood", raw_body=b'{"text": "x"}\n' * 100)
            time.sleep(3.0)
        print(f"{len(idle)} idle connections: /health p99 {probe.percentile(0.99) * 1000:.0f} ms, "
              f"worst {probe.worst * 1000:.0f} ms, {probe.failures} failed")
        assert upload.status == 201, upload.summary()
        assert probe.failures == 0 and probe.worst < HEALTH_BOUND_S, (probe.failures, probe.worst)
    finally:
        for connection in idle:
            connection.close()
    growth = Path(server.stderr_path).stat().st_size - before
    print(f"stderr grew by {growth / 1024:.1f} KiB")
    assert growth < 1 << 20, f"stderr grew by {growth / 2**20:.1f} MiB"


def test_health_answers_during_a_large_upload(backends: RunningBackends) -> None:
    """Validating an upload runs in a worker thread, never on the event loop."""
    _, server = backends.start()
    assert server.ready is not None
    record = json.dumps({"messages": [{"role": "user", "content": "q " * 40},
                                      {"role": "assistant", "content": "a " * 40}]}).encode() + b"\n"
    body = record * (48_000_000 // len(record))
    done: list[int] = []
    with probing_health(server.ready.port, interval_s=0.05) as probe:
        thread = threading.Thread(target=lambda: done.append(server.request(
            "POST", "/api/datasets?name=large", raw_body=body, timeout=300).status))
        thread.start()
        thread.join(300)
    print(f"during a {len(body) / 2**20:.0f} MiB upload: /health p99 {probe.percentile(0.99) * 1000:.0f} ms, "
          f"worst {probe.worst * 1000:.0f} ms")
    assert done == [201]
    # the documented bound itself: the validation thread gives the GIL up every few lines (measured worst
    # 18-32 ms here; 1.3-2.3 s when it held the GIL for each switch interval)
    assert probe.failures == 0 and probe.percentile(0.99) < 1.0, (probe.failures, probe.worst)


def test_health_answers_while_many_subscribers_follow_a_training_job(backends: RunningBackends) -> None:
    """100 clients follow one training job's event stream to its end: every one gets every step, and
    /health keeps answering (the stream reads the store in a thread, never on the event loop)."""
    from tests.support.jobs_api import create_job

    _, server = backends.start()
    assert server.ready is not None
    job = create_job(server, max_steps=40, checkpoint_every=0)
    steps: list[int] = []
    lock = threading.Lock()

    def follow() -> None:
        events = server.stream_events(f"/api/jobs/{job['id']}/events", timeout=600)
        with lock:
            steps.append(sum(1 for event in events if event["event"] == "step"))

    followers = [threading.Thread(target=follow) for _ in range(100)]
    with probing_health(server.ready.port, interval_s=0.05) as probe:
        for follower in followers:
            follower.start()
        for follower in followers:
            follower.join(600)
    print(f"100 subscribers to a 40-step job: /health {len(probe.latencies)} probes, p50 "
          f"{probe.percentile(0.5) * 1000:.0f} ms, p99 {probe.percentile(0.99) * 1000:.0f} ms, "
          f"worst {probe.worst * 1000:.0f} ms")
    assert steps == [40] * 100, f"step events per subscriber: {sorted(set(steps))}"
    assert probe.failures == 0 and probe.percentile(0.99) < HEALTH_BOUND_S, (probe.failures, probe.worst)

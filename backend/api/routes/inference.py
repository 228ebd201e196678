"""``POST /api/generate``: text from a model with an optional adapter, whole or streamed (SSE).

A generation waits for the model on the event loop (:class:`backend.services.admission.Admission`: a
bounded queue, 429 beyond it) and runs in a thread of its own, so no number of generations can take the
threads that other routes need. Whether streamed or not, a client that disconnects cancels its
generation at the next token (or leaves the queue, if it was waiting), and a streamed reader that stops
reading is cancelled within :data:`backend.services.admission.STALL_S`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from backend.api.deps import InferenceDep, ServicesDep
from backend.api.documented import errors, ok
from backend.api.offload import read
from backend.schemas import GenerateRequest
from backend.services.admission import ClientGone, Ticket, TokenChannel
from backend.services.inference import GenerationRequest, resolve_generation

router = APIRouter(prefix="/api", tags=["inference"])
log = logging.getLogger(__name__)
CLIENT_CLOSED = 499  # never seen by anyone: the client is gone


async def disconnected(request: Request) -> None:
    """Returns when the client disconnects (the request's body has been read already)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def in_thread(work: Callable[[], Any], ticket: Ticket, done: Callable[[Any, BaseException | None], None]) -> None:
    """Run ``work`` in a thread of its own (not a pooled one); the ticket is released whatever happens."""

    def run() -> None:
        result, error = None, None
        try:
            result = work()
        except BaseException as exc:  # reported to the request, never lost in this thread
            error = exc
        finally:
            ticket.release()
            done(result, error)

    threading.Thread(target=run, name="generate", daemon=True).start()


@router.post("/generate", response_model=None, responses={
    **ok("Generation", description="The generated text; with `\"stream\": true`, server-sent `token` events, "
                                   "then `done` (or `error`)", streams=True),
    **errors(400, 404, 409, 413, 422, 429, 507),
})
async def generate(body: GenerateRequest, request: Request, inference: InferenceDep, services: ServicesDep) -> Any:
    generation = resolve_generation(body.model_dump(exclude_none=True), services.resources.defaults["generation"])
    await read(request, inference.check, generation)  # bad references fail as 400 before anything waits
    try:
        ticket = await services.admission.enter(gone=lambda: disconnected(request))
    except ClientGone:
        return Response(status_code=CLIENT_CLOSED)
    cancel = threading.Event()
    if body.stream:
        return await stream(generation, inference, ticket, cancel)
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[Any] = loop.create_future()

    def done(result: Any, error: BaseException | None) -> None:
        def settle() -> None:
            if not finished.done():
                finished.set_exception(error) if error is not None else finished.set_result(result)
        loop.call_soon_threadsafe(settle)

    in_thread(lambda: inference.run(generation, cancel), ticket, done)
    watcher = asyncio.ensure_future(disconnected(request))
    try:
        await asyncio.wait({finished, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not finished.done():  # the client left: stop at the next token; nobody reads an answer
        cancel.set()
        return Response(status_code=CLIENT_CLOSED)
    return finished.result()


async def stream(generation: GenerationRequest, inference: InferenceDep, ticket: Ticket,
                 cancel: threading.Event) -> StreamingResponse:
    loop = asyncio.get_running_loop()
    channel = TokenChannel(loop, cancel)

    def done(result: Any, error: BaseException | None) -> None:
        channel.close(error)

    in_thread(lambda: inference.run(generation, cancel, channel), ticket, done)
    try:
        first = await channel.get()  # a failure to load (507, a bad folder) is still a status, not an event
    except BaseException:
        cancel.set()
        raise

    async def events() -> AsyncIterator[str]:
        pieces: list[str] = []
        piece = first
        try:
            while piece is not None:
                pieces.append(piece)
                yield f"id: {len(pieces)}\nevent: token\ndata: {json.dumps({'text': piece})}\n\n"
                piece = await channel.get()
        except Exception as exc:  # the 200 is sent already: end the stream with an event saying why
            log.exception("streamed generation failed")
            error = {"code": "internal", "message": f"generation failed ({type(exc).__name__}); see the log"}
            yield f"event: error\ndata: {json.dumps(error)}\n\n"
            return
        finally:
            cancel.set()  # a reader that stops early (closed, or an error) stops the generation too
        data = {"text": "".join(pieces), "stopped": "stalled" if channel.stalled else "done"}
        yield f"event: done\ndata: {json.dumps(data)}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

"""``POST /api/generate``: text from a model with an optional adapter, whole or streamed (SSE)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from backend.api.deps import InferenceDep
from backend.api.documented import errors, ok
from backend.schemas import GenerateRequest
from backend.services.inference import GenerationRequest

router = APIRouter(prefix="/api", tags=["inference"])
log = logging.getLogger(__name__)


@router.post("/generate", response_model=None, responses={
    **ok("Generation", description="The generated text; with `\"stream\": true`, server-sent `token` events, "
                                   "then `done` (or `error`)", streams=True),
    **errors(400, 422),
})
async def generate(body: GenerateRequest, request: Request, inference: InferenceDep) -> Any:
    defaults = request.app.state.services.resources.defaults["generation"]
    generation = GenerationRequest(
        model=body.model, adapter=body.adapter, prompt=body.prompt, input=body.input, raw=body.raw,
        max_new_tokens=body.max_new_tokens or defaults["max_new_tokens"],
        temperature=defaults["temperature"] if body.temperature is None else body.temperature,
        seed=body.seed,
    )
    inference.check(generation)  # bad references fail as 400 before any streaming starts
    if not body.stream:
        return await run_in_threadpool(inference.generate, generation)

    async def events() -> AsyncIterator[str]:
        # Each piece is awaited from a thread, so that a client that goes away (Starlette then cancels
        # this generator at its await) sets ``cancel`` here, which stops the generation and frees the model.
        cancel = threading.Event()
        pieces: list[str] = []
        tokens = inference.stream(generation, cancel)
        try:
            while (piece := await run_in_threadpool(next, tokens, None)) is not None:
                pieces.append(piece)
                yield f"id: {len(pieces)}\nevent: token\ndata: {json.dumps({'text': piece})}\n\n"
        except Exception as exc:  # the 200 is sent already: end the stream with an event saying why
            log.exception("streamed generation failed")
            error = {"code": "internal", "message": f"generation failed ({type(exc).__name__}); see the log"}
            yield f"event: error\ndata: {json.dumps(error)}\n\n"
            return
        finally:
            cancel.set()
        yield f"event: done\ndata: {json.dumps({'text': ''.join(pieces)})}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

"""The generation queue's bound (:class:`backend.services.admission.Admission`): at most ``max_waiting``
requests wait for the model, whatever the instant they arrive at."""

from __future__ import annotations

import asyncio

import pytest

from backend.errors import Busy
from backend.services.admission import Admission


def test_no_more_than_max_waiting_wait_even_while_the_model_changes_hands() -> None:
    async def scenario() -> list[str]:
        admission = Admission(max_waiting=2)
        running = await admission.enter()
        waiters = [asyncio.ensure_future(admission.enter()) for _ in range(2)]
        await asyncio.sleep(0)  # both are queued now
        outcomes = []
        running.release()  # the lock is free until the first waiter's acquire runs
        try:
            async with asyncio.timeout(1.0):  # awaited inline: it checks the bound before any other task runs
                ticket = await admission.enter()
            ticket.release()
            outcomes.append("admitted")
        except Busy as busy:
            outcomes.append(str(busy))
        except TimeoutError:
            outcomes.append("queued behind the others, past the bound")
        for waiter in asyncio.as_completed(waiters):  # each takes the model in turn, and gives it back
            (await waiter).release()
        return outcomes

    (outcome,) = asyncio.run(scenario())
    assert outcome.startswith("2 requests already wait"), outcome


@pytest.mark.parametrize("max_waiting", [0, 3])
def test_a_free_model_with_nobody_waiting_is_taken_at_once(max_waiting: int) -> None:
    async def scenario() -> None:
        admission = Admission(max_waiting=max_waiting)
        ticket = await asyncio.wait_for(admission.enter(), timeout=5)
        ticket.release()

    asyncio.run(scenario())

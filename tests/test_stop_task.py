"""Stopping a background task ends it even when it swallowed the first cancellation: a
service's shutdown never hangs on its sweeper or sealer.

The sweeper once caught a cancellation that arrived during a store call as an ordinary
error (logged, then a pause and another sweep), and ``async with ApprovalService`` waited
for it forever (tests/test_audit.py, about one run in ten on PostgreSQL)."""

from __future__ import annotations

import asyncio

from signoff._util import stop_task


async def test_a_task_that_swallows_a_cancellation_is_cancelled_again() -> None:
    swallowed = 0

    async def stubborn_loop() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(3600)  # a store call
            except asyncio.CancelledError:
                swallowed += 1  # taken for a failed call: logged and retried
                if swallowed > 1:
                    raise
            await asyncio.sleep(3600)  # the pause before the next round

    task = asyncio.create_task(stubborn_loop())
    await asyncio.sleep(0)
    async with asyncio.timeout(10):
        await stop_task(task)
    assert task.cancelled() and swallowed == 1


async def test_a_task_that_stops_at_once_is_waited_for_once() -> None:
    task = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    await stop_task(task)
    assert task.cancelled()
    await stop_task(None)

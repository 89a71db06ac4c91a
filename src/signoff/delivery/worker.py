"""The delivery worker: sends what the outbox holds, in every replica.

It wakes on every live event (the service's :meth:`~signoff.service.ApprovalService.follow`,
the one follow primitive: a new delivery is always written with an event) and on a timer
(retries, and leases that ran out on a replica that died). Each wake-up *claims* due
deliveries with a lease (:mod:`signoff.stores.outbox`: in order per request and channel,
one replica per delivery), then sends each in a task of its own with a timeout, so a slow
or failing channel holds up only its own deliveries: never the gate, a decision, or another
channel.

A failed attempt is retried after an exponential backoff with jitter (tenacity's
``wait_exponential_jitter``, or the receiver's ``Retry-After`` when it is longer), up to
``max_attempts``; then the delivery is kept as failed, for ``GET /v1/deliveries`` and
``signoff deliveries retry``. A refusal (:class:`DeliveryRefused`) is failed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import tenacity

from signoff._util import new_id, stop_task
from signoff.channels.base import Channel, DeliveryFailed, DeliveryRefused, Notice, NoticeType
from signoff.delivery.breaker import Breakers
from signoff.errors import SignoffError
from signoff.jsonlog import about
from signoff.service import ApprovalService
from signoff.stores.outbox import Delivery

log = logging.getLogger(__name__)

#: (channel, outcome: delivered | retry | failed, attempts so far, seconds since created)
Observe = Callable[[str, str, int, float], None]


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    #: how long a claim holds a delivery: a replica that dies holds it this long at most
    lease_s: float = 120.0
    #: the longest one send may take (the channel's own timeouts are shorter)
    send_timeout_s: float = 60.0
    #: how many deliveries one worker sends at once
    concurrency: int = 64
    #: attempts before a delivery is kept as failed
    max_attempts: int = 10
    #: the backoff: ``initial * 2**(n-1)`` seconds up to ``max``, plus up to ``jitter``
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 600.0
    backoff_jitter_s: float = 1.0
    #: the longest sleep between looks at the outbox when nothing wakes the worker
    poll_s: float = 5.0


class DeliveryWorker:
    def __init__(
        self,
        service: ApprovalService,
        channels: Mapping[str, Channel],
        options: WorkerOptions | None = None,
        *,
        observe: Observe | None = None,
    ) -> None:
        self.service = service
        self.store = service.store
        self.channels = channels
        self.options = options or WorkerOptions()
        self.observe = observe
        #: who holds this worker's leases
        self.owner = new_id("wkr")
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        opts = self.options
        self._backoff = tenacity.wait_exponential_jitter(
            multiplier=opts.backoff_initial_s, max=opts.backoff_max_s, jitter=opts.backoff_jitter_s
        )
        self._retrying = tenacity.AsyncRetrying(wait=self._backoff)
        #: channels that keep failing rest (the same backoff, per channel)
        self.breakers = Breakers(self._wait_before)

    async def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._listen(), name="signoff-delivery-wakeups"),
                asyncio.create_task(self._loop(), name="signoff-delivery-worker"),
            ]

    async def aclose(self) -> None:
        """Stop claiming; a send still running is cancelled (its lease runs out, and the
        delivery is sent again by whichever replica claims it next)."""
        for task in self._tasks:
            await stop_task(task)
        self._tasks = []
        for task in list(self._inflight):
            await stop_task(task)
        self._inflight.clear()

    def wake(self) -> None:
        self._wake.set()

    # -- the loops ------------------------------------------------------------------------

    async def _listen(self) -> None:
        async with self.service.follow() as feed:
            while True:
                if await feed.next(None) is not None:
                    self._wake.set()

    async def _loop(self) -> None:
        while True:
            claimed = 0
            try:
                claimed = await self.run_once()
                delay = await self._next_delay(claimed)
            except Exception:
                log.exception("signoff: the delivery worker failed; retrying")
                delay = self.options.poll_s
            if claimed and len(self._inflight) < self.options.concurrency:
                continue  # there may be more due right now
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for swallows a cancel that
            # lands as the event is set, and aclose then waits for this loop forever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self._wake.clear()

    async def run_once(self) -> int:
        """Claim what is due (as much as there is room for) and start sending it."""
        room = self.options.concurrency - len(self._inflight)
        if room <= 0:
            return 0
        now = self.service.now()
        until = now + timedelta(seconds=self.options.lease_s)
        skip = self.breakers.skipped()
        claimed = await self.store.claim_deliveries(self.owner, now, until, room, skip=skip)
        for channel in self.breakers.due_probes():
            if len(claimed) >= room:
                break
            probe = await self.store.claim_deliveries(self.owner, now, until, 1, only=channel)
            if probe:
                self.breakers.probing(channel)
                claimed += probe
        for delivery in claimed:
            task = asyncio.create_task(self._send(delivery), name=f"signoff-deliver-{delivery.id}")
            self._inflight.add(task)
            task.add_done_callback(self._done)
        return len(claimed)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        # the next delivery of the same request and channel may be claimable now
        self._wake.set()

    async def _next_delay(self, claimed: int) -> float:
        due = await self.store.next_delivery_due()
        probe_in = self.breakers.next_probe_in()
        if due is None:
            return self.options.poll_s if probe_in is None else min(probe_in, self.options.poll_s)
        wait = due.timestamp() - self.service.now().timestamp()
        # something due but not claimed waits behind a delivery another replica is sending,
        # or for its resting channel's next probe
        floor = 0.25 if not claimed else 0.0
        if not claimed and probe_in is not None and wait <= 0:
            floor = max(floor, probe_in)
        return min(max(wait, floor), self.options.poll_s)

    # -- one delivery ---------------------------------------------------------------------

    async def _send(self, delivery: Delivery) -> None:
        with about(delivery.request_id):  # what is logged below names the request
            await self._send_logged(delivery)

    async def _send_logged(self, delivery: Delivery) -> None:
        started = time.monotonic()
        try:
            outcome = await self._attempt(delivery)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("signoff: recording delivery %s failed", delivery.id)
            return
        finally:
            self.breakers.released(delivery.channel)
        if self.observe is not None:
            age = self.service.now().timestamp() - delivery.created_at.timestamp()
            self.observe(delivery.channel, outcome, delivery.attempts, max(age, 0.0))
        log.debug(
            "signoff: delivery %s: %s in %.3f s", delivery.id, outcome, time.monotonic() - started
        )

    async def _attempt(self, delivery: Delivery) -> str:
        channel = self.channels.get(delivery.channel)
        request = await self.store.get(delivery.request_id)
        if channel is None or request is None:
            why = (
                f"no channel named {delivery.channel!r} is configured"
                if channel is None
                else (f"request {delivery.request_id} is gone")
            )
            return await self._give_up(delivery, why)
        notice = Notice(
            delivery_id=delivery.id,
            channel=delivery.channel,
            type=NoticeType(delivery.type),
            request=request,
            at=delivery.created_at,
            step=delivery.step,
            receipts=await self.store.receipts(delivery.request_id, delivery.channel, delivery.seq),
            attempt=delivery.attempts,
        )
        try:
            async with asyncio.timeout(self.options.send_timeout_s):
                receipt = await channel.send(notice)
        except DeliveryRefused as exc:
            self.breakers.answered(delivery.channel)  # an answer: the channel is up
            return await self._give_up(delivery, exc.message)
        except DeliveryFailed as exc:
            self.breakers.failed(delivery.channel)
            return await self._retry(delivery, exc.message, exc.retry_after)
        except TimeoutError:
            self.breakers.failed(delivery.channel)
            why = f"the send took longer than {self.options.send_timeout_s:g} s"
            return await self._retry(delivery, why, None)
        except SignoffError as exc:
            self.breakers.failed(delivery.channel)
            return await self._retry(delivery, exc.message, None)
        except Exception as exc:
            # a channel's bug: logged with its traceback; only the type is kept, since an
            # exception's text may quote a URL or a secret
            log.exception("signoff: channel %r failed to send %s", delivery.channel, delivery.id)
            self.breakers.failed(delivery.channel)
            return await self._retry(delivery, f"the channel failed ({type(exc).__name__})", None)
        self.breakers.answered(delivery.channel)
        done = await self.store.finish_delivery(
            delivery.id, self.owner, self.service.now(), receipt
        )
        return "delivered" if done else "superseded"

    async def _retry(self, delivery: Delivery, why: str, retry_after: float | None) -> str:
        if delivery.attempts >= self.options.max_attempts:
            return await self._give_up(
                delivery, f"{why} (gave up after {delivery.attempts} attempts)"
            )
        wait = max(self._wait_before(delivery.attempts), retry_after or 0.0)
        retry_at = self.service.now() + timedelta(seconds=wait)
        await self.store.fail_delivery(delivery.id, self.owner, why, retry_at)
        log.info(
            "signoff: delivery %s to %s failed (%s); retrying in %.1f s",
            delivery.id,
            delivery.channel,
            why,
            wait,
        )
        return "retry"

    def _wait_before(self, attempt: int) -> float:
        """The backoff after ``attempt`` failures (tenacity's exponential with jitter)."""
        # tenacity's wait strategies read only the attempt number from the call state
        state = tenacity.RetryCallState(self._retrying, None, (), {})
        state.attempt_number = attempt
        return float(self._backoff(state))

    async def _give_up(self, delivery: Delivery, why: str) -> str:
        await self.store.fail_delivery(delivery.id, self.owner, why, None)
        log.warning(
            "signoff: delivery %s to %s failed for good: %s", delivery.id, delivery.channel, why
        )
        return "failed"

"""Delivery: the machinery between the outbox and the channels. The worker that sends what
the outbox holds (:mod:`.worker`), the escalator that fires ``escalate`` steps
(:mod:`.escalation`), and the runtime that builds the configured channels, starts them with
a context that decides through the service, and mounts their routes (:mod:`.runtime`)."""

from __future__ import annotations

from signoff.delivery.runtime import ChannelRuntime, build_channels, make_context
from signoff.delivery.worker import DeliveryWorker, WorkerOptions

__all__ = ["ChannelRuntime", "DeliveryWorker", "WorkerOptions", "build_channels", "make_context"]

"""The configured channels at run time: built from ``[channels.NAME]``, started with a
:class:`ChannelContext` that decides through the service, their inbound routes, and the
delivery worker and the escalator that feed them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from pydantic import ValidationError
from starlette.routing import BaseRoute

from signoff.audit import AuditEntry
from signoff.auth import Verifier
from signoff.channels.base import Channel, ChannelContext
from signoff.channels.registry import channel_class
from signoff.config import Config
from signoff.delivery.escalation import Escalator
from signoff.delivery.worker import DeliveryWorker, Observe, WorkerOptions
from signoff.errors import ConfigError, MissingDependency
from signoff.models import ApprovalRequest, Principal
from signoff.service import ApprovalService

log = logging.getLogger(__name__)


def build_channels(config: Config) -> dict[str, Channel]:
    """Every ``[channels.NAME]`` checked against its type's settings. A problem is a
    :class:`ConfigError` naming the file, the key and what is wrong, never the value (a
    secret's value is never quoted)."""
    where = f"{config.source}: " if config.source else ""
    channels: dict[str, Channel] = {}
    for name, table in config.channels.items():
        try:
            cls = channel_class(table.type)
        except ConfigError as exc:
            raise ConfigError(f"{where}channels.{name}.type: {exc.message}") from exc
        except MissingDependency as exc:
            raise ConfigError(f"{where}channels.{name}: {exc.message}") from exc
        try:
            settings = cls.settings_model.model_validate(dict(table.settings))
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False, include_input=False)
            first = errors[0]
            key = ".".join(str(part) for part in first["loc"])
            message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
            raise ConfigError(f"{where}channels.{name}.{key}: {message}") from exc
        channels[name] = cls(name, settings)
    return channels


def make_context(
    service: ApprovalService, verifier: Verifier, key: bytes, public_url: str
) -> ChannelContext:
    """What a channel may use: the service's decide, reads as the highest role, spent
    tokens in the store, approver tokens checked like the API's."""
    reader = Principal(sub="signoff:channels", role=service.roles.highest)

    async def get_request(request_id: str) -> ApprovalRequest:
        return await service.get(request_id, reader)

    async def verify_token(token: str) -> Principal:
        if verifier.needs_thread:
            return await asyncio.to_thread(verifier.verify, token)
        return verifier.verify(token)

    async def refused(request_id: str | None, attempted: str, why: str) -> None:
        actor = {"sub": "signoff:channels", "kind": "approver", "role": None}
        data = {"attempted": attempted, "error": "refused", "message": why}
        entry = AuditEntry("decision.refused", request_id, actor, service.now(), "channel", data)
        await service.store.append_audit(entry)

    async def pending() -> list[ApprovalRequest]:
        return await service.pending(reader)

    return ChannelContext(
        decide=service.decide,
        get_request=get_request,
        spend=service.store.spend,
        verify_token=verify_token,
        refused=refused,
        key=key,
        public_url=public_url.rstrip("/"),
        roles=service.roles,
        now=lambda: service.now().timestamp(),
        pending=pending,
    )


class ChannelRuntime:
    """The channels of one server, their worker and their escalator."""

    def __init__(
        self,
        service: ApprovalService,
        channels: Mapping[str, Channel],
        *,
        options: WorkerOptions | None = None,
        observe: Observe | None = None,
    ) -> None:
        self.service = service
        self.channels = dict(channels)
        self.worker = DeliveryWorker(service, self.channels, options, observe=observe)
        self.escalator = Escalator(service)
        self._started: list[Channel] = []

    def routes(self) -> list[BaseRoute]:
        return [route for channel in self.channels.values() for route in channel.routes()]

    async def start(self, context: ChannelContext) -> None:
        """Start every channel (one that cannot connect yet is retried by its deliveries;
        one that is misconfigured stops the start), then the worker and the escalator."""
        for channel in self.channels.values():
            try:
                await channel.start(context)
            except ConfigError:
                await self.aclose()
                raise
            except Exception as exc:
                log.warning(
                    "signoff: channel %r did not start: %s", channel.name, type(exc).__name__
                )
            self._started.append(channel)
        await self.worker.start()
        await self.escalator.start()

    async def aclose(self) -> None:
        await self.escalator.aclose()
        await self.worker.aclose()
        for channel in reversed(self._started):
            try:
                await channel.aclose()
            except Exception:
                log.exception("signoff: closing channel %r failed", channel.name)
        self._started = []

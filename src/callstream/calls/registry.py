"""Admission and lookup of live calls; ties an agent leg to the caller's call by the shared UUID."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING

import structlog

from callstream.asr.batcher import AsrBatcher
from callstream.calls.leg import LegAudio
from callstream.calls.session import CallSession, SessionConfig
from callstream.events import EndReason, Event
from callstream.vad.runner import Target

if TYPE_CHECKING:
    from callstream.nlp.service import InsightsService

log = structlog.get_logger(__name__)


class Rejected(Exception):
    """A connection that cannot become (part of) a call; the socket is closed, nothing else is touched."""


class CallRegistry:
    def __init__(
        self,
        config: SessionConfig,
        batcher: AsrBatcher,
        publish: Callable[[Event], None],
        persist: Callable[[Event], None],
        *,
        max_calls: int,
        drain_timeout_s: float,
        insights: InsightsService | None = None,
        commit: Callable[[Event], Awaitable[None]] | None = None,
    ) -> None:
        self._config = config
        self._batcher = batcher
        self._publish = publish
        self._persist = persist
        self._max_calls = max_calls
        self._drain_timeout_s = drain_timeout_s
        self._insights = insights
        self._commit = commit
        self.sessions: dict[str, CallSession] = {}
        self._finishing: set[asyncio.Task[None]] = set()

    def get(self, call_id: str) -> CallSession | None:
        return self.sessions.get(call_id)

    def open_leg(self, call_id: str, leg: str, send_hangup: Callable[[], None]) -> tuple[CallSession, LegAudio]:
        session = self.sessions.get(call_id)
        if session is None:
            if len(self.sessions) >= self._max_calls:
                raise Rejected(f"at the limit of {self._max_calls} concurrent calls")
            session = CallSession(
                call_id, self._config, self._batcher, self._publish, self._persist, self._insights, self._commit
            )
            self.sessions[call_id] = session
        elif leg in session.legs:
            raise Rejected(f"call already has a {leg} leg")
        return session, session.open_leg(leg, send_hangup)

    async def close_leg(self, session: CallSession, leg: str, reason: EndReason, error: str | None) -> None:
        """End one connection: let the VAD hear its tail, then end the call if it was the last leg."""
        session.close_leg(leg, reason, error)
        await session.wait_drained(leg)
        if session.active or session.ended.is_set():
            return
        await session.finish(self._drain_timeout_s)
        self.sessions.pop(session.call_id, None)

    def vad_targets(self) -> Iterator[Target]:
        """The legs the VAD tick should hear. Pauses in their audio are filled first, so that a
        leg Asterisk has gone quiet on (DTMF) is heard as silence in this same tick."""
        for session in list(self.sessions.values()):
            session.fill_gaps()
            for name, audio in session.legs.items():
                if session.needs_vad(name):
                    yield audio, partial(session.on_vad, name)

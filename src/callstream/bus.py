"""In-process fan-out of events: publishing never waits for a subscriber."""

from __future__ import annotations

import asyncio
import collections

import structlog

from callstream.events import Event

log = structlog.get_logger(__name__)


class Subscription:
    """A bounded mailbox: when a subscriber falls behind, its oldest events are dropped and counted."""

    def __init__(self, call_id: str | None, max_events: int) -> None:
        self.call_id = call_id
        self.dropped = 0
        self._events: collections.deque[Event] = collections.deque(maxlen=max_events)
        self._ready = asyncio.Event()
        self._closed = False

    def offer(self, event: Event) -> None:
        if self.call_id is not None and event.call_id != self.call_id:
            return
        if len(self._events) == self._events.maxlen:
            self.dropped += 1
        self._events.append(event)
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    async def next_batch(self) -> list[Event]:
        """Everything queued, waiting if empty; an empty list means the subscription was closed."""
        while not self._events:
            if self._closed:
                return []
            self._ready.clear()
            await self._ready.wait()
        batch = list(self._events)
        self._events.clear()
        return batch


class EventBus:
    def __init__(self, max_events_per_subscriber: int = 1_000) -> None:
        self._subscriptions: set[Subscription] = set()
        self._max_events = max_events_per_subscriber

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)

    def subscribe(self, call_id: str | None = None) -> Subscription:
        subscription = Subscription(call_id, self._max_events)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)
        subscription.close()
        if subscription.dropped:
            log.warning("subscriber_dropped_events", dropped=subscription.dropped, call_id=subscription.call_id)

    def publish(self, event: Event) -> None:
        for subscription in self._subscriptions:
            subscription.offer(event)

    def close(self) -> None:
        for subscription in list(self._subscriptions):
            self.unsubscribe(subscription)

"""Tier 1: fan-out never waits for a subscriber; a slow one loses its oldest events, counted."""

import asyncio

from callstream.bus import EventBus
from callstream.events import CallStarted, Dtmf, SegmentFinal, decode, encode


def dtmf(call_id: str, seq: int) -> Dtmf:
    return Dtmf(call_id=call_id, seq=seq, digit="1", at=0.0, leg="caller")


async def test_slow_subscriber_drops_oldest_without_affecting_others():
    bus = EventBus(max_events_per_subscriber=3)
    slow, fast = bus.subscribe(), bus.subscribe()
    received = []
    for seq in range(1, 6):
        bus.publish(dtmf("a", seq))
        received += await fast.next_batch()
    assert [e.seq for e in received] == [1, 2, 3, 4, 5]
    assert [e.seq for e in await slow.next_batch()] == [3, 4, 5]
    assert slow.dropped == 2


async def test_per_call_subscription_filters():
    bus = EventBus()
    one = bus.subscribe("a")
    bus.publish(dtmf("b", 1))
    bus.publish(dtmf("a", 1))
    assert [e.call_id for e in await one.next_batch()] == ["a"]


async def test_closing_wakes_a_waiting_subscriber():
    bus = EventBus()
    sub = bus.subscribe()
    waiter = asyncio.create_task(sub.next_batch())
    await asyncio.sleep(0)
    bus.close()
    assert await waiter == []


def test_events_are_one_json_object_with_type():
    event = SegmentFinal(call_id="c", seq=4, start=1.0, end=2.5, text="hi", language="en", leg="agent")
    assert encode(event).startswith(b'{"type":"segment.final"')
    assert decode(encode(event)) == event
    assert decode(encode(CallStarted(call_id="c", started_at=1.0, leg="caller"))).leg == "caller"

"""The AudioSocket listener: one handler per TCP connection, moving bytes between socket and codec."""

from __future__ import annotations

import asyncio
import socket

import structlog

from callstream.audiosocket.protocol import (
    Audio,
    CallId,
    Decoder,
    Dtmf,
    Hangup,
    PeerError,
    ProtocolError,
    encode_hangup,
)
from callstream.calls.registry import CallRegistry, Rejected
from callstream.calls.session import CallSession
from callstream.events import EndReason

log = structlog.get_logger(__name__)
READ_BYTES = 65_536


class AudioSocketServer:
    def __init__(self, registry: CallRegistry, host: str, port: int, leg: str, max_payload_bytes: int) -> None:
        self._registry = registry
        self._host = host
        self._port = port
        self.leg = leg
        self._max_payload_bytes = max_payload_bytes
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._shutting_down = False

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port, limit=READ_BYTES)
        log.info("audiosocket_listening", host=self._host, port=self.port, leg=self.leg)

    async def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    async def close_connections(self, timeout_s: float) -> None:
        """Close every open call socket and wait (up to the deadline) for the handlers to end their calls."""
        self._shutting_down = True
        for writer in list(self._connections):
            writer.transport.abort()
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=timeout_s)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._connections.add(writer)
        peer = writer.get_extra_info("peername")
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await self._serve(reader, writer, peer)
        finally:
            self._connections.discard(writer)
            writer.close()
            self._handlers.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: object) -> None:
        decoder = Decoder(self._max_payload_bytes)
        session: CallSession | None = None
        reason: EndReason = "hangup"
        error: str | None = None
        try:
            while data := await reader.read(READ_BYTES):
                for message in decoder.feed(data):
                    if isinstance(message, CallId):
                        session = self._open(str(message.value), writer)
                    elif session is None:
                        raise ProtocolError("message before the call UUID")
                    elif isinstance(message, Audio):
                        session.feed_audio(self.leg, message.pcm, message.sample_rate_hz)
                    elif isinstance(message, Dtmf):
                        session.feed_dtmf(self.leg, message.digit)
                    elif isinstance(message, Hangup):
                        return await self._registry.close_leg(session, self.leg, "hangup", None)
                    elif isinstance(message, PeerError):
                        raise ProtocolError(f"peer sent an error message ({message.code.hex() or 'no code'})")
            decoder.close()
        except ProtocolError as exc:
            reason, error = "error", str(exc)
            log.warning(
                "audiosocket_protocol_error",
                peer=peer,
                leg=self.leg,
                call_id=session.call_id if session else None,
                error=error,
            )
        except Rejected as exc:
            log.warning("audiosocket_rejected", peer=peer, leg=self.leg, reason=str(exc))
            return
        except ConnectionError as exc:
            reason, error = "error", f"connection lost: {exc}"
        except Exception:
            # A bug must cost this call only: log it, end the call cleanly, keep serving the others.
            log.exception("audiosocket_internal_error", peer=peer, leg=self.leg)
            reason, error = "error", "internal error"
        if session is not None:
            if self._shutting_down:
                reason, error = "shutdown", None
            await self._registry.close_leg(session, self.leg, reason, error)

    def _open(self, call_id: str, writer: asyncio.StreamWriter) -> CallSession:
        def send_hangup() -> None:
            if not writer.is_closing():
                writer.write(encode_hangup())

        session, _ = self._registry.open_leg(call_id, self.leg, send_hangup)
        return session

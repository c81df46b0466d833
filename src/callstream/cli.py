"""The callstream command: `callstream serve [--config FILE]` and model helpers."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

import structlog

from callstream import logconfig, models, settings, systemd


async def _serve(config: settings.Settings) -> None:
    from callstream.app import start_server

    server = await start_server(config)
    systemd.notify("READY=1")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log = structlog.get_logger()
    log.info("shutting_down")
    systemd.notify("STOPPING=1")
    started = loop.time()
    await server.stop()
    log.info("stopped", shutdown_s=round(loop.time() - started, 2))


def _cmd_serve(args: argparse.Namespace) -> int:
    config = settings.load(args.config)
    logconfig.configure(config.log.level, config.log.format)
    try:
        import uvloop

        uvloop.run(_serve(config))
    except models.ModelError as exc:
        print(f"callstream: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    try:
        print(f"base\t{models.resolve_whisper('base')}")
        print(f"tiny.en\t{models.resolve_whisper('tiny.en')}")
        print(f"silero-vad\t{models.silero_vad_path()}")
    except models.ModelError as exc:
        print(f"callstream: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_play(args: argparse.Namespace) -> int:
    import uuid

    from callstream.audiosocket.player import call_messages, play, read_wav_pcm

    pcm, rate_hz = read_wav_pcm(args.wav)
    call_id = uuid.uuid4()
    print(call_id)
    asyncio.run(play(args.host, args.port, call_messages(call_id, pcm, rate_hz), speed=args.speed))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callstream", description="Live call transcription for Asterisk.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the AudioSocket listener and the HTTP/WebSocket API")
    serve.add_argument("--config", type=Path, default=None, help="TOML config (default: built-in defaults)")
    serve.set_defaults(func=_cmd_serve)
    model_cmd = sub.add_parser("models", help="assemble and verify the offline models, print their paths")
    model_cmd.set_defaults(func=_cmd_models)
    player = sub.add_parser("play", help="play a 16-bit mono WAV into an AudioSocket listener as Asterisk would")
    player.add_argument("wav", type=Path)
    player.add_argument("--host", default="127.0.0.1")
    player.add_argument("--port", type=int, default=9092)
    player.add_argument("--speed", type=float, default=1.0, help="playback speed; 1.0 is real time")
    player.set_defaults(func=_cmd_play)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except settings.SettingsError as exc:
        print(f"callstream: {exc}", file=sys.stderr)
        return 2

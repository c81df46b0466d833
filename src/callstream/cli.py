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
    structlog.get_logger().info("shutting_down")
    systemd.notify("STOPPING=1")
    await server.stop()


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="callstream", description="Live call transcription for Asterisk.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the AudioSocket listener and the HTTP/WebSocket API")
    serve.add_argument("--config", type=Path, default=None, help="TOML config (default: built-in defaults)")
    serve.set_defaults(func=_cmd_serve)
    model_cmd = sub.add_parser("models", help="assemble and verify the offline models, print their paths")
    model_cmd.set_defaults(func=_cmd_models)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except settings.SettingsError as exc:
        print(f"callstream: {exc}", file=sys.stderr)
        return 2

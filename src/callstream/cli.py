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
        print(f"spacy\t{models.spacy_model_dir()}")
        print(f"minilm\t{models.verify_minilm()}")
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


def _cmd_transcribe(args: argparse.Namespace) -> int:
    from callstream.nlp.engine import InsightsEngine
    from callstream.recordings import AudioDecodeError, decode_audio
    from callstream.recordings.output import render
    from callstream.recordings.transcribe import OfflineTranscriber

    try:
        engine = OfflineTranscriber.load(args.model)
        insights = None if args.no_insights or args.format != "json" else InsightsEngine.load()
    except models.ModelError as exc:
        print(f"callstream: {exc}", file=sys.stderr)
        return 2
    if args.output_dir:
        args.output_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in args.files:
        try:
            audio = decode_audio(path, max_duration_s=args.max_duration_min * 60)
        except AudioDecodeError as exc:
            print(f"callstream: {path}: {exc}", file=sys.stderr)
            failed += 1
            continue
        result = engine.transcribe(audio, language=args.language, translate=args.translate)
        text = render(args.format, str(path), result, _insights(insights, result) if insights else None)
        if args.output_dir:
            suffix = "txt" if args.format == "text" else args.format
            (args.output_dir / f"{path.stem}.{suffix}").write_text(text)
        else:
            sys.stdout.write(text)
    return 1 if failed else 0


def _insights(engine, result) -> dict:  # (InsightsEngine, OfflineResult): imported lazily above
    from callstream.nlp.engine import TranscriptSegment
    from callstream.nlp.service import snapshot_dict

    segments = [
        TranscriptSegment(s.start_s, s.end_s, s.leg, s.text, s.language, s.translation) for s in result.segments
    ]
    return snapshot_dict(engine.analyse(segments))


def _cmd_export_labels(args: argparse.Namespace) -> int:
    import msgspec

    from callstream.evaluation.export import ExportError, export_reviewed_calls
    from callstream.nlp import taxonomy

    config = settings.load(args.config)
    db_path = args.db or Path(config.store.path)
    try:
        tax = taxonomy.load(Path(config.nlp.taxonomy) if config.nlp.taxonomy else None)
        export = export_reviewed_calls(db_path, tax, flags_reviewed_only=args.flags_reviewed)
    except (ExportError, taxonomy.TaxonomyError) as exc:
        print(f"callstream: {exc}", file=sys.stderr)
        return 2
    lines = b"".join(msgspec.json.encode(call) + b"\n" for call in export.calls)
    if args.out:
        args.out.write_bytes(lines)
    else:
        sys.stdout.buffer.write(lines)
    for call_id, why in export.skipped:
        print(f"skipped {call_id}: {why}", file=sys.stderr)
    print(
        f"{len(export.calls)} reviewed calls exported ({export.flags_reviewed} with the risk flags reviewed),"
        f" {len(export.skipped)} skipped",
        file=sys.stderr,
    )
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
    tr = sub.add_parser("transcribe", help="transcribe recordings offline (no server): VAD, Whisper, timestamps")
    tr.add_argument("files", type=Path, nargs="+", metavar="FILE", help="audio in any common format")
    tr.add_argument("--model", default="base", help="base, tiny.en, a model directory (default: base)")
    tr.add_argument("--format", choices=("json", "text", "srt", "vtt"), default="json")
    tr.add_argument("--language", default=None, help="language code; default: detected per channel")
    tr.add_argument("--output-dir", type=Path, default=None, help="write FILE.<format> here instead of stdout")
    tr.add_argument("--translate", action="store_true", help="add an English translation of non-English speech")
    tr.add_argument("--max-duration-min", type=float, default=240.0, help="longest recording accepted (minutes)")
    tr.add_argument("--no-insights", action="store_true", help="JSON without the insights (category, risk flags...)")
    tr.set_defaults(func=_cmd_transcribe)
    export = sub.add_parser(
        "export-labels",
        help="calls agents reviewed (feedback), as labelled calls to score and train the insights on (JSON Lines)",
    )
    export.add_argument("--config", type=Path, default=None, help="TOML config whose [store] path is read")
    export.add_argument("--db", type=Path, default=None, help="the SQLite store (default: the config's)")
    export.add_argument("--out", type=Path, default=None, help="write here instead of stdout")
    export.add_argument(
        "--flags-reviewed", action="store_true", help="only calls whose feedback lists their risk flags"
    )
    export.set_defaults(func=_cmd_export_labels)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except settings.SettingsError as exc:
        print(f"callstream: {exc}", file=sys.stderr)
        return 2

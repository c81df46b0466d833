"""Tier 1: the AudioSocket codec on byte strings alone."""

import uuid
from pathlib import Path

import pytest

from callstream.audiosocket.protocol import (
    Audio,
    CallId,
    Decoder,
    Dtmf,
    Hangup,
    Kind,
    PeerError,
    ProtocolError,
    encode,
    encode_hangup,
    encode_uuid,
)

CALL = uuid.UUID("8ba8ccee-b6ad-4aaf-aa65-c460702ac95a")
ASTERISK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "asterisk"


def test_every_kind_decodes():
    stream = (
        encode_uuid(CALL)
        + encode(Kind.AUDIO_8K, b"\x01\x00" * 160)
        + encode(Kind.AUDIO_16K, b"\x02\x00" * 320)
        + encode(Kind.AUDIO_48K, b"\x00\x00" * 960)
        + encode(Kind.DTMF, b"#")
        + encode(Kind.ERROR, b"\x04")
        + encode_hangup()
    )
    messages = Decoder().feed(stream)
    assert messages == [
        CallId(CALL),
        Audio(8000, b"\x01\x00" * 160),
        Audio(16000, b"\x02\x00" * 320),
        Audio(48000, b"\x00\x00" * 960),
        Dtmf("#"),
        PeerError(b"\x04"),
        Hangup(),
    ]


@pytest.mark.parametrize(
    "kind, rate",
    [
        (0x10, 8000),
        (0x11, 12000),
        (0x12, 16000),
        (0x13, 24000),
        (0x14, 32000),
        (0x15, 44100),
        (0x16, 48000),
        (0x17, 96000),
        (0x18, 192000),
    ],
)
def test_audio_rates(kind, rate):
    [_, audio] = Decoder().feed(encode_uuid(CALL) + bytes([kind]) + b"\x00\x04" + b"\x00" * 4)
    assert audio == Audio(rate, b"\x00" * 4)


def test_any_chunking_gives_the_same_messages():
    stream = encode_uuid(CALL) + b"".join(encode(Kind.AUDIO_8K, bytes([i]) * 2 * (i + 1)) for i in range(50))
    whole = Decoder().feed(stream)
    for step in (1, 2, 3, 7, 64, 1000):
        decoder = Decoder()
        pieces = [m for i in range(0, len(stream), step) for m in decoder.feed(stream[i : i + step])]
        decoder.close()
        assert pieces == whole


def test_real_asterisk_capture_decodes_byte_exact():
    data = (ASTERISK / "app8k_dtmf.bin").read_bytes()
    messages = Decoder().feed(data)
    assert isinstance(messages[0], CallId) and str(messages[0].value) == "8ba8ccee-b6ad-4aaf-aa65-c460702ac95a"
    assert [m.digit for m in messages if isinstance(m, Dtmf)] == ["1", "2", "#"]
    assert sum(len(m.pcm) for m in messages if isinstance(m, Audio)) == 220810


@pytest.mark.parametrize(
    "stream, error",
    [
        (encode(Kind.AUDIO_8K, b"\x00" * 320), "before the call UUID"),
        (encode_uuid(CALL) + b"\x42\x00\x00", "unknown message kind 0x42"),
        (encode_uuid(CALL) + b"\x10\xff\xff", "exceeds"),
        (encode_uuid(CALL) + encode_uuid(CALL), "second UUID"),
        (encode(Kind.UUID, b"\x01" * 15), "16 bytes"),
        (encode_uuid(CALL) + encode(Kind.AUDIO_8K, b"\x00" * 3), "odd length"),
        (encode_uuid(CALL) + encode(Kind.DTMF, b"12"), "1 byte"),
    ],
)
def test_malformed_streams_raise(stream, error):
    with pytest.raises(ProtocolError, match=error):
        Decoder().feed(stream)


def test_truncated_frame_is_an_error_at_eof():
    decoder = Decoder()
    assert decoder.feed(encode_uuid(CALL) + encode(Kind.AUDIO_8K, b"\x00" * 320)[:100]) == [CallId(CALL)]
    with pytest.raises(ProtocolError, match="inside a frame"):
        decoder.close()


def test_oversized_length_is_rejected_from_the_header_alone():
    with pytest.raises(ProtocolError):
        Decoder(max_payload_bytes=1000).feed(encode_uuid(CALL) + b"\x10\x03\xe9")

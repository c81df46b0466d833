"""Post-call analysis of uploaded recordings: decode any audio file, then transcribe it offline."""

from callstream.recordings.decode import AudioDecodeError, DecodedAudio, decode_audio, inspect_audio

__all__ = ["AudioDecodeError", "DecodedAudio", "decode_audio", "inspect_audio"]

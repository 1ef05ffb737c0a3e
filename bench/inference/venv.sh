#!/usr/bin/env bash
# The venv of bench/inference (the Python reference pipeline: onnxruntime, Pillow, numpy;
# requirements.txt): prints its python.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$here/../../scripts/venv.sh" bench "$here/requirements.txt" 'import onnxruntime, PIL, numpy'

#!/usr/bin/env bash
# The fine-tuning venv (train/finetune.py): prints its python.
#
# PyTorch comes from Debian (python3-torch 1.13, python3-torchvision 0.14: CPU-only, ~1 GB with
# their libraries), not from PyPI: PyPI's Linux wheel pulls the CUDA libraries (3 GB download,
# 5.6 GB installed) on every machine, GPU or not. The venv sees Debian's packages
# (--system-site-packages, Debian's /usr/bin/python3) and adds onnx2torch, onnx and protobuf
# without dependencies, so pip never replaces Debian's torch or numpy.
#   TORCH=pypi train/venv.sh   a venv with PyPI's torch instead (CUDA, for a machine with a GPU)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ "${TORCH:-debian}" = pypi ]; then
  exec bash "$here/../scripts/venv.sh" train-pypi "torch==2.9.1 torchvision==0.24.1 numpy==2.4.6 $(grep -v '^#' "$here/requirements.txt" | tr '\n' ' ')" \
    'import torch, torchvision, onnx2torch'
fi
if ! /usr/bin/python3 -c 'import torch, torchvision' 2>/dev/null; then
  echo "train/venv.sh: installing Debian packages python3-torch python3-torchvision" >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq >&2
  $sudo apt-get install -y -qq python3-torch python3-torchvision >/dev/null
fi
PYTHON=/usr/bin/python3 VENV_FLAGS=--system-site-packages PIP_FLAGS=--no-deps \
  exec bash "$here/../scripts/venv.sh" train "$here/requirements.txt" 'import torch, torchvision, onnx2torch, onnx'

#!/usr/bin/env bash
# Everything a fresh machine needs to run the tests and the main job (run as root, or with sudo for apt).
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v apt-get >/dev/null && [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi
python3 -m pip install -q torch==2.13.0          # the CPU build; a looser pin can pull a multi-GB CUDA build
python3 -m pip install -q -e ".[test]"

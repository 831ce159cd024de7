#!/usr/bin/env bash
# Start tern with every feature on its embedded defaults (development mode: no API key needed).
# Usage: bash scripts/run.sh [tern flags...]    e.g. bash scripts/run.sh --http-listen 0.0.0.0:7880
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
# Recording runs ffmpeg as a sidecar.
ensure_packages ffmpeg:ffmpeg
cargo build --release --locked -p tern-server --bin tern
exec ./target/release/tern "$@"

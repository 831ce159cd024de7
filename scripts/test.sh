#!/usr/bin/env bash
# Run tern's whole test suite: lints, unit and scenario tests, loopback integration tests and the
# headless-browser end-to-end tests (Chromium, and Firefox with Chromium in a network namespace
# of its own, which needs root), and the recording and broadcast tests (the real ffmpeg, an
# S3-compatible server and an RTMP server, nginx with its RTMP module, that the tests start
# themselves), and the drivers of the tern/Janus comparison bench (Janus 1.1, from Debian).
# Installs what the tests need when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_packages chromium:chromium firefox-esr:firefox-esr ip:iproute2 unshare:util-linux \
  turnutils_uclient:coturn openssl:openssl ffmpeg:ffmpeg curl:curl nginx:nginx-light \
  /usr/lib/nginx/modules/ngx_rtmp_module.so:libnginx-mod-rtmp janus:janus
ensure_s3s_fs
export CHROMIUM=${CHROMIUM:-$(command -v chromium)}
cargo fmt --all --check
bash scripts/check-clock.sh
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# The fuzz targets (run them with cargo-fuzz: see fuzz/README.md) must keep compiling.
cargo check --locked --manifest-path fuzz/Cargo.toml --bins

#!/usr/bin/env bash
# Run tern's whole test suite: lints, unit and scenario tests, loopback integration tests and the
# headless-Chromium end-to-end tests. Installs what the tests need (Chromium) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_packages chromium:chromium
export CHROMIUM=${CHROMIUM:-$(command -v chromium)}
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

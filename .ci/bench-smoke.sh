#!/usr/bin/env bash
# Smoke run of the benchmark (issue 6, BENCHMARKS.md): every phase with tiny counts and 50 KB photos,
# against a debug gateway, to prove the harness still works. It fails only if a request fails or a
# figure is missing; the timings are not pass/fail and are thrown away.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
out="$(mktemp -d)/bench-smoke.json"

# The debug gateway binary (already built by `cargo test`, so usually a no-op).
cargo build --locked -p photo-gateway --bin photo-gateway
timeout 600 cargo run --locked -p photo-gateway-bench -- \
  --smoke --gateway-bin "$target/debug/photo-gateway" --out "$out"
echo "bench smoke: OK ($out)"

#!/usr/bin/env bash
# Supply-chain policy (deny.toml): licenses, banned crates, allowed sources.
# `cargo deny check advisories` needs the online RustSec database, which CI cannot reach: skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "installing cargo-deny (from crates.io; a few minutes)"
  cargo install --locked cargo-deny
fi
cargo deny --version
cargo deny check licenses bans sources

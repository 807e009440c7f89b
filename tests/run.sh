#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the real MCP peers
# (pinned by tests/peers/package-lock.json and requirements.txt), checks
# formatting and lints, then runs every unit and end-to-end test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$SECONDS
trap 'echo "==> tests/run.sh took $(( SECONDS - started )) s"' EXIT

echo "==> installing test peers (npm + PyPI, pinned)"
bash tests/peers/setup.sh

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --locked --all-targets --quiet -- -D warnings

echo "==> fuzz targets compile (cargo check; running them needs nightly, see README)"
cargo check --locked --manifest-path fuzz/Cargo.toml --bins --target-dir target --quiet

echo "==> cargo deny check licenses bans (deny.toml; advisories need GitHub, unreachable here)"
if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "    installing cargo-deny (crates.io, --locked; about 3 minutes once)"
  cargo install --locked --quiet cargo-deny@0.20.2
fi
cargo deny --log-level error check licenses bans

echo "==> cargo doc (broken intra-doc links and other doc warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps --quiet

echo "==> cargo test"
cargo test --locked --all-targets

echo "==> benchmark harness smoke run (keeps bench/ from rotting; numbers are not asserted)"
bash bench/run.sh --smoke
bash bench/replicas.sh --smoke
bash bench/tracing.sh --smoke

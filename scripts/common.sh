# Shared settings for the scripts: one persistent build directory, binaries on PATH.
# Sourced, not run.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nesa/target}"
NESA_TOOLS="${NESA_TOOLS:-$HOME/.cache/nesa/bin}"
export PATH="$CARGO_TARGET_DIR/debug:$NESA_TOOLS:$HOME/go/bin:$PATH"
export NESAD_BIN="${NESAD_BIN:-$CARGO_TARGET_DIR/debug/nesad}"
export NESA_BIN="${NESA_BIN:-$CARGO_TARGET_DIR/debug/nesa}"
COMETBFT_VERSION="v0.38.25"

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

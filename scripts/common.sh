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
# The Python environment of the external-client tests (the official `openai` client).
export NESA_PYTHON_ENV="${NESA_PYTHON_ENV:-$HOME/.cache/nesa/python}"
# The llama.cpp the benchmarks compare against: the one vendored by this llama-cpp-python release.
LLAMA_CPP_PYTHON_VERSION="0.3.36"
LLAMA_CPP_TOOLS="${LLAMA_CPP_TOOLS:-$HOME/.cache/nesa/tools/llama.cpp-$LLAMA_CPP_PYTHON_VERSION}"
# Local networks (devnet, demo, localnet, bench) hold throwaway keys and run unattended: their
# `nesa` and `nesa-node` keyrings use the plain-text `test` backend. Wallets with real funds
# keep the default `file` backend (mnemonics encrypted with a passphrase).
export NESA_KEYRING_BACKEND=test

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Background processes of the local networks (localnet, devnet): each runs in its own session
# with a pid file and a log in its home.

# is_running PIDFILE HOME: the recorded process is alive and is ours (its command line names
# HOME), so a recycled pid or a zombie never counts.
is_running() {
  local pid
  pid="$(cat "$1" 2>/dev/null)" || return 1
  [ -n "$pid" ] && ps -p "$pid" -o args= 2>/dev/null | grep -qF -- "$2"
}

# stop_process PIDFILE HOME SIGNAL: signals the process group, escalating to SIGKILL after 10 s.
stop_process() {
  local pidfile=$1 home=$2 signal=$3 pid
  if is_running "$pidfile" "$home"; then
    pid="$(cat "$pidfile")"
    kill "-$signal" -- "-$pid" 2>/dev/null || kill "-$signal" "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      is_running "$pidfile" "$home" || break
      sleep 0.1
    done
    if is_running "$pidfile" "$home"; then
      kill -KILL -- "-$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -f "$pidfile"
}

# start_process NAME HOME COMMAND...: runs COMMAND in its own session (so it outlives this
# script and `down` can signal its whole group), logging to HOME/NAME.log.
start_process() {
  local name=$1 home=$2
  shift 2
  (cd "$home" && exec setsid "$@" >>"$home/$name.log" 2>&1 </dev/null) &
  echo $! >"$home/$name.pid"
}

# ggml_cpu_flags: the CMake flags that build llama.cpp's ggml for every SIMD level this CPU has,
# but not AMX: in these VMs ggml's AMX matmul segfaults. Portable otherwise (GGML_NATIVE off).
ggml_cpu_flags() {
  local flags="-DGGML_NATIVE=OFF" feature
  for feature in avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx_vnni:AVX_VNNI avx512f:AVX512 \
    avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
    grep -qw "${feature%%:*}" /proc/cpuinfo && flags="$flags -DGGML_${feature##*:}=ON"
  done
  echo "$flags"
}

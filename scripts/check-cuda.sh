#!/usr/bin/env bash
# Build the `cuda` feature (candle's CUDA kernels and our portable backend on
# them) on a machine without a CUDA toolkit, with NVIDIA's compiler and headers
# from PyPI (tools/requirements-cuda.txt) in a venv outside the clone. Builds
# the library's test binaries and the CLI; on a machine with a GPU, run them
# with `CANDLE_COREML_TEST_DEVICE=cuda` (see README).
#
# candle links the CUDA driver, cuBLAS, cuBLASLt, cuRAND and NVRTC
# dynamically. Where those libraries are missing (no driver, no toolkit), the
# link uses stub libraries made here, as NVIDIA's toolkit does with its own
# lib/stubs: one empty function per symbol cudarc imports, under the real
# soname, so the binaries load the real libraries on a machine that has them.
#
# Environment:
#   CUDA_CACHE_DIR    venv and cargo target dir (default ${XDG_CACHE_HOME:-~/.cache}/candle-coreml/cuda)
#   CUDA_COMPUTE_CAP  GPU architecture to build for (default 90: H100/H200)
#   CUDA_CHECK_RUN    1 to also run the tests (needs a GPU and a driver for CUDA 13)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${CUDA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/candle-coreml/cuda}"
venv="$cache/venv"
log() { printf 'check-cuda: %s\n' "$*" >&2; }

if [ ! -x "$venv/bin/python" ] || ! cmp -s "$root/tools/requirements-cuda.txt" "$venv/.requirements"; then
    log "installing NVIDIA's compiler wheels into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r "$root/tools/requirements-cuda.txt"
    cp "$root/tools/requirements-cuda.txt" "$venv/.requirements"
fi
cuda_home="$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')"
[ -x "$cuda_home/bin/nvcc" ] || { log "no nvcc in $cuda_home"; exit 2; }
export CUDA_HOME="$cuda_home" NVCC="$cuda_home/bin/nvcc"
export PATH="$cuda_home/bin:$PATH"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export CARGO_TARGET_DIR="$cache/target"
"$NVCC" --version | tail -n 2 >&2

# Stub libraries for whatever the linker cannot find; LIBRARY_PATH (read by
# the cc linker driver) is not part of cargo's fingerprints, so switching
# between stubs and real libraries rebuilds nothing.
make_stubs() {
    local rlib stubs="$cache/stubs"
    rlib="$(ls -t "$CARGO_TARGET_DIR"/debug/deps/libcudarc-*.rlib 2>/dev/null | head -n1)"
    [ -n "$rlib" ] || { log "no cudarc rlib to read symbols from"; exit 2; }
    rm -rf "$stubs" && mkdir -p "$stubs"
    nm -u "$rlib" 2>/dev/null | awk '{ print $2 }' | grep -E '^(cu|nvrtc)' | sort -u >"$stubs/symbols"
    local lib soname pattern
    for spec in "cuda:libcuda.so.1:^cu[A-Z]" "cublas:libcublas.so.13:^cublas[^L]" \
        "cublasLt:libcublasLt.so.13:^cublasLt" "curand:libcurand.so.10:^curand" \
        "nvrtc:libnvrtc.so.13:^nvrtc"; do
        IFS=: read -r lib soname pattern <<<"$spec"
        grep -E "$pattern" "$stubs/symbols" | sed 's/.*/void &(void) {}/' >"$stubs/$lib.c" || true
        cc -shared -fPIC -Wl,-soname,"$soname" -o "$stubs/lib$lib.so" "$stubs/$lib.c"
    done
    ln -sf "$cuda_home/lib/libcudart.so.13" "$stubs/libcudart.so"
    log "stub libraries for $(wc -l <"$stubs/symbols") CUDA symbols in $stubs"
    export LIBRARY_PATH="$stubs${LIBRARY_PATH:+:$LIBRARY_PATH}"
}

cd "$root"
if ! ldconfig -p 2>/dev/null | grep -q 'libcublas\.so '; then
    cargo build -p candle-coreml --features cuda --lib "$@"
    make_stubs
fi
log "cargo build --features cuda (compute cap $CUDA_COMPUTE_CAP; target dir $CARGO_TARGET_DIR)"
cargo test --no-run -p candle-coreml --features cuda "$@"
cargo build -p candle-coreml-cli --features cuda "$@"
if [ "${CUDA_CHECK_RUN:-0}" = 1 ]; then
    CANDLE_COREML_TEST_DEVICE=cuda cargo test -p candle-coreml --features cuda "$@"
fi
log "ok: the cuda feature builds"

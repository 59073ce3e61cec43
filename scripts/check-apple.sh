#!/usr/bin/env bash
# Type-check and clippy-lint the crates that hold Apple code (today only
# candle-coreml, whose src/native/apple is the Core ML backend) for
# aarch64-apple-darwin on Linux, so the native backend is compiled by every CI
# run even where no Mac is at hand. Crates without Apple code are not checked
# here: their build scripts (C code for the host) would fail for Apple, and
# they add nothing the Linux build does not already check.
#
# Uses Debian's own Rust build (rustc-web, its std, std sources and clippy,
# plus the libLLVM it links), downloaded with `apt-get download` and unpacked
# with `dpkg-deb -x` into a cache folder outside the clone (nothing is
# installed on the system). The std library is built from those sources
# (-Zbuild-std, allowed by RUSTC_BOOTSTRAP=1) into a target dir in the same
# cache, so a fresh clone reuses both: the cold run (download, std and every
# dependency built for Apple) takes tens of minutes on 2 cores, a warm one
# seconds to a few minutes.
#
# Idempotent: a toolchain already unpacked is reused without touching apt.
# Extra arguments go to both cargo commands (e.g. `--offline`).
#
# Environment:
#   APPLE_CACHE_DIR      the cache (default ${XDG_CACHE_HOME:-~/.cache}/candle-coreml/apple)
#   APPLE_TOOLCHAIN_DIR  where the toolchain is unpacked (default $APPLE_CACHE_DIR/toolchain)
#   APPLE_TARGET_DIR     cargo target dir (default $APPLE_CACHE_DIR/target)
#   APPLE_CRATES         crates to check (default: candle-coreml)
#   APPLE_TARGET         target triple (default aarch64-apple-darwin)
#   APPLE_APT_UPDATE     0 to skip `apt-get update` before a first download
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${APPLE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/candle-coreml/apple}"
tc="${APPLE_TOOLCHAIN_DIR:-$cache/toolchain}"
target_dir="${APPLE_TARGET_DIR:-$cache/target}"
read -r -a crates <<<"${APPLE_CRATES:-candle-coreml}"
triple="${APPLE_TARGET:-aarch64-apple-darwin}"
stamp="$tc/.unpacked"

log() { printf 'check-apple: %s\n' "$*" >&2; }

candidate() {
    # The version apt would install for package $1 ("" when none).
    apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { print $2 }' | grep -v '^(none)$' || true
}

fetch_toolchain() {
    command -v apt-get >/dev/null || { log "apt-get not found: this script needs a Debian-based system"; exit 2; }
    if [ "${APPLE_APT_UPDATE:-1}" != 0 ]; then
        if [ "$(id -u)" = 0 ]; then
            log "apt-get update"
            apt-get update -qq >&2
        else
            log "not root: skipping apt-get update, using the package lists as they are"
        fi
    fi
    local version
    version="$(candidate rustc-web)"
    [ -n "$version" ] || { log "no candidate for rustc-web (Debian bookworm-security or later needed)"; exit 2; }
    # 1.96.0+dfsg1-1~deb12u2 -> 1.96
    local short="${version%%+*}"
    short="${short%.*}"
    local std="libstd-rust-web-$short"
    # The libLLVM that rustc's driver library links (e.g. libllvm22).
    local llvm
    llvm="$(apt-cache show "$std=$version" | awk -F': ' '/^Depends:/ { print $2; exit }' \
        | tr ',' '\n' | sed -n 's/^ *\(libllvm[0-9][0-9]*\).*/\1/p' | head -n1)"
    [ -n "$llvm" ] || { log "cannot find the libLLVM that $std=$version depends on"; exit 2; }
    local llvm_version
    llvm_version="$(candidate "$llvm")"
    log "downloading rustc-web $version ($std, $llvm $llvm_version)"
    local debs="$tc.debs"
    rm -rf "$debs" "$tc"
    mkdir -p "$debs" "$tc"
    # apt's sandbox user cannot write into root-owned folders; let it.
    chmod 0777 "$debs" 2>/dev/null || true
    (cd "$debs" && apt-get download -q \
        "rustc-web=$version" "$std=$version" "libstd-rust-web-dev=$version" \
        "rust-web-src=$version" "rust-web-clippy=$version" "$llvm=$llvm_version" >&2)
    for deb in "$debs"/*.deb; do
        dpkg-deb -x "$deb" "$tc"
    done
    rm -rf "$debs"
    echo "$version" >"$stamp"
}

if [ ! -f "$stamp" ] || [ ! -x "$tc/usr/bin/rustc" ]; then
    fetch_toolchain
else
    log "reusing rustc-web $(cat "$stamp") in $tc"
fi

export RUSTC="$tc/usr/bin/rustc"
export LD_LIBRARY_PATH="$tc/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$target_dir"
# The rustup proxies must not pick another toolchain for us.
unset RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER RUSTUP_TOOLCHAIN
"$RUSTC" --version >&2
[ -d "$("$RUSTC" --print sysroot)/lib/rustlib/src/rust/library/std" ] \
    || { log "std sources missing from the unpacked toolchain; delete $tc and rerun"; exit 2; }

cd "$root"
packages=()
for c in "${crates[@]}"; do packages+=(-p "$c"); done
common=(-Zbuild-std=std,panic_abort --target "$triple" "${packages[@]}" --all-targets --ignore-rust-version --keep-going)

log "cargo check --target $triple (${crates[*]}; target dir $target_dir)"
cargo check "${common[@]}" "$@"

# `cargo clippy` would run rustup's cargo-clippy and its clippy-driver, built
# for another rustc; run Debian's clippy-driver as the workspace wrapper, with
# the lint flags passed the way cargo-clippy passes them.
log "clippy --target $triple (-D warnings)"
RUSTC_WORKSPACE_WRAPPER="$tc/usr/bin/clippy-driver" \
CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__" \
    cargo check "${common[@]}" "$@"
log "ok: ${crates[*]}: type-check and clippy clean for $triple"

#!/usr/bin/env bash
# Build the Rust side of the tasker-pgmq interop tests:
#   * tasker_listener  (tests/interop/tasker_listener, uses tasker-pgmq =0.1.3)
#   * tasker-pgmq-cli  (the crate's own binary, via `cargo install`)
# Both go to a cache outside the repository and are reused on later runs.
#
# Usage: tests/interop/build.sh
# Env:   PGMQ_CODEGEN_CACHE  cache root (default: ~/.cache/pgmq-codegen)
# Last two lines of output (machine-readable):
#   TASKER_LISTENER=/abs/path
#   TASKER_PGMQ_CLI=/abs/path
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${PGMQ_CODEGEN_CACHE:-$HOME/.cache/pgmq-codegen}"
tasker_version="0.1.3"
install_root="$cache/tasker-pgmq"

log() { printf '[interop/build] %s\n' "$*" >&2; }
die() { printf '[interop/build] ERROR: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 || die "cargo not found on PATH (install Rust: https://rustup.rs)"

mkdir -p "$cache"
# One target dir for both builds: the listener's Cargo.lock is seeded from the
# lock that tasker-pgmq publishes, and `cargo install --locked` uses that same
# lock, so the dependency artifacts are compiled once and shared.
export CARGO_TARGET_DIR="$cache/interop-target"
# tasker-pgmq uses sqlx::query! macros. With DATABASE_URL set they would check
# their SQL against that database at compile time; the crate ships offline
# query data (.sqlx/), so build from that, whatever the environment holds.
unset DATABASE_URL
export SQLX_OFFLINE=true

start=$SECONDS
log "cargo: $(cargo --version)"
log "target dir: $CARGO_TARGET_DIR"

log "building tasker_listener (release, --locked) ..."
cargo build --release --locked \
    --manifest-path "$here/tasker_listener/Cargo.toml" \
    || die "tasker_listener build failed"
listener="$CARGO_TARGET_DIR/release/tasker_listener"
[[ -x "$listener" ]] || die "build reported success but $listener is missing"

cli="$install_root/bin/tasker-pgmq-cli"
log "installing tasker-pgmq $tasker_version (tasker-pgmq-cli) into $install_root ..."
# Idempotent: cargo install does nothing when this exact version is installed.
cargo install tasker-pgmq --version "=$tasker_version" --locked --root "$install_root" \
    || die "cargo install tasker-pgmq $tasker_version failed"
[[ -x "$cli" ]] || die "cargo install reported success but $cli is missing"

# Smoke checks: both binaries start and are the expected ones.
"$listener" --help >/dev/null || die "$listener --help failed"
cli_version="$("$cli" --version)" || die "$cli --version failed"
[[ "$cli_version" == *"$tasker_version"* ]] || die "unexpected tasker-pgmq-cli version: $cli_version"

log "done in $((SECONDS - start))s"
log "tasker_listener: $listener"
log "tasker-pgmq-cli: $cli ($cli_version)"
echo "TASKER_LISTENER=$listener"
echo "TASKER_PGMQ_CLI=$cli"

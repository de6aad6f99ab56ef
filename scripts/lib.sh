# Shared set-up for Lanyard's scripts: sourced, not run.
#
# Everything expensive is cached outside the clone, under $LANYARD_CACHE
# (default ~/.cache/lanyard), so a fresh clone on the same machine reuses it:
#   target/        cargo's target directory (./target in the clone links here)
#   kube/<ver>/    Kubernetes binaries built from source (later issues)
#   dex/<hash>/    Dex, the tests' OpenID Connect provider (scripts/dex)
#   schemathesis/<hash>/  schemathesis, the OpenAPI fuzzer (scripts/schemathesis-deps)
set -euo pipefail

LANYARD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LANYARD_CACHE=${LANYARD_CACHE:-$HOME/.cache/lanyard}
export LANYARD_ROOT LANYARD_CACHE
mkdir -p "$LANYARD_CACHE/target"

# ./target is a link to the cached target directory, so that spin.toml's
# `source = "target/..."` paths hold both for `spin build` and for our scripts.
if [ ! -e "$LANYARD_ROOT/target" ] && [ ! -L "$LANYARD_ROOT/target" ]; then
  ln -s "$LANYARD_CACHE/target" "$LANYARD_ROOT/target"
fi
unset CARGO_TARGET_DIR

log() { printf '==> %s\n' "$*" >&2; }

# The wasm32-wasip2 target for the components.
ensure_wasm_target() {
  if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    log "installing the wasm32-wasip2 Rust target"
    rustup target add wasm32-wasip2
  fi
}

# rustfmt and clippy, which the test command runs (in rustup's default profile,
# but a minimal toolchain lacks them).
ensure_lint_tools() {
  local missing=()
  cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
  cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing the Rust components ${missing[*]}"
    rustup component add "${missing[@]}"
  fi
}

# Every component crate under functions/ (all but the shared glue library).
component_packages() {
  local dir
  for dir in "$LANYARD_ROOT"/functions/*/; do
    [ "$(basename "$dir")" = glue ] && continue
    printf -- '-p fn-%s ' "$(basename "$dir")"
  done
}

build_wasm() {
  ensure_wasm_target
  log "building the Wasm components (release, wasm32-wasip2)"
  # shellcheck disable=SC2046
  (cd "$LANYARD_ROOT" && cargo build --quiet --target wasm32-wasip2 --release $(component_packages) "$@")
}

# The native crates (core, host, CLI, agent and the test suites), as one package
# selection that every script builds the same way: `cargo test`'s build, with
# the dev-dependencies. Cargo unifies a dependency's features over the packages
# and targets of one invocation, so a narrower build (`cargo build -p
# lanyard-host -p lanyard-cli`, `cargo run -p <one crate>`) would pick another
# feature set and compile wasmtime, cranelift and kube-rs a second time. With
# this one selection `scripts/test`, `scripts/run`, `scripts/build` and the
# benchmarks share one build of everything.
native_packages=(--workspace --exclude 'fn-*' --exclude host-fixture)

# Builds the native crates (their binaries land in target/debug, the examples
# in target/debug/examples) without running a test.
build_native() {
  log "building the native crates (host, CLI, agent, tests; one feature set)"
  (cd "$LANYARD_ROOT" && cargo test --quiet --no-run "${native_packages[@]}" "$@")
}

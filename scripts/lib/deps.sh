# shellcheck shell=bash
# Idempotent dependency installation for scripts/test. Sourced, not executed.
# Expects APT_PACKAGES, PIP_PACKAGES, LENS_TEST_CACHE, VENV_DIR from the caller.

apt_pkg_installed() {
    dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'
}

ensure_apt_packages() {
    local pkg missing=()
    for pkg in "$@"; do
        apt_pkg_installed "$pkg" || missing+=("$pkg")
    done
    if (( ${#missing[@]} == 0 )); then
        log "apt: all present (${*})"
        return 0
    fi
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install manually: ${missing[*]}"
    log "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get -o DPkg::Lock::Timeout=300 update -q \
        || die "apt-get update failed"
    as_root apt-get -o DPkg::Lock::Timeout=300 install -y -q "${missing[@]}" </dev/null \
        || die "apt-get install failed: ${missing[*]}"
    for pkg in "${missing[@]}"; do
        apt_pkg_installed "$pkg" || die "apt package still missing after install: $pkg"
    done
}

# The stamp records what the venv was built from; when it matches, pip is not
# run at all (repeat runs take milliseconds).
pip_stamp_content() {
    printf 'python=%s\n' "$("$1" -c 'import sys; print(sys.version.split()[0])')"
    printf '%s\n' "${PIP_PACKAGES[@]}" | LC_ALL=C sort
}

ensure_venv() {
    local py=${LENS_TEST_PYTHON:-python3}
    command -v "$py" >/dev/null 2>&1 || die "$py not found"
    local stamp="$VENV_DIR/.lens-test-stamp"
    if [[ -x $VENV_DIR/bin/python && -f $stamp ]] \
        && "$VENV_DIR/bin/python" -c '' 2>/dev/null \
        && [[ "$(pip_stamp_content "$VENV_DIR/bin/python")" == "$(cat "$stamp")" ]]; then
        log "pip: venv up to date ($VENV_DIR)"
        return 0
    fi
    if ! [[ -x $VENV_DIR/bin/python ]] || ! "$VENV_DIR/bin/python" -m pip --version >/dev/null 2>&1; then
        log "pip: creating venv $VENV_DIR"
        rm -rf "$VENV_DIR"
        mkdir -p "$(dirname "$VENV_DIR")"
        "$py" -m venv "$VENV_DIR" \
            || die "'$py -m venv' failed (on Debian: apt-get install python3-venv)"
    fi
    log "pip: installing ${PIP_PACKAGES[*]}"
    "$VENV_DIR/bin/python" -m pip install -q --disable-pip-version-check "${PIP_PACKAGES[@]}" \
        || die "pip install failed: ${PIP_PACKAGES[*]}"
    pip_stamp_content "$VENV_DIR/bin/python" > "$stamp"
}

# Rust toolchain pieces the steps use. They cannot be downloaded on CI (no
# access to the rustup server), so this only checks and explains.
check_rust_tools() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found on PATH"
    cargo fmt --version >/dev/null 2>&1 \
        || die "rustfmt missing (rustup component add rustfmt)"
    if [[ ${QUICK:-0} != 1 ]]; then
        cargo clippy --version >/dev/null 2>&1 \
            || die "clippy missing (rustup component add clippy)"
    fi
    if cargo nextest --version >/dev/null 2>&1; then
        log "cargo-nextest: $(cargo nextest --version 2>/dev/null | head -n1)"
    else
        log "cargo-nextest not found; tests will run with 'cargo test'"
    fi
}

# npm packages of the browser tests (tests/browser/package-lock.json), installed with `npm ci`
# into tests/browser/node_modules; skipped when the lock file has not changed since.
ensure_npm_packages() {
    local dir="$REPO_ROOT/tests/browser"
    command -v node >/dev/null 2>&1 || die "node not found (Node.js 20 or later; on Debian: apt-get install nodejs npm)"
    command -v npm >/dev/null 2>&1 || die "npm not found (on Debian: apt-get install npm)"
    local stamp="$dir/node_modules/.lens-test-stamp" want
    want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
    if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
        log "npm: tests/browser up to date"
        return 0
    fi
    log "npm: installing tests/browser (npm ci)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed in tests/browser"
    printf '%s\n' "$want" > "$stamp"
}

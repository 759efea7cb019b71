# shellcheck shell=bash
# End-to-end checks against a real `lens serve`. Sourced, not executed.
#
# step_e2e builds the binary, starts one server, runs every function named in
# E2E_CHECKS in order (each gets the base URL in $LENS_E2E_URL and may use
# $E2E_TMP for scratch files), then stops the server. To add a check: write a
# function e2e_check_<name> below and append it to E2E_CHECKS.

E2E_CHECKS=(
    e2e_check_openapi
)

E2E_BASE_PORT=${LENS_TEST_HTTP_PORT:-58080}
E2E_BOOTSTRAP_EMAIL=admin@example.com
E2E_BOOTSTRAP_PASSWORD='Admin-Pass-2026!'
E2E_TMP=""
E2E_PID=""
LENS_E2E_URL=""

e2e_start_server() {
    local bin="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/lens"
    [[ -x $bin ]] || die "server binary not found: $bin"
    E2E_TMP=$(mktemp -d "${TMPDIR:-/tmp}/lens-test-e2e.XXXXXX")
    add_cleanup e2e_stop_server
    mkdir -p "$E2E_TMP/data"
    local port
    port=$(free_port "$E2E_BASE_PORT")
    LENS_E2E_URL="http://127.0.0.1:$port"
    export LENS_E2E_URL E2E_TMP
    log "e2e: starting $bin serve on 127.0.0.1:$port (log: $E2E_TMP/server.log)"
    LENS_LISTEN="127.0.0.1:$port" \
    LENS_MEDIA_UDP_PORT=0 \
    LENS_DATA_DIR="$E2E_TMP/data" \
    LENS_BOOTSTRAP_EMAIL="$E2E_BOOTSTRAP_EMAIL" \
    LENS_BOOTSTRAP_PASSWORD="$E2E_BOOTSTRAP_PASSWORD" \
        "$bin" serve >"$E2E_TMP/server.log" 2>&1 </dev/null &
    E2E_PID=$!

    local i code=""
    for (( i=0; i<240; i++ )); do   # up to ~2 minutes (debug build, migrations)
        if ! kill -0 "$E2E_PID" 2>/dev/null; then
            local rc=0
            wait "$E2E_PID" 2>/dev/null || rc=$?
            E2E_PID=""
            tail -n 100 "$E2E_TMP/server.log" >&2
            die "e2e: lens serve exited early (exit $rc)"
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$LENS_E2E_URL/healthz" || true)
        [[ $code == 200 ]] && break
        sleep 0.5
    done
    if [[ $code != 200 ]]; then
        tail -n 100 "$E2E_TMP/server.log" >&2
        die "e2e: GET /healthz did not answer 200 in time (last: ${code:-none})"
    fi
    log "e2e: server up (pid $E2E_PID), /healthz = 200"
}

e2e_stop_server() {
    if [[ -n $E2E_PID ]] && kill -0 "$E2E_PID" 2>/dev/null; then
        log "e2e: stopping server (pid $E2E_PID)"
        kill -TERM "$E2E_PID" 2>/dev/null || true
        local i
        for (( i=0; i<40; i++ )); do
            kill -0 "$E2E_PID" 2>/dev/null || break
            sleep 0.25
        done
        if kill -0 "$E2E_PID" 2>/dev/null; then
            warn "e2e: server did not stop on SIGTERM within 10s; killing"
            kill -KILL "$E2E_PID" 2>/dev/null || true
        fi
        wait "$E2E_PID" 2>/dev/null || true
    fi
    E2E_PID=""
    if [[ -n $E2E_TMP ]]; then rm -rf "$E2E_TMP"; fi
    E2E_TMP=""
}

# ----------------------------------------------------------------- checks --

e2e_check_openapi() {
    local spec="$E2E_TMP/openapi.json"
    curl -fsS --max-time 30 -o "$spec" "$LENS_E2E_URL/api/v1/openapi.json" \
        || die "e2e: GET /api/v1/openapi.json failed"
    log "e2e: fetched openapi.json ($(wc -c <"$spec") bytes); validating"
    "$VENV_DIR/bin/openapi-spec-validator" "$spec" \
        || die "e2e: openapi.json is not a valid OpenAPI document"
}

# ------------------------------------------------------------------- step --

step_e2e() {
    [[ -x $VENV_DIR/bin/openapi-spec-validator ]] \
        || die "openapi-spec-validator not in $VENV_DIR (run scripts/test once without --quick)"
    command -v curl >/dev/null 2>&1 || die "curl not found"
    # The lens binary as the integration tests built it (step 5): `cargo build --bin lens` would
    # compile many dependencies a second time, without the dev-dependencies' feature set.
    cargo test --no-run --test restart
    e2e_start_server
    local check
    for check in "${E2E_CHECKS[@]}"; do
        log "e2e: --- $check"
        "$check"
    done
    e2e_stop_server
}

# shellcheck shell=bash
# Throwaway SMTP server (Python's aiosmtpd, from the test venv) for the email tests. Sourced, not
# executed. Expects VENV_DIR from the caller and common.sh's helpers.
#
#   start_smtp_server   start aiosmtpd on 127.0.0.1:<free port from 52525> with its Maildir
#                       handler and export
#                         LENS_TEST_SMTP_ADDR    127.0.0.1:PORT (no TLS, no AUTH)
#                         LENS_TEST_SMTP_DIR     the Maildir: every received message becomes one
#                                                file in $LENS_TEST_SMTP_DIR/new (moved there
#                                                complete, so a reader never sees half a message),
#                                                with X-MailFrom/X-RcptTo headers from the envelope
#                         LENS_TEST_SMTP_PYTHON  the venv python, for tests that start their own
#                                                server (AUTH, STARTTLS, TLS)
#                       registers stop_smtp_server as cleanup.
#   stop_smtp_server    stop the server and delete its directory (idempotent).

SMTP_BASE_PORT=${LENS_TEST_SMTP_PORT:-52525}
SMTP_TMP=""
SMTP_PID=""
SMTP_PORT=""

start_smtp_server() {
    local py="$VENV_DIR/bin/python"
    [[ -x $py ]] || die "smtp: $py missing (run scripts/test once without --quick)"
    "$py" -c 'import aiosmtpd' 2>/dev/null \
        || die "smtp: aiosmtpd not installed in $VENV_DIR (it belongs in PIP_PACKAGES)"

    SMTP_TMP=$(mktemp -d "${TMPDIR:-/tmp}/lens-test-smtp.XXXXXX")
    add_cleanup stop_smtp_server

    # Try successive ports: something else may grab a port between the check and the bind.
    local port=$SMTP_BASE_PORT tries=0 i up
    while (( tries < 10 )); do
        port=$(free_port "$port")
        : >"$SMTP_TMP/server.log"
        # The venv python is a real executable (not the pyenv shim), so $! is the server's pid.
        # -n: do not try to setuid to `nobody` (we may run as root).
        "$py" -m aiosmtpd -n -l "127.0.0.1:$port" \
            -c aiosmtpd.handlers.Mailbox "$SMTP_TMP/maildir" \
            >"$SMTP_TMP/server.log" 2>&1 </dev/null &
        SMTP_PID=$!
        up=0
        for (( i=0; i<100; i++ )); do   # up to ~10 s
            if ! kill -0 "$SMTP_PID" 2>/dev/null; then break; fi
            if port_in_use "$port"; then up=1; break; fi
            sleep 0.1
        done
        if (( up )); then break; fi
        if kill -0 "$SMTP_PID" 2>/dev/null; then
            kill -TERM "$SMTP_PID" 2>/dev/null || true
        fi
        wait "$SMTP_PID" 2>/dev/null || true
        SMTP_PID=""
        if grep -qi 'address already in use' "$SMTP_TMP/server.log"; then
            port=$(( port + 1 )); tries=$(( tries + 1 )); continue
        fi
        cat "$SMTP_TMP/server.log" >&2
        die "smtp: aiosmtpd failed to start"
    done
    [[ -n $SMTP_PID ]] || die "smtp: no usable port from $SMTP_BASE_PORT"
    SMTP_PORT=$port

    export LENS_TEST_SMTP_ADDR="127.0.0.1:$SMTP_PORT"
    export LENS_TEST_SMTP_DIR="$SMTP_TMP/maildir"
    export LENS_TEST_SMTP_PYTHON="$py"
    log "smtp: ready, LENS_TEST_SMTP_ADDR=$LENS_TEST_SMTP_ADDR LENS_TEST_SMTP_DIR=$LENS_TEST_SMTP_DIR (pid $SMTP_PID)"
}

stop_smtp_server() {
    if [[ -n $SMTP_PID ]] && kill -0 "$SMTP_PID" 2>/dev/null; then
        log "smtp: stopping (port $SMTP_PORT)"
        kill -TERM "$SMTP_PID" 2>/dev/null || true
        local i
        for (( i=0; i<40; i++ )); do
            kill -0 "$SMTP_PID" 2>/dev/null || break
            sleep 0.25
        done
        if kill -0 "$SMTP_PID" 2>/dev/null; then
            warn "smtp: aiosmtpd did not stop on SIGTERM within 10s; killing"
            kill -KILL "$SMTP_PID" 2>/dev/null || true
        fi
        wait "$SMTP_PID" 2>/dev/null || true
    fi
    SMTP_PID=""
    if [[ -n $SMTP_TMP ]]; then rm -rf "$SMTP_TMP"; fi
    SMTP_TMP=""
    unset LENS_TEST_SMTP_ADDR LENS_TEST_SMTP_DIR LENS_TEST_SMTP_PYTHON
}

# shellcheck shell=bash
# Throwaway PostgreSQL cluster for the store tests. Sourced, not executed.
#
#   pg_start            initdb + start on 127.0.0.1:<free port from 55432>,
#                       create role lens/lens and database lens_test, export
#                       LENS_TEST_POSTGRES_URL; registers pg_stop as cleanup.
#   pg_stop             stop the server and delete its directory (idempotent).
#
# initdb refuses to run as root, so as root everything runs as the `postgres`
# system user (created by Debian's postgresql package) via runuser, in a
# temporary directory under ${TMPDIR:-/tmp} owned by that user.

PG_BASE_PORT=${LENS_TEST_PG_PORT:-55432}
PG_DB=lens_test
PG_USER=lens
PG_PASSWORD=lens
PG_DIR=""
PG_BIN=""
PG_PORT=""

pg_find_bin() {
    local d found=()
    for d in /usr/lib/postgresql/*/bin; do
        if [[ -x $d/initdb && -x $d/pg_ctl ]]; then found+=("$d"); fi
    done
    d=""
    if (( ${#found[@]} > 0 )); then  # newest major version
        d=$(printf '%s\n' "${found[@]}" | sort -V | tail -n1)
    fi
    if [[ -n $d ]]; then
        PG_BIN=$d
    elif command -v pg_config >/dev/null 2>&1 && [[ -x "$(pg_config --bindir)/initdb" ]]; then
        PG_BIN=$(pg_config --bindir)
    elif command -v initdb >/dev/null 2>&1; then
        PG_BIN=$(dirname "$(command -v initdb)")
    else
        die "PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install postgresql"
    fi
}

# pg_run CMD...: run a PostgreSQL program as the cluster owner, from PG_DIR.
pg_run() {
    if (( EUID == 0 )); then
        (cd "$PG_DIR" && runuser -u postgres -- "$@")
    else
        (cd "$PG_DIR" && "$@")
    fi
}

pg_start() {
    pg_find_bin
    log "postgres: using $PG_BIN ($("$PG_BIN/postgres" --version))"
    if (( EUID == 0 )); then
        id -u postgres >/dev/null 2>&1 || die "system user 'postgres' missing (apt-get install postgresql)"
    fi

    PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/lens-test-pg.XXXXXX")
    add_cleanup pg_stop
    if (( EUID == 0 )); then chown postgres: "$PG_DIR"; fi
    chmod 700 "$PG_DIR"

    pg_run "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -E UTF8 --no-locale \
        --auth-local=trust --auth-host=scram-sha-256 >"$PG_DIR/initdb.log" 2>&1 \
        || { cat "$PG_DIR/initdb.log" >&2; die "initdb failed"; }

    # Try successive ports: something else may grab a port between the check
    # and the bind.
    local port=$PG_BASE_PORT tries=0 started=0
    while (( tries < 10 )); do
        port=$(free_port "$port")
        : >"$PG_DIR/server.log"
        if (( EUID == 0 )); then chown postgres: "$PG_DIR/server.log"; fi
        # fsync etc. off: it's a throwaway test cluster, speed matters on 2 cores.
        if pg_run "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_DIR -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start >"$PG_DIR/pg_ctl.log" 2>&1; then
            started=1; break
        fi
        if grep -qi 'address already in use' "$PG_DIR/server.log"; then
            port=$(( port + 1 )); tries=$(( tries + 1 )); continue
        fi
        cat "$PG_DIR/pg_ctl.log" "$PG_DIR/server.log" >&2
        die "PostgreSQL failed to start"
    done
    (( started )) || die "PostgreSQL: no usable port from $PG_BASE_PORT"
    PG_PORT=$port

    local i
    for (( i=0; i<60; i++ )); do
        "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 1 && break
        sleep 0.5
    done
    "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT" -t 5 >&2 \
        || { cat "$PG_DIR/server.log" >&2; die "PostgreSQL not accepting connections"; }

    # Admin over the Unix socket in PG_DIR (trust); the tests use TCP + password.
    # CREATEDB lets tests (e.g. #[sqlx::test]) create per-test databases.
    pg_run "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -U postgres -d postgres \
        -c "CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD'" \
        -c "CREATE DATABASE $PG_DB OWNER $PG_USER" >&2 \
        || die "creating role/database failed"

    export LENS_TEST_POSTGRES_URL="postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DB"
    PGPASSWORD=$PG_PASSWORD "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -At "$LENS_TEST_POSTGRES_URL" \
        -c 'SELECT 1' >/dev/null || die "cannot connect with $LENS_TEST_POSTGRES_URL"
    log "postgres: ready, LENS_TEST_POSTGRES_URL=$LENS_TEST_POSTGRES_URL (dir $PG_DIR)"
}

pg_stop() {
    [[ -n $PG_DIR && -d $PG_DIR ]] || return 0
    if [[ -f $PG_DIR/data/postmaster.pid ]]; then
        log "postgres: stopping (port $PG_PORT)"
        pg_run "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 \
            || pg_run "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w -t 30 stop >/dev/null 2>&1 \
            || warn "pg_ctl stop failed"
    fi
    rm -rf "$PG_DIR"
    PG_DIR=""
    unset LENS_TEST_POSTGRES_URL
}

# shellcheck shell=bash
# Shared helpers for scripts/test: logging, step timing, cleanup, free ports.
# Sourced, not executed.

# ---------------------------------------------------------------- logging --
log()  { printf '[test] %s\n' "$*" >&2; }
warn() { printf '[test] WARNING: %s\n' "$*" >&2; }
die()  { printf '[test] ERROR: %s\n' "$*" >&2; exit 1; }

# Microseconds since the epoch (EPOCHREALTIME may use ',' under some locales).
now_us() { local t=${EPOCHREALTIME//[.,]/}; printf '%s' "$t"; }

fmt_duration() { # $1 = microseconds -> "12.3s" / "2m05.1s"
    local ds=$(( $1 / 100000 )) # tenths of a second
    if (( ds >= 600 )); then
        printf '%dm%02d.%ds' $(( ds / 600 )) $(( (ds % 600) / 10 )) $(( ds % 10 ))
    else
        printf '%d.%ds' $(( ds / 10 )) $(( ds % 10 ))
    fi
}

# ------------------------------------------------------------------ steps --
# STEP_NAMES / STEP_RESULTS / STEP_TIMES are filled in order; the summary is
# printed from the EXIT trap, so a step that dies under `set -e` is still
# reported (as FAILED) together with its duration.
STEP_NAMES=()
STEP_RESULTS=()
STEP_TIMES=()
STEP_TOTAL=0
STEP_INDEX=0
CURRENT_STEP=""
CURRENT_STEP_START=0
SCRIPT_START=$(now_us)

banner() {
    local line="=============================================================================="
    printf '\n%s\n==> %s\n%s\n' "$line" "$*" "$line" >&2
}

# run_step "Title" command [args...]
# Runs the command in the current shell (so `set -e` inside it aborts the run
# and exported variables persist), timing it.
run_step() {
    local title=$1; shift
    STEP_INDEX=$(( STEP_INDEX + 1 ))
    banner "[$STEP_INDEX/$STEP_TOTAL] $title"
    CURRENT_STEP=$title
    CURRENT_STEP_START=$(now_us)
    "$@"
    local elapsed=$(( $(now_us) - CURRENT_STEP_START ))
    STEP_NAMES+=("$title"); STEP_RESULTS+=("ok"); STEP_TIMES+=("$elapsed")
    CURRENT_STEP=""
    log "step '$title' ok ($(fmt_duration "$elapsed"))"
}

# skip_step "Title" "reason"
skip_step() {
    STEP_INDEX=$(( STEP_INDEX + 1 ))
    banner "[$STEP_INDEX/$STEP_TOTAL] $1 -- skipped ($2)"
    STEP_NAMES+=("$1"); STEP_RESULTS+=("skipped ($2)"); STEP_TIMES+=("")
}

print_summary() {
    local rc=$1 i
    if [[ -n $CURRENT_STEP ]]; then
        STEP_NAMES+=("$CURRENT_STEP"); STEP_RESULTS+=("FAILED (exit $rc)")
        STEP_TIMES+=("$(( $(now_us) - CURRENT_STEP_START ))")
        CURRENT_STEP=""
    fi
    printf '\n==================================== Summary ===================================\n' >&2
    for i in "${!STEP_NAMES[@]}"; do
        local t=${STEP_TIMES[$i]}
        [[ -n $t ]] && t=$(fmt_duration "$t") || t="-"
        printf '  %-45s %10s  %s\n' "${STEP_NAMES[$i]}" "$t" "${STEP_RESULTS[$i]}" >&2
    done
    printf '  %-45s %10s\n' "total" "$(fmt_duration $(( $(now_us) - SCRIPT_START )))" >&2
    if (( rc == 0 )); then
        printf '==> ALL STEPS PASSED\n' >&2
    else
        printf '==> FAILED (exit %s)\n' "$rc" >&2
    fi
}

# ---------------------------------------------------------------- cleanup --
# Functions registered here run (last registered first) from the EXIT trap,
# also when a step fails or the run is interrupted.
CLEANUP_FUNCS=()
add_cleanup() { CLEANUP_FUNCS+=("$1"); }

run_cleanups() {
    local i
    for (( i=${#CLEANUP_FUNCS[@]}-1; i>=0; i-- )); do
        "${CLEANUP_FUNCS[$i]}" || warn "cleanup ${CLEANUP_FUNCS[$i]} failed"
    done
    CLEANUP_FUNCS=()
}

on_exit() {
    local rc=$?
    set +e
    trap - EXIT
    run_cleanups
    print_summary "$rc"
    exit "$rc"
}

install_traps() {
    trap on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP
}

# ------------------------------------------------------------------ ports --
# port_in_use PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port START: prints the first port >= START (up to START+200) that
# nothing listens on.
free_port() {
    local p=$1
    while (( p < $1 + 200 )); do
        if ! port_in_use "$p"; then printf '%s\n' "$p"; return 0; fi
        p=$(( p + 1 ))
    done
    die "no free TCP port in $1..$(( $1 + 199 ))"
}

# as_root CMD...: run as root (directly, or through sudo when not root).
as_root() {
    if (( EUID == 0 )); then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root (or sudo) to run: $*"
    fi
}

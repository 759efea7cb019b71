# shellcheck shell=bash
# Fuzzing step for scripts/test: runs every cargo-fuzz target in fuzz/ for a
# while and fails on a crash. Sourced, not executed; expects REPO_ROOT and the
# log/warn/die helpers of common.sh.
#
# Environment:
#   LENS_FUZZ_SECONDS   seconds per target (default 20; three targets)
#   CI=true             a missing cargo-fuzz that cannot be installed fails the
#                       step instead of skipping it
#
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address...) to rustc; on
# the stable toolchain RUSTC_BOOTSTRAP=1 lets them through (verified with
# rustc 1.95). It is set for the fuzz runs only.

# Writes each example frame of signaling/PROTOCOL.md (lines `C> `, `T> `,
# `S> `, `C! `, `T! ` in the json blocks) as one seed file into $1.
fuzz_seed_from_protocol_doc() {
    local dir=$1 doc=$REPO_ROOT/signaling/PROTOCOL.md n=0 line
    [[ -f $doc ]] || return 0
    mkdir -p "$dir"
    while IFS= read -r line; do
        n=$(( n + 1 ))
        printf '%s' "${line:3}" > "$dir/protocol-doc-$n"
    done < <(grep -E '^[CTS][>!] ' "$doc")
    log "fuzz: $n seed frames from PROTOCOL.md in $dir"
}

step_fuzz() {
    local seconds=${LENS_FUZZ_SECONDS:-20}
    if ! [[ $seconds =~ ^[0-9]+$ ]] || (( seconds == 0 )); then
        die "LENS_FUZZ_SECONDS must be a positive number of seconds (got '$seconds')"
    fi

    if ! cargo fuzz --version >/dev/null 2>&1; then
        log "fuzz: cargo-fuzz missing; installing (cargo install cargo-fuzz --locked)"
        if ! cargo install cargo-fuzz --locked; then
            if [[ ${CI:-} == true ]]; then
                die "fuzz: could not install cargo-fuzz (CI=true: failing)"
            fi
            warn "fuzz: could not install cargo-fuzz; skipping the fuzz step"
            return 0
        fi
    fi
    log "fuzz: $(cargo fuzz --version 2>/dev/null)"

    local targets=()
    mapfile -t targets < <(cd "$REPO_ROOT" && RUSTC_BOOTSTRAP=1 cargo fuzz list)
    (( ${#targets[@]} > 0 )) || die "fuzz: no targets found in $REPO_ROOT/fuzz"

    local target corpus dict args
    for target in "${targets[@]}"; do
        corpus=$REPO_ROOT/fuzz/corpus/$target
        fuzz_seed_from_protocol_doc "$corpus"
        args=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1)
        dict=$REPO_ROOT/fuzz/$target.dict
        [[ -f $dict ]] && args+=(-dict="$dict")
        log "fuzz: $target for ${seconds}s"
        if ! (cd "$REPO_ROOT" && RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$corpus" -- "${args[@]}"); then
            die "fuzz: $target failed (a crash, or the build failed); reproducers in $REPO_ROOT/fuzz/artifacts/$target/"
        fi
    done
}

#!/usr/bin/env bash
# Runs every test of the project: formatting and lints, the Rust unit, property and in-process
# HTTP tests, then the compatibility suite that drives a real `taskyard serve` with Twilio's
# official Python helper library (installed into a virtualenv under target/), then the SDK
# suite that drives it with Twilio's worker SDK and npm helper library (npm ci from the
# committed lock file) and the agent page in a headless Chromium.
#
#   scripts/test.sh            everything
#   scripts/test.sh --rust     Rust only
#   scripts/test.sh --compat   compatibility suite only
#   scripts/test.sh --sdk      Twilio's worker SDK (npm twilio-taskrouter) against a real server
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
# The PostgreSQL the cluster tests use (each takes a schema of its own and drops it after).
database_url=${TASKYARD_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
step() { printf '\n==> %s\n' "$*"; }

if [[ $what == all || $what == --rust ]]; then
    if cargo fmt --version >/dev/null 2>&1; then
        step "cargo fmt --check"
        cargo fmt --all -- --check
    fi
    if cargo clippy --version >/dev/null 2>&1; then
        step "cargo clippy"
        cargo clippy --workspace --all-targets --quiet -- -D warnings
    fi
    step "cargo test"
    mkdir -p target
    cargo test --workspace --quiet 2>&1 | tee target/cargo-test.log
    # Fail loudly if the Rust suites ran no test at all.
    grep -q "test result: ok. [1-9]" target/cargo-test.log
    # The expression parser's fuzz target (fuzz/), for a bounded time: libFuzzer needs a
    # nightly toolchain; without one the step says so and the target is only built by
    # whoever runs it (README, "Fuzzing").
    if cargo +nightly --version >/dev/null 2>&1; then
        step "fuzz the expression parser (${TASKYARD_FUZZ_SECONDS:-60} s)"
        command -v cargo-fuzz >/dev/null || cargo install --locked --quiet cargo-fuzz
        found=$(mktemp -d)
        # New inputs go to a scratch directory; the committed corpus is only read.
        if ! (cd fuzz && cargo +nightly fuzz run parse "$found" corpus/parse -- \
            -max_total_time="${TASKYARD_FUZZ_SECONDS:-60}" -print_final_stats=1) >target/fuzz.log 2>&1; then
            tail -80 target/fuzz.log
            echo "the fuzz target failed (the crashing input is in fuzz/artifacts/parse/)" >&2
            exit 1
        fi
        grep -E "^Done|stat::number_of_executed_units" target/fuzz.log || tail -3 target/fuzz.log
        rm -rf "$found"
    else
        step "fuzzing skipped: no nightly toolchain (cargo +nightly)"
    fi
fi

if [[ $what == all || $what == --compat ]]; then
    step "build the server and the load harness (release)"
    cargo build --release --quiet --bin taskyard --bin taskyard-load
    venv=target/compat-venv
    if [[ ! -x $venv/bin/python ]]; then
        step "create $venv"
        python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/compat/requirements.txt
    step "compatibility suite (official twilio helper library)"
    TASKYARD_BIN="$PWD/target/release/taskyard" "$venv/bin/python" -m pytest tests/compat -q -p no:cacheprovider
    step "compatibility suite on PostgreSQL (a schema per server, dropped afterwards)"
    TASKYARD_COMPAT_DATABASE_URL="$database_url" TASKYARD_BIN="$PWD/target/release/taskyard" \
        "$venv/bin/python" -m pytest tests/compat -q -p no:cacheprovider
    step "spec-driven fuzzing (short form: schemathesis over every operation of /openapi.json)"
    # No 5xx, no answer outside the served schema except the documented differences
    # (tests/fuzz/exclusions.toml), no panic; docs/compatibility.md "Fuzzing" has the long form.
    TASKYARD_BIN="$PWD/target/release/taskyard" "$venv/bin/python" tests/fuzz/run.py
    step "crash safety (short form)"
    # SIGKILL under load and restart, 3 times; exits non-zero on any lost acknowledged task,
    # wrong state or double reservation (issue 7, target 5; BENCHMARKS.md "Crash safety").
    target/release/taskyard-load --spawn target/release/taskyard crash --rounds 3 --max-secs 1.5
    step "failover on a cluster of three nodes (short form)"
    # The same checks with three nodes on one PostgreSQL: load through every node, the owner
    # SIGKILLed, and once SIGSTOPped past its lease then resumed (it must be fenced).
    target/release/taskyard-load --spawn target/release/taskyard --database-url "$database_url" \
        crash --nodes 3 --rounds 3 --pause-every 2 --max-secs 1.5
fi

if [[ $what == all || $what == --sdk ]]; then
    step "build the server (release)"
    cargo build --release --quiet --bin taskyard
    command -v node >/dev/null || { echo "the SDK suite needs Node.js 20 or newer (node)" >&2; exit 1; }
    # The agent page's test drives a real headless Chromium (Debian's package).
    if [[ -z ${CHROMIUM_BIN:-} ]] && ! command -v chromium >/dev/null; then
        step "install Chromium (Debian package chromium) for the agent page test"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
    sdk=tests/sdk
    # npm ci only when node_modules is missing or package-lock.json changed since the last one
    # (a copy of the lock that was installed is kept beside the modules).
    if [[ ! -d $sdk/node_modules ]] || ! cmp -s "$sdk/package-lock.json" "$sdk/node_modules/.installed-lock.json"; then
        step "npm ci ($sdk)"
        npm ci --prefix "$sdk" --no-audit --no-fund
        cp "$sdk/package-lock.json" "$sdk/node_modules/.installed-lock.json"
    fi
    step "browser build of the worker SDK for the agent page"
    npm run --prefix "$sdk" --silent bundle-agent-sdk
    step "SDK suite (twilio-taskrouter worker SDK and twilio helper library from npm)"
    bin="$PWD/target/release/taskyard"
    (cd "$sdk" && TASKYARD_BIN="$bin" TASKYARD_SDK_DATABASE_URL="$database_url" node --test --test-concurrency=1 --test-force-exit test/)
fi

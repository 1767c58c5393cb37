#!/usr/bin/env bash
# Command two: runs every check. Formatting, clippy, unit tests, integration tests against a
# private emulator instance (its own port: never a running dev stack), end-to-end tests over real
# HTTP through `cargo lambda watch`, and the template linters. CI runs exactly this (.ci/run).
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

EMULATOR_PORT="${JOIP_TEST_EMULATOR_PORT:-4599}"
API_PORT="${JOIP_TEST_API_PORT:-9099}"
LOGS="$ROOT/target/test-logs"
mkdir -p "$LOGS"
trap 'trap - EXIT INT TERM; stop_children' EXIT INT TERM

bootstrap

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy --all-targets -- -D warnings"
cargo clippy --quiet --workspace --all-targets -- -D warnings

log "template.yaml: cfn-lint and sam validate --lint"
cfn-lint template.yaml
SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=us-east-1 sam validate --lint --template template.yaml >"$LOGS/sam-validate.log" 2>&1 \
  || { cat "$LOGS/sam-validate.log"; die "sam validate --lint failed"; }

log "openapi.yaml: openapi-spec-validator"
openapi-spec-validator --schema 3.1 openapi.yaml

log "emulator CDN: tools/tests/emulator_cdn_test.py"
"$VENV/bin/python" -m unittest -v tools/tests/emulator_cdn_test.py

log "building"
cargo build --quiet --workspace --all-targets

log "starting a private AWS emulator on 127.0.0.1:$EMULATOR_PORT (log: $LOGS/emulator.log)"
start_emulator "$EMULATOR_PORT" "$LOGS/emulator.log"
use_emulator "$EMULATOR_PORT"
export JOIP_TEST_ENDPOINT="$AWS_ENDPOINT_URL"

# The end-to-end stack: its own table and buckets on the private emulator, served by watch.
export JOIP_TABLE=joip-e2e JOIP_GENERAL_BUCKET=joip-e2e-general \
  JOIP_USER_MEDIA_BUCKET=joip-e2e-user-media JOIP_WATERMARK_QUEUE=joip-e2e-watermark
target/debug/joip-admin local init >"$LOGS/init.json"
# The emulator's CDN: the functions invalidate it, communityUrl points at it.
JOIP_CDN_DISTRIBUTION_ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["distributionId"] or "")' "$LOGS/init.json")
[ -n "$JOIP_CDN_DISTRIBUTION_ID" ] || die "the emulator made no CDN distribution (see $LOGS/init.json)"
export JOIP_CDN_DISTRIBUTION_ID
log "starting cargo lambda watch on 127.0.0.1:$API_PORT (log: $LOGS/watch.log)"
port_open "$API_PORT" && die "port $API_PORT is in use"
# Several instances per function, as Lambda runs concurrent requests: the load test's saves and
# shares of the same items then really race over HTTP.
cargo lambda watch --concurrency 8 -A 127.0.0.1 -P "$API_PORT" >"$LOGS/watch.log" 2>&1 &
wait_for_port "$API_PORT" 120 "cargo lambda watch"
export JOIP_E2E_URL="http://127.0.0.1:$API_PORT"
log "polling the watermark queue into the watermark function (log: $LOGS/poller.log)"
target/debug/joip-admin local poll --api "$JOIP_E2E_URL" >"$LOGS/poller.log" 2>&1 &

log "cargo test (unit, integration, end-to-end, faults, load)"
status=0
export JOIP_LOAD_REPORT="$LOGS/load.txt" # lib/tests/load.rs writes its figures here
rm -f "$JOIP_LOAD_REPORT"
cargo test --workspace --no-fail-fast 2>&1 | tee "$LOGS/cargo-test.log" || status=$?
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$LOGS/cargo-test.log"
if [ -s "$JOIP_LOAD_REPORT" ]; then cat "$JOIP_LOAD_REPORT"; fi

# Contract tests over real HTTP against the same stack (every Schemathesis check, openapi.yaml's
# links followed statefully).
log "schemathesis against $JOIP_E2E_URL (log: $LOGS/schemathesis.log; reports: $LOGS/schemathesis/)"
if tools/contract/schemathesis.sh >"$LOGS/schemathesis.log" 2>&1; then
  log "schemathesis: no issues"
else
  tail -80 "$LOGS/schemathesis.log"
  log "schemathesis found contract failures"
  status=1
fi

# What every function logged during the tests and the contract run: no token, share code,
# presigned-URL signature or secret; in the deployed format, every line JSON with a request id.
log "function logs (tools/logs/check_logs.py; deployed-format logs: $LOGS/deployed/)"
"$VENV/bin/python" tools/logs/check_logs.py --logs "$LOGS" --self-test || status=1

# The benchmarks in quick mode, so they cannot rot: small sizes, nothing asserted about time.
log "benchmarks, quick mode (tools/bench.sh --quick; log: $LOGS/bench-quick.log)"
if ! JOIP_BENCH_EMULATOR_PORT="${JOIP_TEST_BENCH_PORT:-4597}" tools/bench.sh --quick >"$LOGS/bench-quick.log" 2>&1; then
  tail -40 "$LOGS/bench-quick.log"
  log "the benchmarks failed"
  status=1
fi
exit "$status"

#!/usr/bin/env bash
# Command two: runs every check. Formatting, clippy, unit tests, integration tests against a
# private emulator instance (its own port: never a running dev stack), end-to-end tests over real
# HTTP through `cargo lambda watch`, and the template linters. CI runs exactly this (.ci/run).
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

# The engines behind the emulator: dynamodb-local (the default) or localstack (JOIP_EMULATOR).
ENGINE="${JOIP_EMULATOR:-dynamodb-local}"
EMULATOR_PORT="${JOIP_TEST_EMULATOR_PORT:-4599}"
API_PORT="${JOIP_TEST_API_PORT:-9099}"
LOGS="$ROOT/target/test-logs"
mkdir -p "$LOGS"
trap 'trap - EXIT INT TERM; stop_children' EXIT INT TERM

bootstrap
bootstrap_localstack # CI runs the integration suites on LocalStack too
bootstrap_codec_tools # the reference decoders lib/tests/conformance.rs judges the codecs by

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

log "starting a private AWS emulator ($ENGINE) on 127.0.0.1:$EMULATOR_PORT (log: $LOGS/emulator.log)"
start_emulator "$EMULATOR_PORT" "$LOGS/emulator.log" "$ENGINE"
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
log "starting cargo lambda watch behind the local gateway on 127.0.0.1:$API_PORT (log: $LOGS/watch.log)"
# Several instances per function, as Lambda runs concurrent requests: the load test's saves and
# shares of the same items then really race over HTTP.
start_api "$API_PORT" "$LOGS/watch.log" --concurrency 8
export JOIP_E2E_URL="http://127.0.0.1:$API_PORT"
log "polling the watermark queue into the watermark function (log: $LOGS/poller.log)"
target/debug/joip-admin local poll --api "$JOIP_E2E_URL" >"$LOGS/poller.log" 2>&1 &

log "cargo test (unit, integration, end-to-end, faults, load)"
status=0
export JOIP_LOAD_REPORT="$LOGS/load.txt" # lib/tests/load.rs writes its figures here
rm -f "$JOIP_LOAD_REPORT"
cargo test --workspace --no-fail-fast 2>&1 | tee "$LOGS/cargo-test.log" || status=$?
# One closing line for the whole run, summed over every test binary.
counts() {
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
       END { printf "%d %d\n", p, f }' "$1"
}
read -r passed failed < <(counts "$LOGS/cargo-test.log")
echo "$ENGINE: $passed passed, $failed failed"
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

# The integration and end-to-end suites again on LocalStack (S3, SQS and DynamoDB from
# LocalStack, behind the same hostile layer), on a stack of their own: what differs between
# the engines shows here. Not the load run, Schemathesis or the benchmarks (the same code).
if [ "$ENGINE" != localstack ]; then
  stop_children # the first stack: its emulator, watch, gateway and poller
  LS_LOGS="$LOGS/localstack"
  mkdir -p "$LS_LOGS"
  LS_PORT="${JOIP_TEST_LOCALSTACK_PORT:-4596}"
  LS_API_PORT="${JOIP_TEST_LOCALSTACK_API_PORT:-9098}"
  log "LocalStack: starting it behind the emulator on 127.0.0.1:$LS_PORT (log: $LS_LOGS/emulator.log)"
  start_emulator "$LS_PORT" "$LS_LOGS/emulator.log" localstack
  use_emulator "$LS_PORT"
  export JOIP_TEST_ENDPOINT="$AWS_ENDPOINT_URL"
  target/debug/joip-admin local init >"$LS_LOGS/init.json"
  JOIP_CDN_DISTRIBUTION_ID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["distributionId"] or "")' "$LS_LOGS/init.json")
  export JOIP_CDN_DISTRIBUTION_ID
  start_api "$LS_API_PORT" "$LS_LOGS/watch.log" --concurrency 8
  export JOIP_E2E_URL="http://127.0.0.1:$LS_API_PORT"
  target/debug/joip-admin local poll --api "$JOIP_E2E_URL" >"$LS_LOGS/poller.log" 2>&1 &
  log "LocalStack: cargo test -p joip --test it (integration, end-to-end, faults)"
  cargo test -p joip --test it --no-fail-fast 2>&1 | tee "$LS_LOGS/cargo-test.log" >/dev/null || status=$?
  read -r ls_passed ls_failed < <(counts "$LS_LOGS/cargo-test.log")
  if [ "$ls_failed" != 0 ] || [ "$ls_passed" = 0 ]; then
    grep -E '^(failures:|    [a-z_:]+$)' "$LS_LOGS/cargo-test.log" | sort -u | head -40
  fi
  echo "localstack: $ls_passed passed, $ls_failed failed"
  passed=$((passed + ls_passed))
  failed=$((failed + ls_failed))
  stop_children
fi

# The benchmarks in quick mode, so they cannot rot: small sizes, nothing asserted about time.
log "benchmarks, quick mode (tools/bench.sh --quick; log: $LOGS/bench-quick.log)"
if ! JOIP_BENCH_EMULATOR_PORT="${JOIP_TEST_BENCH_PORT:-4597}" tools/bench.sh --quick >"$LOGS/bench-quick.log" 2>&1; then
  tail -40 "$LOGS/bench-quick.log"
  log "the benchmarks failed"
  status=1
fi
echo "$passed passed, $failed failed"
exit "$status"

#!/usr/bin/env bash
# Contract tests over real HTTP: Schemathesis drives every route of openapi.yaml against a running
# stack (JOIP_E2E_URL, e.g. tools/test.sh's `cargo lambda watch`, or tools/dev.sh's
# http://127.0.0.1:9000) with a fresh user's dev token. Every check but one that tests the gateway
# (below) is on: no 5xx, status codes, bodies and headers as documented, content types, positive
# data accepted and negative data refused, auth not ignored, response time; the stateful phase
# follows openapi.yaml's links (list -> share -> resolve -> unshare, page -> next page).
# tools/contract/joip_hooks.py says what the schema cannot (which refusals depend on data) and adds
# a revoked-code check.
#
# Needs the stack's emulator settings in the environment (tools/test.sh exports them; the dev stack
# needs none) for `joip-admin`, which seeds a user with credits, media of each kind, sessions and
# share codes. Schemathesis (tools/contract/requirements.txt) lives in its own venv under target/.
#
#   JOIP_E2E_URL=http://127.0.0.1:9000 tools/contract/schemathesis.sh
#
# Knobs: JOIP_CONTRACT_EXAMPLES (cases per operation and phase, 50), JOIP_CONTRACT_SEED (a fixed
# seed by default, so CI runs are reproducible), JOIP_CONTRACT_OUT (reports; target/test-logs/
# schemathesis). Extra arguments go to `schemathesis run`.
set -euo pipefail
source "$(dirname "$0")/../common.sh"
cd "$ROOT"

: "${JOIP_E2E_URL:?set JOIP_E2E_URL to the API base URL (tools/test.sh exports it)}"
CONTRACT_VENV="$ROOT/target/contract-venv"
OUT="${JOIP_CONTRACT_OUT:-$ROOT/target/test-logs/schemathesis}"
REQ="$ROOT/tools/contract/requirements.txt"

# Its own venv, reinstalled only when the pins change; the project's .venv is never touched.
if ! { [ -f "$CONTRACT_VENV/.requirements" ] && cmp -s "$REQ" "$CONTRACT_VENV/.requirements"; }; then
  log "installing Schemathesis into target/contract-venv"
  rm -rf "$CONTRACT_VENV"
  python3 -m venv "$CONTRACT_VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$CONTRACT_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" \
    || die "pip install failed"
  cp "$REQ" "$CONTRACT_VENV/.requirements"
fi

[ -x target/debug/joip-admin ] || cargo build --quiet -p joip-tools
mkdir -p "$OUT"
rm -rf "$OUT"/{har-*.json,junit-*.xml,dropped.ndjson,seed.json,token,schemathesis.toml,.hypothesis}
# The token lives only as long as the run (the reports are kept; Schemathesis filters it from them).
trap 'rm -f "$OUT/token"' EXIT
log "seeding the contract run's user, media, sessions, share codes and page cursors"
"$CONTRACT_VENV/bin/python" tools/contract/seed.py --base-url "$JOIP_E2E_URL" --out "$OUT" \
  --max-examples "${JOIP_CONTRACT_EXAMPLES:-50}" --seed "${JOIP_CONTRACT_SEED:-20261123}"

export JOIP_CONTRACT_SEED_FILE="$OUT/seed.json"
JOIP_CONTRACT_TOKEN="$(cat "$OUT/token")"
export JOIP_CONTRACT_TOKEN
export JOIP_CONTRACT_OUT="$OUT"
export PYTHONPATH="$ROOT/tools/contract${PYTHONPATH:+:$PYTHONPATH}"
# No __pycache__ in the work tree: cargo lambda watch would take it for a source change and restart
# every function mid-run.
export PYTHONDONTWRITEBYTECODE=1
export SCHEMATHESIS_HOOKS=joip_hooks

export HYPOTHESIS_STORAGE_DIRECTORY="$OUT/.hypothesis"

log "schemathesis run openapi.yaml against $JOIP_E2E_URL (reports: $OUT)"
# unsupported_method is off: an undeclared method never reaches a function. The router answers
# it (deployed, API Gateway's HTTP API: 404 {"message":"Not Found"}; locally, cargo lambda watch:
# 404), so the check would test the gateway, which cannot answer 405 without a route per method.
# Run from $OUT: Hypothesis and Schemathesis keep state in the working directory, and in the work
# tree cargo lambda watch would take it for a source change and restart every function.
cd "$OUT"
"$CONTRACT_VENV/bin/schemathesis" --config-file "$OUT/schemathesis.toml" run "$ROOT/openapi.yaml" \
  --checks all --exclude-checks unsupported_method \
  --report junit,har --report-dir "$OUT" \
  --no-color "$@"

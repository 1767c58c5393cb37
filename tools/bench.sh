#!/usr/bin/env bash
# Benchmarks against a private emulator (port 4598). Prints ratios against baselines measured in
# the same run; see lib/benches/.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
PORT="${JOIP_BENCH_EMULATOR_PORT:-4598}"
mkdir -p target/test-logs
trap 'trap - EXIT INT TERM; stop_children' EXIT INT TERM
bootstrap
start_emulator "$PORT" target/test-logs/bench-emulator.log
use_emulator "$PORT"
export JOIP_TEST_ENDPOINT="$AWS_ENDPOINT_URL"
cargo bench -p joip --bench save_session
cargo bench -p joip --bench share

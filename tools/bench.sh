#!/usr/bin/env bash
# Every benchmark, in release mode; each prints ratios against a baseline measured in the same
# run (this machine is shared and noisy), and the tables go to target/bench/report.json.
# `--quick` (what tools/test.sh runs, so the benchmarks cannot rot): small sizes, one or two
# repetitions, debug binaries, nothing asserted about time.
#   lib/benches/save_session.rs, lib/benches/share.rs, lib/benches/blocklist.rs: against a
#     private emulator (port 4598);
#   tools/bench/watermark/run.py: our image code against sharp (npm, pinned) and jpegtran;
#   tools/bench/perf.py: every function's package size, cold start, warm latency against its
#     emulator floor, and peak RSS, against hello functions (tools/bench/hello) built alike.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
PORT="${JOIP_BENCH_EMULATOR_PORT:-4598}"
OUT="$ROOT/target/bench"
mkdir -p target/test-logs "$OUT"
export JOIP_BENCH_OUT="$OUT"
trap 'trap - EXIT INT TERM; stop_children' EXIT INT TERM
bootstrap
if [ "$QUICK" = 1 ]; then
  export JOIP_BENCH_QUICK=1 JOIP_BENCH_ROUNDS=2
fi

# The watermark benchmark's own tools: Pillow and numpy for the inputs (a venv of its own),
# sharp from npm (run.py installs it from the pinned lockfile), jpegtran from Debian.
BENCH_VENV="$OUT/venv"
BENCH_REQ="$ROOT/tools/bench/watermark/requirements.txt"
if ! cmp -s "$BENCH_REQ" "$BENCH_VENV/.requirements" 2>/dev/null; then
  log "installing the watermark benchmark's Python packages into target/bench/venv"
  python3 -m venv "$BENCH_VENV"
  "$BENCH_VENV/bin/python" -m pip install --quiet -r "$BENCH_REQ"
  cp "$BENCH_REQ" "$BENCH_VENV/.requirements"
fi
# Debian packages a benchmark uses, installed when run as root with apt-get; otherwise (or if that
# fails) it says what is missing and what the report lacks for it.
# $1: what they are for; $2: what is missing without them; the rest: the packages.
debian_install() {
  local why="$1" without="$2"
  shift 2
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing $* ($why)"
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@"; } >/dev/null \
      || log "could not install $*: $without"
  else
    log "not installed (Debian: apt-get install $*): $without"
  fi
}
command -v jpegtran >/dev/null || debian_install "jpegtran, the DCT path's floor" \
  "the DCT path's floor will be missing" libjpeg-turbo-progs
command -v node >/dev/null || die "node not found: the watermark benchmark runs sharp (install Node.js 18+)"

log "building the benchmarks"
cargo bench --quiet -p joip --no-run
cargo build --quiet -p joip-tools
FUNCTIONS=$(ls functions)
if [ "$QUICK" = 1 ]; then
  cargo build --quiet $(printf -- '-p %s ' $FUNCTIONS) -p bench-hello
  BINS=(--bin-dir "$ROOT/target/debug")
else
  log "cargo lambda build --release (every function, and the hello baselines)"
  cargo lambda build --quiet --release $(printf -- '-p %s ' $FUNCTIONS) -p bench-hello
  BINS=(--lambda-dir "$ROOT/target/lambda")
  # Graviton, as template.yaml deploys it (everything but the watermark function): sizes, and a
  # start of each under qemu-aarch64 (Debian's qemu-user and aarch64 libc) that must answer as
  # the x86_64 build does.
  log "cargo lambda build --release --arm64 (what template.yaml deploys on Graviton)"
  cargo lambda build --quiet --release --arm64 --lambda-dir "$ROOT/target/lambda-arm64" \
    $(printf -- '-p %s ' $(ls functions | grep -vx watermark)) -p bench-hello
  BINS+=(--arm64-dir "$ROOT/target/lambda-arm64")
  if ! command -v qemu-aarch64 >/dev/null || [ ! -d /usr/aarch64-linux-gnu ]; then
    debian_install "to start the arm64 builds once" \
      "the arm64 builds will be sized, not started" qemu-user libc6-arm64-cross
  fi
fi
WATERMARK_BENCH=$(cargo bench -p joip --bench watermark --no-run --message-format=json 2>/dev/null \
  | "$BENCH_VENV/bin/python" -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "watermark" and m.get("executable"):
        print(m["executable"])')
[ -x "$WATERMARK_BENCH" ] || die "no watermark benchmark binary"

start_emulator "$PORT" target/test-logs/bench-emulator.log
use_emulator "$PORT"
export JOIP_TEST_ENDPOINT="$AWS_ENDPOINT_URL"
log "save_session"
cargo bench --quiet -p joip --bench save_session
log "share"
cargo bench --quiet -p joip --bench share
log "blocklist lookups"
cargo bench --quiet -p joip --bench blocklist
log "functions: size, cold start, warm latency, memory"
(
  export JOIP_TABLE=joip-bench JOIP_GENERAL_BUCKET=joip-bench-general \
    JOIP_USER_MEDIA_BUCKET=joip-bench-user-media JOIP_WATERMARK_QUEUE=joip-bench-watermark
  target/debug/joip-admin local init >/dev/null
  target/debug/joip-admin local seed >"$OUT/seed.json"
  "$BENCH_VENV/bin/python" tools/bench/perf.py "${BINS[@]}" --emulator "$AWS_ENDPOINT_URL" \
    --seed "$OUT/seed.json" --out "$OUT" $([ "$QUICK" = 1 ] && echo --quick)
)
log "watermark (against sharp and jpegtran)"
"$BENCH_VENV/bin/python" tools/bench/watermark/run.py --bench-bin "$WATERMARK_BENCH" \
  --out "$OUT/watermark" $([ "$QUICK" = 1 ] && echo --quick)
"$BENCH_VENV/bin/python" tools/bench/report.py "$OUT"
log "fuzzing the JPEG codec (tools/fuzz.sh: a minute under --quick, ten otherwise)"
tools/fuzz.sh "$([ "$QUICK" = 1 ] && echo 60 || echo 600)"

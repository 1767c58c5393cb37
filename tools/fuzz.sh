#!/usr/bin/env bash
# Fuzzes the JPEG codec (issue 21): `joip::watermark::stamp` under libFuzzer (cargo-fuzz), then
# judges the corpus against libjpeg-turbo's `djpeg -strict`.
#
#   tools/fuzz.sh [SECONDS]     fuzz for SECONDS (default 600); tools/bench.sh runs it, with 60
#                               under --quick (so tools/test.sh fuzzes for a minute)
#
# What it does, each step once per run:
#   - installs cargo-fuzz (pinned below) into target/fuzz-tools unless it is there, and cjpeg and
#     djpeg (libjpeg-turbo-progs, with apt-get as root; tools/common.sh bootstrap_codec_tools);
#   - builds fuzz/ (its own crate outside the workspace, target fuzz_targets/stamp.rs) with
#     coverage instrumentation and debug assertions, no sanitizer (the codec is safe Rust), into
#     target/fuzz/build; stable Rust, nothing nightly;
#   - writes seed JPEGs with cjpeg in every mode (fuzz/seeds.py) to target/fuzz/seeds and fuzzes
#     from them, from the findings of lib/tests/fuzz-regressions/ and from the corpus of earlier
#     runs (target/fuzz/corpus, kept), with fuzz/jpeg.dict. One libFuzzer job per core
#     (JOIP_FUZZ_JOBS), each input under 10 s (-timeout) and 1 GB (-rss_limit_mb); the target
#     also stamps every published copy again, which must not be refused;
#   - the oracle pass: lib/tests/fuzz_regressions.rs (its ignored test) stamps every corpus file
#     and runs djpeg -strict on the input and on the published copy. Publishing what djpeg
#     refuses, or publishing a copy djpeg refuses, is a finding; refusing what djpeg reads is
#     counted, not a finding (libjpeg-turbo reads some damaged files without a warning: see
#     tools/conformance/known-disagreements.tsv).
#
# A crash, hang, out-of-memory or finding fails the run and is copied into
# lib/tests/fuzz-regressions/ (named by its kind and hash): commit it with the fix;
# `cargo test -p joip --test fuzz_regressions` replays every file there from then on.
# A crash replays with: target/fuzz/build/x86_64-unknown-linux-gnu/release/stamp FILE
# Logs: target/fuzz/fuzz.log (libFuzzer), target/fuzz/oracle.log.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

SECONDS_BUDGET="${1:-600}"
[[ "$SECONDS_BUDGET" =~ ^[0-9]+$ ]] || die "usage: tools/fuzz.sh [SECONDS]"
CARGO_FUZZ_VERSION=0.13.1
TOOLS="$ROOT/target/fuzz-tools"
OUT="$ROOT/target/fuzz"
REGRESSIONS="$ROOT/lib/tests/fuzz-regressions"
TRIPLE=x86_64-unknown-linux-gnu
JOBS="${JOIP_FUZZ_JOBS:-$(nproc)}"
mkdir -p "$OUT" "$REGRESSIONS"

bootstrap_codec_tools
command -v cjpeg >/dev/null && command -v djpeg >/dev/null \
  || die "cjpeg and djpeg not found (Debian: apt-get install libjpeg-turbo-progs)"

if [ "$("$TOOLS/bin/cargo-fuzz" --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION into target/fuzz-tools"
  cargo install --quiet --locked --force --root "$TOOLS" cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
export PATH="$TOOLS/bin:$PATH"

started=$(date +%s)
log "building the fuzz target (fuzz/, instrumented; target/fuzz/build)"
cargo fuzz build --fuzz-dir fuzz --sanitizer none --debug-assertions --target-dir "$OUT/build" stamp
FUZZER="$OUT/build/$TRIPLE/release/stamp"
built=$(date +%s)

rm -rf "$OUT/seeds" "$OUT/artifacts"
mkdir -p "$OUT/seeds" "$OUT/artifacts" "$OUT/corpus"
python3 fuzz/seeds.py "$OUT/seeds"

# $1: a file to keep; $2: its kind. Copies it into lib/tests/fuzz-regressions/ as KIND-HASH.
keep_finding() {
  local name
  name="$2-$(sha1sum "$1" | cut -c1-16)"
  cp "$1" "$REGRESSIONS/$name"
  echo "  lib/tests/fuzz-regressions/$name"
}

log "fuzzing for $SECONDS_BUDGET s on $JOBS jobs (log: target/fuzz/fuzz.log)"
status=0
# -fork stops at the first crash, hang or OOM (the -ignore_* flags), leaving it in artifacts/.
"$FUZZER" "$OUT/corpus" "$OUT/seeds" "$REGRESSIONS" \
  -fork="$JOBS" -ignore_crashes=0 -ignore_timeouts=0 -ignore_ooms=0 \
  -max_total_time="$SECONDS_BUDGET" -timeout=10 -rss_limit_mb=1024 -max_len=65536 \
  -dict=fuzz/jpeg.dict -artifact_prefix="$OUT/artifacts/" -print_final_stats=1 \
  >"$OUT/fuzz.log" 2>&1 || status=$?
fuzzed=$(date +%s)
# The last status line: "#EXECS: cov: N ft: N corp: N exec/s: N ... time: Ns".
stats=$(grep -E '^#[0-9]+: cov:' "$OUT/fuzz.log" | tail -1 || true)
execs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$stats")
corpus=$(ls "$OUT/corpus" | wc -l)
echo "fuzz: build $((built - started)) s, fuzzing $((fuzzed - built)) s: ${execs:-0} executions" \
  "($(( ${execs:-0} / (fuzzed - built > 0 ? fuzzed - built : 1) ))/s), corpus $corpus files;" \
  "last status: ${stats:-none}"

findings=$(find "$OUT/artifacts" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
if [ -n "$findings" ]; then
  grep -E -B2 -A12 'panicked at|ERROR: libFuzzer' "$OUT/fuzz.log" | head -60 || true
  log "libFuzzer found these; copied into lib/tests/fuzz-regressions/ (commit them with the fix):"
  for f in $findings; do keep_finding "$f" "$(basename "$f" | cut -d- -f1)"; done
  die "the fuzzer found $(wc -l <<<"$findings") crashing, hanging or over-memory inputs"
fi
[ "$status" = 0 ] || { tail -30 "$OUT/fuzz.log"; die "libFuzzer exited with $status and left no input"; }

log "oracle pass: the corpus through stamp and djpeg -strict (log: target/fuzz/oracle.log)"
rm -f "$OUT/oracle-findings.txt"
if ! JOIP_FUZZ_CORPUS="$OUT/corpus" JOIP_FUZZ_FINDINGS="$OUT/oracle-findings.txt" \
  cargo test --quiet -p joip --test fuzz_regressions -- --ignored --nocapture >"$OUT/oracle.log" 2>&1; then
  tail -30 "$OUT/oracle.log"
  if [ -s "$OUT/oracle-findings.txt" ]; then
    log "published where djpeg -strict refuses; copied into lib/tests/fuzz-regressions/:"
    while read -r f; do keep_finding "$f" disagree; done <"$OUT/oracle-findings.txt"
  fi
  die "the oracle pass failed"
fi
grep -E '^fuzz corpus:' "$OUT/oracle.log" || true
echo "fuzz: oracle pass $(($(date +%s) - fuzzed)) s; total $(($(date +%s) - started)) s"

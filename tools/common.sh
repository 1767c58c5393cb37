# Shared by tools/dev.sh and tools/test.sh: the project-local toolchain and the emulator.
# Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
export PATH="$VENV/bin:$PATH"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# Installs the pinned emulator, cargo-lambda, cfn-lint and SAM CLI into ./.venv (once per
# requirements change).
bootstrap() {
  command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
  local req="$ROOT/tools/requirements.txt" stamp="$VENV/.requirements"
  if [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then return; fi
  log "installing the local toolchain into .venv (moto, cargo-lambda, cfn-lint, SAM CLI)"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install --quiet -r "$req" || die "pip install failed"
  cp "$req" "$stamp"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() { # port seconds what
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    port_open "$1" && return 0
    sleep 0.1
  done
  die "$3 did not come up on 127.0.0.1:$1 within $2 s"
}

# Starts moto on 127.0.0.1:$1, logging to $2; sets EMULATOR_PID.
start_emulator() {
  port_open "$1" && die "port $1 is already in use"
  "$VENV/bin/python" "$ROOT/tools/emulator.py" -H 127.0.0.1 -p "$1" >"$2" 2>&1 &
  EMULATOR_PID=$!
  wait_for_port "$1" 30 "the AWS emulator (moto)"
}

# The local stack's dev-token secret: generated once per checkout into .local/ (never committed,
# never built in), so no two checkouts share one.
local_secret() {
  local file="$ROOT/.local/dev-token-secret"
  if [ ! -s "$file" ]; then
    mkdir -p "$ROOT/.local"
    (umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(32))' >"$file")
  fi
  cat "$file"
}

# The SDK settings that point every process at an emulator on port $1, and local mode with its
# dev-token secret.
use_emulator() {
  export AWS_ENDPOINT_URL="http://127.0.0.1:$1"
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
  export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
  export AWS_REGION="${AWS_REGION:-us-east-1}"
  export AWS_DEFAULT_REGION="$AWS_REGION"
  export JOIP_LOCAL=1
  JOIP_DEV_TOKEN_SECRET="${JOIP_DEV_TOKEN_SECRET:-$(local_secret)}"
  export JOIP_DEV_TOKEN_SECRET
}

# Kills every background job this shell started (and their children).
stop_children() {
  local pids
  pids=$(jobs -p)
  [ -n "$pids" ] && kill $pids 2>/dev/null
  pkill -P $$ 2>/dev/null || true
  wait 2>/dev/null || true
}

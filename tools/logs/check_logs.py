#!/usr/bin/env python3
"""Checks what the functions log. Run by tools/test.sh after the tests and the contract run.

1. **Deployed format.** Every function binary (target/debug/<name>) is run the way Lambda runs it:
   deployed settings (no JOIP_LOCAL, no dev-token secret; the names template.yaml sets, pointed at
   the test emulator), the runtime's own environment, and a minimal Lambda Runtime API (served
   here) that hands it every sample event in events/<name>/ (plus a live share code to resolve).
   Its stdout and stderr, which is what CloudWatch receives, go to <out>/deployed/<name>.log, and
   every line must be a JSON object carrying the request id (`span.request_id`, the API Gateway
   request id, or `span.requestId`, the Lambda one). Running the real binaries rather than a
   subscriber in a test also covers what the Lambda runtime and the SDK print themselves.
2. **No secrets**, in those logs and in the local run's (watch.log: every function's output
   during cargo test and the contract run, in watch's local format; poller.log): no JWT or bearer
   token, no full share code (a UUIDv4 that is or was a share code in this run, or any UUID
   logged as a code or in a share path; the 8-character hint is fine), no presigned-URL signature
   or security token, no AWS access key id or secret access key, no dev-token or cursor secret.
   Offending lines are printed with every secret in them redacted.
3. `--self-test` proves the check can fail: it injects one fake leak of each kind (and a
   non-JSON and a request-id-less line) into copies of the logs and expects each to be caught,
   and never printed.

Share codes known to the run come from the contract run's HAR report (every `shareCode` the API
answered, every code asked for; in $JOIP_CONTRACT_OUT or <logs>/schemathesis), the sample events,
and a scan of the table's share-code items.

Stdlib only, except the table scan, which uses boto3 from the project's .venv when present.
Exit status: 0 clean, 1 a leak or a malformed deployed line, 2 the check itself failed.
"""

import argparse
import http.server
import json
import os
import re
import secrets as random_secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
UUID_RE = re.compile(UUID)
MIN_SECRET = 8  # shorter exact values ("test", the emulator's key) would match everywhere
MAX_SHOWN = 10  # offending lines printed per file and kind

# Leaks recognised by their shape, whatever their value.
SHAPES = [
    ("JWT", re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")),
    ("bearer token", re.compile(r"(?i)\bbearer\s+(?!\[filtered\])[A-Za-z0-9._~+/-]{8,}=*")),
    ("presigned URL signature", re.compile(r"(?i)x-amz-signature=[0-9a-f]*")),
    ("presigned URL security token", re.compile(r"(?i)x-amz-security-token=[^\s&\"']*")),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")),
    ("AWS secret access key", re.compile(
        r"(?i)(?:aws_?)?secret_?access_?key[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9/+=]{8,}")),
    ("share code", re.compile(
        r"(?i)(?:/shared/media/|share_?code[\"']?\s*[:=]\s*[\"']?|\bcode[\"']?\s*[:=]\s*[\"']?)"
        + UUID)),
]


class Secrets:
    """Exact values that must never be logged, by kind; share codes by lookup."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}  # value -> kind
        self.codes: set[str] = set()
        self.live_codes: set[str] = set()

    def add(self, kind: str, value: str | None) -> None:
        if value and len(value) >= MIN_SECRET:
            self.values[value] = kind

    def find(self, line: str) -> list[tuple[str, str]]:
        found = [(kind, m.group(0)) for kind, rx in SHAPES for m in rx.finditer(line)]
        found += [(kind, v) for v, kind in self.values.items() if v in line]
        found += [("share code", u) for u in UUID_RE.findall(line) if u.lower() in self.codes]
        return found

    def redact(self, line: str) -> str:
        for kind, rx in SHAPES:
            line = rx.sub(f"<{kind} redacted>", line)
        for value, kind in self.values.items():
            line = line.replace(value, f"<{kind} redacted>")
        line = UUID_RE.sub(
            lambda m: "<share code redacted>" if m.group(0).lower() in self.codes else m.group(0),
            line)
        return line if len(line) <= 400 else line[:400] + "…"


def known_secrets(har_dirs: list[Path], extra_codes: set[str], scan_table: bool) -> Secrets:
    """The run's secrets: `live_codes` (from the table) are also kept apart, for the resolve
    event."""
    s = Secrets()
    secret_file = ROOT / ".local" / "dev-token-secret"
    s.add("dev-token secret", os.environ.get("JOIP_DEV_TOKEN_SECRET"))
    if secret_file.is_file():
        s.add("dev-token secret", secret_file.read_text().strip())
    s.add("cursor secret", os.environ.get("JOIP_CURSOR_SECRET"))
    s.add("AWS secret access key", os.environ.get("AWS_SECRET_ACCESS_KEY"))
    s.add("AWS session token", os.environ.get("AWS_SESSION_TOKEN"))
    s.codes |= {c.lower() for c in extra_codes}
    # In a HAR, response bodies are JSON strings: their quotes come escaped.
    code_rx = re.compile(r'shareCode\\?"\s*:\s*\\?"(' + UUID + ")|/shared/media/(" + UUID + ")")
    for d in har_dirs:
        for har in sorted(d.glob("har-*.json")) if d.is_dir() else []:
            for m in code_rx.finditer(har.read_text(errors="replace")):
                s.codes.add((m.group(1) or m.group(2)).lower())
    if scan_table:
        s.live_codes = table_share_codes()
        s.codes |= s.live_codes
    return s


def table_share_codes() -> set[str]:
    """Live share codes in the stack's table (`SHARE#{code}` items)."""
    table = os.environ.get("JOIP_TABLE")
    if not table or not os.environ.get("AWS_ENDPOINT_URL"):
        return set()
    try:
        import boto3  # the project's .venv has it (moto needs it)
    except ImportError:
        print("check_logs: no boto3, the table's share codes are not looked for", file=sys.stderr)
        return set()
    db = boto3.client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    codes: set[str] = set()
    for page in db.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression="begins_with(pk, :p)",
        ExpressionAttributeValues={":p": {"S": "SHARE#"}},
        ProjectionExpression="pk",
    ):
        codes |= {i["pk"]["S"].removeprefix("SHARE#").lower() for i in page["Items"]}
    return codes


def scan(files: list[Path], json_files: list[Path], known: Secrets) -> list[str]:
    """Human-readable findings (secrets redacted); empty when clean."""
    findings: list[str] = []
    for path in files + json_files:
        shown: dict[str, int] = {}

        def report(kind: str, n: int, line: str) -> None:
            shown[kind] = shown.get(kind, 0) + 1
            if shown[kind] <= MAX_SHOWN:
                findings.append(f"{path}:{n}: {kind}: {known.redact(line)}")
            elif shown[kind] == MAX_SHOWN + 1:
                findings.append(f"{path}: more {kind} lines not shown")

        for n, raw in enumerate(path.read_text(errors="replace").splitlines(), 1):
            line = ANSI.sub("", raw)
            for kind in dict.fromkeys(kind for kind, _ in known.find(line)):
                report(kind, n, line)
            if path in json_files and line.strip():
                problem = deployed_line_problem(line)
                if problem:
                    report(problem, n, line)
    return findings


def deployed_line_problem(line: str) -> str | None:
    try:
        record = json.loads(line)
    except ValueError:
        return "not a JSON line"
    if not isinstance(record, dict) or "level" not in record or "fields" not in record:
        return "not a tracing JSON record"
    span = record.get("span") if isinstance(record.get("span"), dict) else {}
    if not (span.get("request_id") or span.get("requestId")):
        return "no request id"
    return None


# ------------------------------------------------------------------------------------------------
# The deployed run: each function binary against a minimal Lambda Runtime API.


class RuntimeApi(http.server.ThreadingHTTPServer):
    """Serves /2018-06-01/runtime/... for one function: hands out `events` one by one, records
    each answer, and blocks `next` once they are used up (the harness then stops the process)."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # the function is stopped while it waits for a next event: nothing to report

    def __init__(self, function: str, events: list[tuple[str, bytes]]):
        super().__init__(("127.0.0.1", 0), RuntimeHandler)
        self.function = function
        self.pending = list(events)
        self.answers: dict[str, tuple[str, bytes]] = {}  # request id -> (kind, body)
        self.names: dict[str, str] = {}  # request id -> event name
        self.init_error: bytes | None = None
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.stopping = threading.Event()


class RuntimeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: RuntimeApi

    def log_message(self, *args) -> None:  # quiet
        pass

    def _reply(self, status: int, body: bytes = b"{}", headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if not self.path.endswith("/runtime/invocation/next"):
            return self._reply(404)
        with self.server.lock:
            event = self.server.pending.pop(0) if self.server.pending else None
        if event is None:
            self.server.stopping.wait(60)
            return self._reply(500)
        name, body = event
        request_id = str(uuid.uuid4())
        self.server.names[request_id] = name
        fn = self.server.function
        self._reply(200, body, {
            "lambda-runtime-aws-request-id": request_id,
            "lambda-runtime-deadline-ms": str(int(time.time() * 1000) + 30_000),
            "lambda-runtime-invoked-function-arn":
                f"arn:aws:lambda:us-east-1:123456789012:function:{fn}",
            "lambda-runtime-trace-id":
                f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=0",
        })

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        parts = self.path.split("/")
        if self.path.endswith("/runtime/init/error"):
            self.server.init_error = body
            self.server.done.set()
        elif len(parts) >= 2 and parts[-1] in ("response", "error"):
            with self.server.lock:
                self.server.answers[parts[-2]] = (parts[-1], body)
                if not self.server.pending and len(self.server.answers) == len(self.server.names):
                    self.server.done.set()
        self._reply(202)


def deployed_events(function: str, live_code: str | None) -> list[tuple[str, bytes]]:
    events = [(p.name, p.read_bytes()) for p in sorted((ROOT / "events" / function).glob("*.json"))]
    if function == "resolve-shared-media" and live_code and events:
        # The sample events hold only unknown codes: also resolve a live one (its log line).
        template = json.loads(events[0][1])
        old = template["pathParameters"]["code"]
        events.append(("live-code (from unknown-code.json)",
                       json.dumps(template).replace(old, live_code).encode()))
    return events


def run_deployed(out: Path, live_code: str | None, secret_env: dict[str, str]) -> list[str]:
    """Runs every function with a sample event directory; returns problems (not log findings)."""
    out.mkdir(parents=True, exist_ok=True)
    problems = []
    for function in sorted(p.name for p in (ROOT / "functions").iterdir() if p.is_dir()):
        binary = ROOT / "target" / "debug" / function
        events = deployed_events(function, live_code)
        if not events:
            continue
        if not binary.is_file():
            problems.append(f"{function}: {binary} is not built (cargo build --workspace)")
            continue
        api = RuntimeApi(function, events)
        threading.Thread(target=api.serve_forever, daemon=True).start()
        env = deployed_env(function, f"127.0.0.1:{api.server_address[1]}", secret_env)
        log = out / f"{function}.log"
        with log.open("wb") as sink:
            proc = subprocess.Popen([str(binary)], env=env, stdout=sink, stderr=subprocess.STDOUT)
            finished = api.done.wait(120)
            api.stopping.set()
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        api.shutdown()
        api.server_close()
        if api.init_error is not None:
            problems.append(f"{function}: init error {api.init_error[:300]!r} (see {log})")
        elif not finished:
            problems.append(f"{function}: answered {len(api.answers)} of {len(events)} events "
                            f"within 120 s (see {log})")
        for request_id, (kind, _) in api.answers.items():
            if kind == "error":
                problems.append(f"{function}: {api.names[request_id]} answered an invocation error")
        print(f"  {function}: {len(api.answers)}/{len(events)} events, "
              f"{sum(1 for _ in log.open('rb'))} log lines", file=sys.stderr)
    return problems


def deployed_secrets() -> dict[str, str]:
    """Fresh secrets shaped like Lambda's (temporary credentials of the execution role) and the
    cursor secret; the emulator accepts any credentials, and each value is looked for in the
    logs."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    return {
        "AWS_ACCESS_KEY_ID": "ASIA" + "".join(random_secrets.choice(alphabet) for _ in range(16)),
        "AWS_SECRET_ACCESS_KEY": random_secrets.token_urlsafe(30)[:40],
        "AWS_SESSION_TOKEN": random_secrets.token_urlsafe(300),
        "JOIP_CURSOR_SECRET": random_secrets.token_urlsafe(32),
    }


def deployed_env(function: str, runtime_api: str, secret_env: dict[str, str]) -> dict[str, str]:
    """What Lambda gives a deployed function: template.yaml's settings (never JOIP_LOCAL or the
    dev-token secret) and the runtime's own variables. AWS calls go to the test emulator."""
    keep = ["PATH", "HOME", "AWS_ENDPOINT_URL", "AWS_REGION", "JOIP_TABLE",
            "JOIP_GENERAL_BUCKET", "JOIP_USER_MEDIA_BUCKET"]
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(secret_env)
    env.update({
        "AWS_DEFAULT_REGION": env.get("AWS_REGION", "us-east-1"),
        "JOIP_PUBLIC_BASE_URL": "https://d111111abcdef8.cloudfront.net",
        "RUST_LOG": "info",
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/23/[$LATEST]0123456789abcdef0123456789abcdef",
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "TZ": ":UTC",
    })
    return env


# ------------------------------------------------------------------------------------------------


def fake_leaks(known: Secrets) -> list[tuple[str, str]]:
    """(kind expected, line) pairs, one per kind of leak, with values the scan must not print."""
    code = next(iter(known.codes), None)
    leaks = [
        ("JWT", "2026-11-23T15:31:47Z  INFO request{route=\"x\"}: token "
                "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmYWtlLWxlYWsifQ.c2lnbmF0dXJlLWxlYWstdGVzdA"),
        ("bearer token", '{"level":"INFO","fields":{"message":"header","authorization":'
                         '"Bearer f4k3-0paque-t0ken-for-the-self-test"}}'),
        ("presigned URL signature",
         "url=https://bucket.s3.amazonaws.com/users/u/a.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256"
         "&X-Amz-Signature=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
        ("AWS access key id", "credentials from AKIAIOSFODNN7EXAMPLE loaded"),
        ("AWS secret access key", "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        ("share code", f"link resolved code={uuid.uuid4()}"),
    ]
    if code:
        leaks.append(("share code", f"INFO shared media_id=7 {code} (bare, known code)"))
    for value, kind in known.values.items():
        leaks.append((kind, f"WARN config: {value[:3]}…? no: {value}"))
    return leaks


def self_test(files: list[Path], json_files: list[Path], known: Secrets) -> list[str]:
    problems = []
    base = next((f for f in files if f.is_file()), None)
    json_base = next((f for f in json_files if f.is_file()), None)
    with tempfile.TemporaryDirectory() as tmp:
        def copy_with(src: Path | None, line: str) -> Path:
            # The log's last lines are enough company for the injected one (a load test's
            # watch.log is long, and each case scans its copy).
            dst = Path(tmp) / "copy.log"
            tail = src.read_text(errors="replace").splitlines()[-2000:] if src else []
            dst.write_text("\n".join([*tail, line]) + "\n")
            return dst

        cases = [(kind, line, False) for kind, line in fake_leaks(known)]
        if json_base:
            cases += [("not a JSON line", "thread 'main' panicked at src/main.rs:1:1", True),
                      ("no request id", '{"level":"INFO","fields":{"message":"cold start"}}', True)]
        for kind, line, as_json in cases:
            copy = copy_with(json_base if as_json else base, line)
            injected_at = len(copy.read_text().splitlines())
            findings = scan([] if as_json else [copy], [copy] if as_json else [], known)
            printed = "\n".join(findings)
            if not any(f.startswith(f"{copy}:{injected_at}: {kind}: ") for f in findings):
                problems.append(f"self-test: an injected {kind} was not caught")
            for _, value in known.find(line):
                if value in printed:
                    problems.append(f"self-test: an injected {kind} was printed unredacted")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logs", type=Path, default=ROOT / "target" / "test-logs",
                        help="the test run's log directory (watch.log, poller.log, schemathesis/)")
    parser.add_argument("--scan", type=Path, nargs="*", default=None,
                        help="scan these files instead of <logs>/watch.log and poller.log")
    parser.add_argument("--no-deployed", action="store_true",
                        help="skip running the functions in the deployed format")
    parser.add_argument("--self-test", action="store_true",
                        help="also prove the check catches injected leaks")
    args = parser.parse_args()

    files = args.scan if args.scan is not None else [args.logs / "watch.log",
                                                     args.logs / "poller.log"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        print(f"check_logs: missing {', '.join(missing)}", file=sys.stderr)
        return 2

    event_codes = {m.lower() for p in (ROOT / "events").glob("*/*.json")
                   for m in re.findall(r'"code"\s*:\s*"(' + UUID + ')"', p.read_text())}
    reports = Path(os.environ.get("JOIP_CONTRACT_OUT") or args.logs / "schemathesis")
    known = known_secrets([reports], event_codes, scan_table=True)
    secret_env = deployed_secrets()
    known.add("cursor secret", secret_env["JOIP_CURSOR_SECRET"])
    known.add("AWS secret access key", secret_env["AWS_SECRET_ACCESS_KEY"])
    known.add("AWS session token", secret_env["AWS_SESSION_TOKEN"])

    problems: list[str] = []
    json_files: list[Path] = []
    if not args.no_deployed:
        deployed = args.logs / "deployed"
        shutil.rmtree(deployed, ignore_errors=True)
        print("check_logs: running every function in the deployed format against events/",
              file=sys.stderr)
        live = min(known.live_codes, default=None)
        problems += run_deployed(deployed, live, secret_env)
        json_files = sorted(deployed.glob("*.log"))

    findings = scan(files, json_files, known)
    if args.self_test:
        problems += self_test(files, json_files, known)

    scanned = len(files) + len(json_files)
    lines = sum(len(f.read_text(errors="replace").splitlines()) for f in files + json_files)
    print(f"check_logs: {lines} lines in {scanned} files, {len(known.codes)} share codes and "
          f"{len(known.values)} secrets looked for", file=sys.stderr)
    for f in findings:
        print(f"check_logs: {f}", file=sys.stderr)
    for p in problems:
        print(f"check_logs: {p}", file=sys.stderr)
    if problems:
        return 2
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())

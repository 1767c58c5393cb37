"""The local API's front door: `cargo lambda watch`, with what API Gateway's HTTP API does that
watch does not.

watch turns each HTTP request into an API Gateway v2 event itself, and under a text content type
(none, text/*, application/json) it requires the body to be UTF-8: any other body gets watch's own
500 problem document and no function runs. API Gateway hands such a body to the function
base64-encoded with `isBase64Encoded: true`, and the function answers its documented 400. So this
front passes every request through to watch unchanged but that one kind: for it, it builds the
event as watch would (the route and path parameters from the router table in Cargo.toml,
`[workspace.metadata.lambda.watch.router]`), with the body base64-encoded, invokes the function
through watch's Lambda Invoke API, and answers what the function answered.

Usage: python tools/gateway.py --listen 127.0.0.1:9000 --watch 127.0.0.1:9001 [--router Cargo.toml]
"""

import argparse
import base64
import http.client
import json
import threading
import time
import tomllib
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "expect",
}


def is_text(content_type):
    """Whether watch sends a body of this content type as text (and so needs it UTF-8)."""
    if content_type is None:
        return True
    return content_type.startswith("text/") or content_type.startswith("application/json")


def is_utf8(body):
    try:
        body.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


class Router:
    """The routes of Cargo.toml's watch router: (method, template) -> function."""

    def __init__(self, cargo_toml):
        table = tomllib.loads(Path(cargo_toml).read_text())
        routes = table["workspace"]["metadata"]["lambda"]["watch"]["router"]
        self.routes = [
            (entry["method"].upper(), template.strip("/").split("/"), entry["function"])
            for template, entries in routes.items()
            for entry in entries
        ]

    def find(self, method, path):
        """(function, path parameters) of the route for `method` `path`, or None."""
        segments = path.strip("/").split("/")
        for route_method, template, function in self.routes:
            if route_method != method or len(template) != len(segments):
                continue
            params = {}
            for want, got in zip(template, segments):
                if want.startswith("{") and want.endswith("}"):
                    if not got:
                        break
                    params[want[1:-1]] = got
                elif want != got:
                    break
            else:
                return function, params
        return None


def event(method, target, headers, body, params):
    """The API Gateway v2 (HTTP API) event for a request whose body travels base64-encoded."""
    url = urlsplit(target)
    now = datetime.now(timezone.utc)
    merged = {}
    for name, value in headers:
        name = name.lower()
        merged[name] = f"{merged[name]},{value}" if name in merged else value
    query = {}
    for name, value in parse_qsl(url.query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    request_id = str(uuid.uuid4())
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": url.path,
        "rawQueryString": url.query,
        "cookies": [c.strip() for c in merged["cookie"].split(";")] if "cookie" in merged else None,
        "headers": merged,
        "queryStringParameters": query or None,
        "pathParameters": params or None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": method,
                "path": url.path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": base64.b64encode(body).decode(),
        "isBase64Encoded": True,
    }


class Front(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "joip-local-gateway"

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # watch logs every request already

    def _body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self, status, headers, body):
        self.send_response_only(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP and name.lower() not in ("date", "server"):
                self.send_header(name, value)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        body = self._body()
        if body and not is_utf8(body) and is_text(self.headers.get("Content-Type")):
            route = self.server.router.find(self.command, urlsplit(self.path).path)
            if route is not None:
                return self._invoke(body, *route)
        self._pass_through(body)

    def _pass_through(self, body):
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
        if body or self.command in ("POST", "PUT", "PATCH"):
            headers.append(("Content-Length", str(len(body))))
        status, answer_headers, data = self.server.watch(self.command, self.path, headers, body)
        self._answer(status, answer_headers, data)

    def _invoke(self, body, function, params):
        payload = event(self.command, self.path, self.headers.items(), body, params)
        path = f"/2015-03-31/functions/{function}/invocations"
        host, port = self.server.upstream
        payload = json.dumps(payload).encode()
        headers = [
            ("Host", f"{host}:{port}"),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
        ]
        status, _, data = self.server.watch("POST", path, headers, payload)
        try:
            answer = json.loads(data) if status == 200 else None
            code = int(answer["statusCode"])
        except (ValueError, TypeError, KeyError):
            # What API Gateway answers for a function that failed or answered nonsense.
            self._answer(500, [("Content-Type", "application/json")], b'{"message":"Internal Server Error"}')
            return
        headers = list((answer.get("headers") or {}).items())
        for name, values in (answer.get("multiValueHeaders") or {}).items():
            headers += [(name, v) for v in values if (name, v) not in headers]
        headers += [("Set-Cookie", c) for c in answer.get("cookies") or []]
        data = answer.get("body") or ""
        data = base64.b64decode(data) if answer.get("isBase64Encoded") else data.encode()
        self._answer(code, headers, data)

    def __getattr__(self, name):
        if name.startswith("do_"):  # every method (TRACE, PROPFIND, ...) goes to watch
            return self._handle
        raise AttributeError(name)


class Gateway(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, listen, watch, router):
        super().__init__(listen, Front)
        self.router = router
        self.upstream = watch
        self._local = threading.local()

    def watch(self, method, target, headers, body):
        """(status, headers, body) of watch's answer, on this thread's kept-alive connection."""
        for attempt in range(2):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection(*self.upstream, timeout=900)
                self._local.conn = conn
            try:
                conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(name, value)
                conn.endheaders(body or None)
                answer = conn.getresponse()
                data = answer.read()
                if answer.will_close:
                    conn.close()
                    self._local.conn = None
                return answer.status, answer.getheaders(), data
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt:
                    return 502, [("Content-Type", "application/json")], b'{"message":"Bad Gateway"}'
                time.sleep(0.05)
        raise AssertionError("unreachable")


def address(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=address, required=True)
    parser.add_argument("--watch", type=address, required=True)
    root = Path(__file__).resolve().parents[1]
    parser.add_argument("--router", default=root / "Cargo.toml")
    args = parser.parse_args()
    Gateway(args.listen, args.watch, Router(args.router)).serve_forever()


if __name__ == "__main__":
    main()

"""The local AWS emulator: moto server, with DynamoDB requests made atomic.

moto's DynamoDB backend evaluates a condition and applies the write in separate Python steps with
no lock, and moto server answers requests on many threads, so two concurrent conditional writes (or
transactions) can both pass the same condition. Real DynamoDB never allows that: every write is
atomic and transactions are serializable. This launcher runs moto server exactly as `moto_server`
does, but holds one lock around each DynamoDB request, so conditional writes and transactions
behave as they do on AWS. S3 and SQS stay fully concurrent.

Usage: python tools/emulator.py -H 127.0.0.1 -p 4566
"""

import argparse
import os
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

_dynamodb = threading.Lock()


class AtomicDynamoDB:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("DynamoDB_"):
            return self.app(environ, start_response)
        with _dynamodb:
            # Drain the body inside the lock: the response may be produced lazily.
            body = b"".join(self.app(environ, start_response))
        return [body]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=4566)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        AtomicDynamoDB(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()

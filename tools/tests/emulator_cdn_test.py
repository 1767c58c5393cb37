"""Tests of the emulator's CDN (tools/emulator.py): a cache in front of S3 that keeps serving an
object after S3 forgets it, until its TTL ends or a CloudFront invalidation covers it.

Each test class starts its own emulator on a free port (-H 127.0.0.1 -p PORT) and stops it at the
end. Run from the repository root:

    .venv/bin/python -m unittest -v tools/tests/emulator_cdn_test.py
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

EMULATOR = Path(__file__).resolve().parents[1] / "emulator.py"
DELAY_MS = 300  # JOIP_EMULATOR_INVALIDATION_MS of the main emulator
MARGIN = 1.5  # seconds allowed beyond the delay for an invalidation to show
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    """tools/emulator.py in a subprocess, with the clients and helpers the tests use."""

    def __init__(self, invalidation_ms):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()
        env = dict(os.environ, JOIP_EMULATOR_INVALIDATION_MS=str(invalidation_ms))
        env.pop("JOIP_EMULATOR_CHAOS", None)
        self.process = subprocess.Popen(
            [sys.executable, str(EMULATOR), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self._wait_for_port()
        settings = dict(
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            # No retries: botocore's retries={"max_attempts": 1} would still retry once (it
            # counts retries, not attempts), and a retried fault hides from the test.
            config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        )
        self.s3 = boto3.client("s3", **settings)
        self.cloudfront = boto3.client("cloudfront", **settings)

    def _wait_for_port(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the emulator exited early:\n{self.output()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the emulator did not come up within 60 s")

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()

    # The origin and the distribution.

    def distribution(self):
        """(distribution id, bucket): a new bucket behind a new distribution, made as on AWS."""
        bucket = f"cdn-{uuid.uuid4().hex[:12]}"
        self.s3.create_bucket(Bucket=bucket)
        # As template.yaml's: CloudFront may read some prefixes (and the rest is refused).
        grants = [f"arn:aws:s3:::{bucket}/{prefix}/*" for prefix in ("community", "other")]
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudfront.amazonaws.com"},
                    "Action": "s3:GetObject",
                    "Resource": grants,
                }
            ],
        }
        self.s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
        created = self.cloudfront.create_distribution(
            DistributionConfig={
                "CallerReference": bucket,
                "Comment": "community images",
                "Enabled": True,
                "Origins": {
                    "Quantity": 1,
                    "Items": [
                        {
                            "Id": "general",
                            "DomainName": f"{bucket}.s3.us-east-1.amazonaws.com",
                            "S3OriginConfig": {"OriginAccessIdentity": ""},
                            "OriginAccessControlId": "E2QWRUHAPOMQZL",
                        }
                    ],
                },
                "DefaultCacheBehavior": {
                    "TargetOriginId": "general",
                    "ViewerProtocolPolicy": "redirect-to-https",
                    "CachePolicyId": CACHING_OPTIMIZED,
                },
            }
        )
        return created["Distribution"]["Id"], bucket

    # The edge.

    def get(self, dist_id, path, method="GET"):
        """(status, headers, body) of a viewer request for `path` ("/community/...")."""
        request = urllib.request.Request(f"{self.url}/_joip/cdn/{dist_id}{path}", method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers, error.read()

    def joip(self, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}/_joip/{path}", data=data)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def cached(self, dist_id):
        return self.joip(f"cdn/{dist_id}")["distributions"][dist_id]["cached"]

    def invalidate(self, dist_id, paths, reference=None):
        batch = {
            "Paths": {"Quantity": len(paths), "Items": paths},
            "CallerReference": reference or uuid.uuid4().hex,
        }
        answer = self.cloudfront.create_invalidation(
            DistributionId=dist_id, InvalidationBatch=batch
        )
        return answer["Invalidation"]

    def invalidation_ids(self, dist_id):
        listed = self.cloudfront.list_invalidations(DistributionId=dist_id)["InvalidationList"]
        return [i["Id"] for i in listed.get("Items", [])]

    def wait_until_completed(self, dist_id, invalidation):
        """Polls GetInvalidation until CloudFront says the invalidation is Completed."""
        deadline = time.monotonic() + DELAY_MS / 1000 + MARGIN
        while time.monotonic() < deadline:
            got = self.cloudfront.get_invalidation(DistributionId=dist_id, Id=invalidation["Id"])
            if got["Invalidation"]["Status"] == "Completed":
                return
            time.sleep(0.05)
        raise AssertionError(f"invalidation {invalidation['Id']} never completed")

    def wait_until_gone(self, dist_id, path, since):
        """Polls `path` until the edge answers 404; the seconds that took from `since`."""
        deadline = since + DELAY_MS / 1000 + MARGIN
        while time.monotonic() < deadline:
            status, _, _ = self.get(dist_id, path)
            if status == 404:
                return time.monotonic() - since
            time.sleep(0.05)
        raise AssertionError(f"{path} still served {DELAY_MS} ms + {MARGIN} s after invalidating")


def _error_code(error):
    return error.response["Error"]["Code"], error.response["ResponseMetadata"]["HTTPStatusCode"]


class CdnTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emulator = Emulator(DELAY_MS)

    @classmethod
    def tearDownClass(cls):
        cls.emulator.stop()

    def setUp(self):
        self.e = self.emulator
        self.dist, self.bucket = self.e.distribution()

    def put(self, key, body=b"image bytes", **kwargs):
        kwargs.setdefault("ContentType", "image/webp")
        return self.e.s3.put_object(Bucket=self.bucket, Key=key, Body=body, **kwargs)

    def delete(self, key):
        self.e.s3.delete_object(Bucket=self.bucket, Key=key)

    def assert_served(self, path, body, cache):
        status, headers, served = self.e.get(self.dist, path)
        self.assertEqual((status, served), (200, body), path)
        self.assertEqual(headers["X-Cache"], f"{cache} from cloudfront", path)
        return headers

    def test_a_cached_object_is_served_after_s3_deletes_it(self):
        self.put("community/kept.webp", b"kept")
        self.assert_served("/community/kept.webp", b"kept", "Miss")
        self.delete("community/kept.webp")
        headers = self.assert_served("/community/kept.webp", b"kept", "Hit")
        self.assertGreaterEqual(int(headers["Age"]), 0)
        self.assertEqual(self.e.cached(self.dist), ["/community/kept.webp"])

    def test_an_exact_invalidation_purges_its_path_within_the_delay(self):
        self.put("community/gone.webp", b"gone")
        self.put("community/neighbour.webp", b"stays")
        self.assert_served("/community/gone.webp", b"gone", "Miss")
        self.assert_served("/community/neighbour.webp", b"stays", "Miss")
        self.delete("community/gone.webp")
        self.delete("community/neighbour.webp")
        started = time.monotonic()
        invalidation = self.e.invalidate(self.dist, ["/community/gone.webp"])
        self.assertEqual(invalidation["Status"], "InProgress")
        if time.monotonic() - started < DELAY_MS / 2000:  # still in progress: still served
            self.assert_served("/community/gone.webp", b"gone", "Hit")
        self.e.wait_until_gone(self.dist, "/community/gone.webp", started)
        got = self.e.cloudfront.get_invalidation(DistributionId=self.dist, Id=invalidation["Id"])
        self.assertEqual(got["Invalidation"]["Status"], "Completed")
        self.assert_served("/community/neighbour.webp", b"stays", "Hit")
        report = self.e.joip(f"cdn/{self.dist}")["distributions"][self.dist]
        self.assertEqual(report["cached"], ["/community/neighbour.webp"])
        self.assertEqual(report["invalidations"], {"in_progress": 0, "completed": 1})

    def test_a_percent_encoded_path_invalidates_the_decoded_key(self):
        self.put("community/a b+é.webp", b"spaced")
        self.assert_served("/community/a%20b+%C3%A9.webp", b"spaced", "Miss")
        self.delete("community/a b+é.webp")
        started = time.monotonic()
        self.e.invalidate(self.dist, ["/community/a%20b+%C3%A9.webp"])
        self.e.wait_until_gone(self.dist, "/community/a%20b+%C3%A9.webp", started)

    def test_a_wildcard_invalidation_purges_every_path_under_it(self):
        for key in ("community/one.webp", "community/deep/two.webp", "other/three.webp"):
            self.put(key, key.encode())
            self.assert_served(f"/{key}", key.encode(), "Miss")
            self.delete(key)
        started = time.monotonic()
        self.e.invalidate(self.dist, ["/community/*"])
        self.e.wait_until_gone(self.dist, "/community/one.webp", started)
        self.e.wait_until_gone(self.dist, "/community/deep/two.webp", started)
        self.assert_served("/other/three.webp", b"other/three.webp", "Hit")
        self.assertEqual(self.e.cached(self.dist), ["/other/three.webp"])

    def test_a_miss_is_a_404_that_is_not_cached(self):
        status, headers, body = self.e.get(self.dist, "/community/later.webp")
        self.assertEqual(status, 404)
        self.assertIn(b"NoSuchKey", body)
        self.assertEqual(headers["X-Cache"], "Error from cloudfront")
        self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
        self.assertEqual(self.e.cached(self.dist), [])
        self.put("community/later.webp", b"now here")
        self.assert_served("/community/later.webp", b"now here", "Miss")

    def test_what_the_bucket_policy_does_not_grant_is_refused_and_not_cached(self):
        self.put("staging/private.webp", b"private")
        status, headers, body = self.e.get(self.dist, "/staging/private.webp")
        self.assertEqual(status, 403)
        self.assertIn(b"AccessDenied", body)
        self.assertEqual(headers["X-Cache"], "Error from cloudfront")
        self.assertEqual(self.e.cached(self.dist), [])

    def test_an_unknown_distribution_is_a_404(self):
        self.assertEqual(self.e.get("E0000000000000", "/community/x.webp")[0], 404)

    def test_the_ttl_is_s_maxage_else_max_age(self):
        expiring = {
            "/community/max-age.webp": "public, max-age=1",
            "/community/s-maxage.webp": "public, max-age=3600, s-maxage=1",
        }
        lasting = {
            "/community/s-maxage-long.webp": "public, s-maxage=3600, max-age=1",
            "/community/default.webp": None,
            "/community/zero.webp": "max-age=0",  # CachingOptimized's minimum TTL: 1 s
        }
        for path, cache_control in {**expiring, **lasting}.items():
            extra = {"CacheControl": cache_control} if cache_control else {}
            self.put(path[1:], b"old", **extra)
            self.assert_served(path, b"old", "Miss")
            self.put(path[1:], b"new", **extra)
            self.assert_served(path, b"old", "Hit")
        time.sleep(1.3)
        for path in expiring:
            self.assert_served(path, b"new", "Miss")
        for path in lasting:
            if path != "/community/zero.webp":
                self.assert_served(path, b"old", "Hit")

    def test_the_ttl_is_clamped(self):
        spec = importlib.util.spec_from_file_location("joip_emulator", EMULATOR)
        emulator = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(emulator)
        self.assertEqual(emulator.ttl_of(None), 86400)
        self.assertEqual(emulator.ttl_of("max-age=0"), 1)
        self.assertEqual(emulator.ttl_of("max-age=99999999999"), 31536000)
        self.assertEqual(emulator.ttl_of("no-store, max-age=600"), 1)
        self.assertEqual(emulator.ttl_of('max-age=600, s-maxage="30"'), 30)

    def test_headers_are_passed_through_and_the_policy_headers_added(self):
        put = self.put(
            "community/meta.webp",
            b"12345",
            CacheControl="public, max-age=31536000, immutable",
            Metadata={"owner": "u-1"},
        )
        self.put(
            "community/download.bin", b"x", ContentDisposition="attachment", ContentEncoding="gzip"
        )
        for method, cache in (("GET", "Miss"), ("HEAD", "Hit"), ("GET", "Hit")):
            status, headers, body = self.e.get(self.dist, "/community/meta.webp?v=2", method)
            self.assertEqual(status, 200)
            self.assertEqual(body, b"" if method == "HEAD" else b"12345")
            self.assertEqual(headers["X-Cache"], f"{cache} from cloudfront")
            self.assertEqual(headers["Content-Type"], "image/webp")
            self.assertEqual(headers["Content-Length"], "5")
            self.assertEqual(headers["Cache-Control"], "public, max-age=31536000, immutable")
            self.assertEqual(headers["ETag"], put["ETag"])
            self.assertIn("GMT", headers["Last-Modified"])
            self.assertEqual(headers["x-amz-meta-owner"], "u-1")
            self.assertNotIn("Content-Disposition", headers)
            self.assertNotIn("Content-Encoding", headers)
            self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
            self.assertEqual(headers["Content-Security-Policy"], "default-src 'none'; sandbox")
            self.assertEqual("Age" in headers, cache == "Hit")
        _, headers, _ = self.e.get(self.dist, "/community/download.bin")
        self.assertEqual(headers["Content-Disposition"], "attachment")
        self.assertEqual(headers["Content-Encoding"], "gzip")
        self.assertEqual([k for k in headers if k.lower().startswith("x-amz-meta-")], [])

    def test_a_caller_reference_is_idempotent(self):
        first = self.e.invalidate(self.dist, ["/community/a.webp"], "ref-1")
        again = self.e.invalidate(self.dist, ["/community/a.webp"], "ref-1")
        self.assertEqual(again["Id"], first["Id"])
        with self.assertRaises(ClientError) as caught:
            self.e.invalidate(self.dist, ["/community/b.webp"], "ref-1")
        self.assertEqual(_error_code(caught.exception), ("InvalidationBatchAlreadyExists", 409))
        self.assertEqual(self.e.invalidation_ids(self.dist), [first["Id"]])

    def test_invalid_batches_are_refused(self):
        cases = [
            (["community/no-slash.webp"], "InvalidArgument", 400),
            (["/community/*/middle.webp"], "InvalidArgument", 400),
            ([f"/community/{i}.webp" for i in range(3001)], "BatchTooLarge", 413),
        ]
        for paths, code, status in cases:
            with self.assertRaises(ClientError) as caught:
                self.e.invalidate(self.dist, paths)
            self.assertEqual(_error_code(caught.exception), (code, status), paths[:1])
        with self.assertRaises(ClientError) as caught:
            batch = {"Paths": {"Quantity": 2, "Items": ["/a"]}, "CallerReference": "q"}
            self.e.cloudfront.create_invalidation(DistributionId=self.dist, InvalidationBatch=batch)
        self.assertEqual(_error_code(caught.exception), ("InconsistentQuantities", 400))
        with self.assertRaises(ClientError) as caught:
            self.e.invalidate("E0000000000000", ["/a"])
        self.assertEqual(_error_code(caught.exception), ("NoSuchDistribution", 404))
        self.assertEqual(self.e.invalidation_ids(self.dist), [])

    def test_completed_invalidations_no_longer_count_towards_the_limit(self):
        paths = [f"/community/{i}.webp" for i in range(3000)]
        self.e.wait_until_completed(self.dist, self.e.invalidate(self.dist, paths))
        self.e.invalidate(self.dist, paths)

    def test_the_fail_switch_fails_exactly_k_invalidations(self):
        self.put("community/f.webp", b"f")
        self.assert_served("/community/f.webp", b"f", "Miss")
        self.delete("community/f.webp")
        self.assertEqual(self.e.joip("cdn/fail", {"count": 2})["count"], 2)
        for _ in range(2):
            with self.assertRaises(ClientError) as caught:
                self.e.invalidate(self.dist, ["/community/f.webp"])
            self.assertEqual(_error_code(caught.exception), ("ServiceUnavailable", 503))
        self.assertEqual(self.e.joip("cdn/fail"), {"count": 0, "failed": 2})
        time.sleep(DELAY_MS / 1000 + 0.2)
        self.assert_served("/community/f.webp", b"f", "Hit")  # nothing was applied
        self.assertEqual(self.e.invalidation_ids(self.dist), [])
        started = time.monotonic()
        self.e.invalidate(self.dist, ["/community/f.webp"])
        self.e.wait_until_gone(self.dist, "/community/f.webp", started)

    def test_chaos_fails_an_invalidation_without_applying_it(self):
        self.put("community/c.webp", b"c")
        self.assert_served("/community/c.webp", b"c", "Miss")
        self.delete("community/c.webp")

        def chaos(request, **_):
            request.headers["x-joip-chaos"] = "1"

        events = self.e.cloudfront.meta.events
        events.register("before-sign.cloudfront.CreateInvalidation", chaos)
        try:
            with self.assertRaises(ClientError) as caught:
                self.e.invalidate(self.dist, ["/community/c.webp"])
        finally:
            events.unregister("before-sign.cloudfront.CreateInvalidation", chaos)
        faults = {
            ("ServiceUnavailable", 503),
            ("Throttling", 400),
            ("TooManyInvalidationsInProgress", 400),
        }
        self.assertIn(_error_code(caught.exception), faults)
        time.sleep(DELAY_MS / 1000 + 0.2)
        self.assert_served("/community/c.webp", b"c", "Hit")

    def test_concurrent_gets_while_invalidating(self):
        """Viewers fill the edge, reporters read it, invalidations purge it, all at once."""
        keys = [f"community/race-{i}.webp" for i in range(48)]
        for key in keys:
            self.put(key, key.encode())
        statuses, errors, stop = [], [], threading.Event()

        def keep(call):
            def loop():
                while not stop.is_set():
                    try:
                        call()
                    except Exception as error:  # noqa: BLE001 - reported below
                        errors.append(repr(error))

            return threading.Thread(target=loop)

        def view():
            for key in keys:
                statuses.append(self.e.get(self.dist, f"/{key}")[0])

        def report():
            self.e.joip("cdn")

        threads = [keep(view) for _ in range(8)] + [keep(report) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            for i, key in enumerate(keys[:16]):
                self.delete(key)
                self.put(keys[-1 - i], b"refilled")  # misses fill the edge meanwhile
                self.e.invalidate(self.dist, [f"/{key}"] if i % 2 else ["/community/race-*"])
            time.sleep(DELAY_MS / 1000)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(errors, [])
        self.assertTrue(statuses)
        self.assertEqual(set(statuses) - {200, 404}, set())
        self.e.wait_until_completed(self.dist, self.e.invalidate(self.dist, ["/*"]))
        self.assertEqual(self.e.cached(self.dist), [])
        for key in keys[:16]:
            self.assertEqual(self.e.get(self.dist, f"/{key}")[0], 404)
        self.assert_served(f"/{keys[-1]}", b"refilled", "Miss")
        self.assertIsNone(self.e.process.poll())


class InvalidationLimitTest(unittest.TestCase):
    """A second emulator whose invalidations stay in progress for ten minutes."""

    @classmethod
    def setUpClass(cls):
        cls.e = Emulator(600_000)

    @classmethod
    def tearDownClass(cls):
        cls.e.stop()

    def assert_too_many(self, dist_id, paths):
        with self.assertRaises(ClientError) as caught:
            self.e.invalidate(dist_id, paths)
        self.assertEqual(_error_code(caught.exception), ("TooManyInvalidationsInProgress", 400))

    def test_3000_paths_in_progress_at_most(self):
        dist_id, _ = self.e.distribution()
        self.e.invalidate(dist_id, [f"/community/{i}.webp" for i in range(2000)])
        self.e.invalidate(dist_id, [f"/community/{i}.webp" for i in range(1000)])
        self.assert_too_many(dist_id, ["/community/one-more.webp"])
        self.e.invalidate(dist_id, ["/community/*"])  # wildcards have their own limit
        other, _ = self.e.distribution()  # and the limit is per distribution
        self.e.invalidate(other, ["/community/one-more.webp"])
        report = self.e.joip(f"cdn/{dist_id}")["distributions"][dist_id]["invalidations"]
        self.assertEqual(report, {"in_progress": 3, "completed": 0})

    def test_15_wildcard_paths_in_progress_at_most(self):
        dist_id, _ = self.e.distribution()
        self.e.invalidate(dist_id, [f"/community/{i}/*" for i in range(10)])
        self.e.invalidate(dist_id, [f"/other/{i}/*" for i in range(5)])
        self.assert_too_many(dist_id, ["/more/*"])
        self.e.invalidate(dist_id, ["/community/exact.webp"])

    def test_an_invalidation_in_progress_does_not_purge(self):
        dist_id, bucket = self.e.distribution()
        self.e.s3.put_object(Bucket=bucket, Key="community/p.webp", Body=b"p")
        self.assertEqual(self.e.get(dist_id, "/community/p.webp")[0], 200)
        self.e.s3.delete_object(Bucket=bucket, Key="community/p.webp")
        invalidation = self.e.invalidate(dist_id, ["/community/p.webp"])
        time.sleep(0.5)
        status, headers, _ = self.e.get(dist_id, "/community/p.webp")
        self.assertEqual((status, headers["X-Cache"]), (200, "Hit from cloudfront"))
        got = self.e.cloudfront.get_invalidation(DistributionId=dist_id, Id=invalidation["Id"])
        self.assertEqual(got["Invalidation"]["Status"], "InProgress")


if __name__ == "__main__":
    unittest.main(verbosity=2)

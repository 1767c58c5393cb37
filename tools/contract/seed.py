"""Seeds what the contract run needs on the running stack and writes its Schemathesis config.

Run by tools/contract/schemathesis.sh (stdlib only). Uses `joip-admin` (same code as production,
pointed at the stack's emulator through the environment) for users, pricing, tags, media and
sessions, and the API itself for the share codes. Writes, under the output directory:

- `schemathesis.toml`: the run's config, with fuzz dictionaries of the seeded ids so a share of the
  request cases reaches real records (and another user's, a revoked code, a session of each kind);
- `seed.json`: what the hooks need to know (ids, tags, cursors; no token);
- `token` (mode 0600): the caller's dev token, removed by schemathesis.sh when the run ends.

Nothing is printed but a one-line summary without the token.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ADMIN = ROOT / "target" / "debug" / "joip-admin"
DEMO = ROOT / "tools" / "demo"
# Canonical tags the run creates (`tag create` is idempotent). Share requests draw from these and
# from non-canonical spellings.
TAGS = ["solo", "artistic", "outdoor"]
# Schemathesis 4.32's warnings (its config schema's WarningName).
WARNINGS = ["missing_auth", "missing_test_data", "base_url_mismatch", "validation_mismatch",
            "missing_deserializer", "unused_openapi_auth", "unsupported_regex",
            "method_not_allowed", "constants_extraction", "unmatched_filter",
            "unresolvable_reference", "low_valid_rate", "rate_limited", "dictionary_mismatch",
            "timeout_units"]


def admin(*args: str) -> dict:
    out = subprocess.run([str(ADMIN), *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def api(base: str, method: str, path: str, token: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{base}{path}", data=data, method=method)
    req.add_header("authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=180) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def upload(owner: str, file: Path, source: str = "upload") -> dict:
    return admin("media", "upload", "--owner", owner, "--file", str(file), "--source", source)


def toml_list(values: list) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--max-examples", type=int, default=50)
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args()
    base = args.base_url.rstrip("/")
    args.out.mkdir(parents=True, exist_ok=True)

    caller = admin("user", "create", "--credits", "100000")
    peer = admin("user", "create")
    me, token = caller["userId"], caller["token"]
    admin("pricing", "set", "session_create", "--credits", "10")
    for tag in TAGS:
        admin("tag", "create", tag)
    canonical = sorted(t["slug"] for t in admin("tag", "list"))

    # The caller's media: one of each kind the share rules tell apart.
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("plain text: no format the community may serve\n")
        text_file = Path(f.name)
    try:
        photo = upload(me, DEMO / "demo-photo.jpg")  # upload image: policy + tags, watermarked
        png = upload(me, DEMO / "demo-upload.png")  # upload image
        gif = upload(me, DEMO / "demo-loop.gif", "smart-caption")  # straight to the feed
        clip = upload(me, DEMO / "demo-clip.mp4")  # video: no policy, no tags needed
        text = upload(me, text_file)  # "This file type cannot be shared to the community"
    finally:
        text_file.unlink()
    foreign = upload(peer["userId"], DEMO / "demo-photo.jpg")  # another user's: 404

    # Sessions of the peer: one saveable, one public but not in the community (403), one private
    # (404).
    def session(*flags: str) -> int:
        return admin(
            "session", "create", "--owner", peer["userId"], "--title", "contract",
            "--media", f"{DEMO / 'demo-photo.jpg'}::caption", *flags,
        )["sessionId"]

    community_session = session("--public", "--community")
    public_session = session("--public")
    private_session = session()

    # A live share code (the GIF, in the feed) and a revoked one (the clip, shared then unshared).
    status, shared = api(base, "POST", f"/api/media/{gif['mediaId']}/share", token,
                         {"shareToCommunity": True, "tags": ["artistic"]})
    if status != 200:
        sys.exit(f"seed: sharing the GIF answered {status} {shared}")
    status, revoked = api(base, "POST", f"/api/media/{clip['mediaId']}/share", token,
                          {"shareToCommunity": False})
    if status != 200:
        sys.exit(f"seed: sharing the clip answered {status} {revoked}")
    status, body = api(base, "DELETE", f"/api/media/{clip['mediaId']}/share", token)
    if status != 200:
        sys.exit(f"seed: unsharing the clip answered {status} {body}")

    # Pages that continue: a second GIF in the feed under the same tag, and one real cursor of each
    # kind (cursors are signed; only these and the ones the run receives can be valid).
    gif2 = upload(me, DEMO / "demo-loop.gif", "babecock")
    status, shared2 = api(base, "POST", f"/api/media/{gif2['mediaId']}/share", token,
                          {"shareToCommunity": True, "tags": ["artistic"]})
    if status != 200:
        sys.exit(f"seed: sharing the second GIF answered {status} {shared2}")
    # Both GIFs go public through the publisher (the poller delivers the queue to it): wait until
    # the tag's feed lists them.
    wanted = {shared["communityMediaId"], shared2["communityMediaId"]}
    deadline = time.monotonic() + 120
    while True:
        status, body = api(base, "GET", "/api/community/media?tag=artistic&limit=100", token)
        listed = {m["communityMediaId"] for m in body.get("media", [])} if status == 200 else set()
        if wanted <= listed:
            break
        if time.monotonic() > deadline:
            sys.exit(f"seed: the shared GIFs were never published: {status} {body}")
        time.sleep(0.5)
    issued = []
    for label, path, tag in [
        ("GET /api/user/media", "/api/user/media?limit=1", None),
        ("GET /api/community/media", "/api/community/media?limit=1", None),
        ("GET /api/community/media", "/api/community/media?limit=1&tag=artistic", "artistic"),
    ]:
        status, body = api(base, "GET", path, token)
        if status != 200 or not isinstance(body.get("nextCursor"), str):
            sys.exit(f"seed: {path} answered {status} without a next page")
        issued.append([label, tag, body["nextCursor"]])

    mine = [photo, png, gif, clip, text, gif2]
    media_ids = [m["mediaId"] for m in mine] + [foreign["mediaId"]]
    paths = [m["filePath"] for m in mine] + [
        f"users/{me}/uploads/never-uploaded.jpg",  # well-formed, no object: 404
        foreign["filePath"],  # another user's prefix: 400 Invalid file path
    ]
    token_file = args.out / "token"
    with os.fdopen(os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(token)
    seed = {
        "userId": me,
        "canonicalTags": canonical,
        "revokedCodes": [revoked["shareCode"]],
        "issuedCursors": issued,
        "sessions": {"community": community_session, "public": public_session,
                     "private": private_session},
        "foreign": {"mediaId": foreign["mediaId"], "filePath": foreign["filePath"]},
    }
    (args.out / "seed.json").write_text(json.dumps(seed, indent=2))

    (args.out / "schemathesis.toml").write_text(f"""\
# Written by tools/contract/seed.py for one run; see tools/contract/schemathesis.sh.
base-url = {json.dumps(base)}
# One worker: with two, Hypothesis's threads race in `ast.parse` on CPython 3.11 before 3.11.8
# ("AST constructor recursion depth mismatch", cpython#106905), and the API is local anyway.
workers = 1
# A function's first request may wait for watch to start it.
request-timeout = 120
seed = {args.seed}
# Every warning but the two about rejected positive data (validation_mismatch, low_valid_rate):
# schema-valid requests refused for reasons the schema cannot see (opaque signed cursors,
# canonical tags, the policy for upload images) set them off, and joip_hooks.py judges each such
# 400 one by one instead.
warnings = {json.dumps([w for w in WARNINGS if w not in ("validation_mismatch", "low_valid_rate")])}
# The dev token comes from the environment (never written here); Schemathesis filters it from
# its output and reports.
[auth.openapi.bearerAuth]
bearer = "${{JOIP_CONTRACT_TOKEN}}"

# Nothing kept between runs (and nothing written into the work tree, where watch would see it).
[cache]
enabled = false

# Slower than this deployed is a 503 from API Gateway (30 s integration timeout); locally the
# margin absorbs a busy 2-core machine, not a hung function.
[checks]
max_response_time = 25

[generation]
max-examples = {args.max_examples}
database = "none"

[phases.stateful]
max-steps = 12

[reports]
directory = {json.dumps(str(args.out))}

# Seeded values, drawn for about half of the generated cases of the operations below; the rest
# stay free for the generator.
[dictionaries.media]
values = {toml_list(media_ids)}
[dictionaries.sessions]
values = {toml_list([community_session, public_session, private_session])}
[dictionaries.codes]
values = {toml_list([shared["shareCode"], revoked["shareCode"]])}
[dictionaries.paths]
values = {toml_list(paths)}
[dictionaries.tags]
values = {toml_list(TAGS + ["Solo ", "ARTISTIC", "not-a-tag"])}
[dictionaries.feed_tags]
values = {toml_list(TAGS)}
[dictionaries.limits]
values = [1, 2, 3]
[dictionaries.user_media_cursors]
values = {toml_list([issued[0][2]])}
[dictionaries.feed_cursors]
values = {toml_list([issued[1][2], issued[2][2]])}

[[operations]]
include-operation-id = "shareMedia"
parameters = {{ "path.id" = {{ dictionary = "media", probability = 0.6 }}, "body.tags[*]" = {{ dictionary = "tags", probability = 0.6 }} }}

[[operations]]
include-operation-id = "unshareMedia"
parameters = {{ "path.id" = {{ dictionary = "media", probability = 0.6 }} }}

[[operations]]
include-operation-id = "getMediaShare"
parameters = {{ "path.id" = {{ dictionary = "media", probability = 0.6 }} }}

[[operations]]
include-operation-id = "shareMediaByPath"
parameters = {{ "body.filePath" = {{ dictionary = "paths", probability = 0.6 }}, "body.tags[*]" = {{ dictionary = "tags", probability = 0.6 }} }}

[[operations]]
include-operation-id = "saveCommunitySession"
parameters = {{ "path.id" = {{ dictionary = "sessions", probability = 0.6 }} }}

[[operations]]
include-operation-id = "resolveSharedMedia"
parameters = {{ "path.code" = {{ dictionary = "codes", probability = 0.6 }} }}

[[operations]]
include-operation-id = "listUserMedia"
parameters = {{ "query.limit" = {{ dictionary = "limits", probability = 0.4 }}, "query.cursor" = {{ dictionary = "user_media_cursors", probability = 0.5 }} }}

[[operations]]
include-operation-id = "communityFeed"
parameters = {{ "query.tag" = {{ dictionary = "feed_tags", probability = 0.5 }}, "query.limit" = {{ dictionary = "limits", probability = 0.4 }}, "query.cursor" = {{ dictionary = "feed_cursors", probability = 0.2 }} }}
""")
    print(f"seeded user {me}: {len(mine)} media, 3 sessions, 2 live and 1 revoked share codes, "
          f"{len(issued)} page cursors")


if __name__ == "__main__":
    main()

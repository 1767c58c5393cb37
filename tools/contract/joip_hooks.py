"""Schemathesis hooks for joip-serverless (loaded by tools/contract/schemathesis.sh).

Every built-in check stays on. These hooks only tell Schemathesis what openapi.yaml cannot say
in JSON Schema, and add one check of our own:

0. `before_load_schema` narrows `filePath` of `POST /api/user/media/share` from any user's prefix
   to the caller's own (`users/{sub}/`), as its description says; other prefixes become negative
   data, which must be refused.
1. `filter_failure` drops a "schema-valid request rejected" (ST202) failure only when the 400 is a
   documented refusal that depends on data the schema cannot see, *and* the request really is
   refusable for that reason, judged independently here:
   - `Invalid cursor` for a cursor this run never received from the API for the same caller/tag
     (cursors are opaque and signed: a generated string is never one);
   - `Invalid file path` for a path outside the caller's own `users/{sub}/` prefix;
   - `Unknown tags: ...` when a tag, trimmed and lower-cased, is not canonical;
   - `At most N tags are allowed` when more than N distinct tags remain;
   - `Policy confirmation ...` / `At least one tag ...` for a community share without
     `policyAgreed: true` / without tags (the media turned out to be an upload image);
   - `This file type cannot be shared to the community` for a community share (the bytes decide).
   The same 400 for a request that does not qualify (a server-issued cursor refused, a path under
   the caller's prefix refused, canonical tags called unknown) still fails the run.
   Every dropped failure is written to `$JOIP_CONTRACT_OUT/dropped.ndjson` for review.
   It also drops a 410 `Share link expired` for a link this run saw used up (as many resolves with
   a URL as the `maxViews` it answered) or past its `linkExpiresAt`, and an ST301 ("deleted
   resource still available") for `GET /api/media/{id}/share` after its DELETE: that path names
   the media's share state, which answers 200 with `shareCode: null` once the share is gone.
2. `revoked_share_code_stays_revoked`: once `DELETE /api/media/{id}/share` answered 200, the
   code that media had must answer 404 on `GET /api/shared/media/{code}` (asked later).
3. `others_stay_out_of_reach`: the seeded media of another user (by id or by path) is never
   shared, unshared or read (its share state) for the caller, and the peer's private session and its public but
   unshared one are never saved (no 2xx).
"""

import json
import os
import re
import threading
import time
from pathlib import Path

import schemathesis

SEED = json.loads(Path(os.environ["JOIP_CONTRACT_SEED_FILE"]).read_text())
CALLER = SEED["userId"]
CANONICAL = set(SEED["canonicalTags"])
MAX_TAGS = int(os.environ.get("JOIP_MAX_TAGS", "10"))
DROPPED = Path(os.environ["JOIP_CONTRACT_OUT"]) / "dropped.ndjson"

LIST_USER_MEDIA = "GET /api/user/media"
FEED = "GET /api/community/media"
SHARE = "POST /api/media/{id}/share"
SHARE_BY_PATH = "POST /api/user/media/share"
UNSHARE = "DELETE /api/media/{id}/share"
SHARE_STATE = "GET /api/media/{id}/share"
RESOLVE = "GET /api/shared/media/{code}"
SAVE = "POST /api/community/sessions/{id}/save"
FOREIGN = SEED["foreign"]
NOT_SAVEABLE = {str(SEED["sessions"]["public"]), str(SEED["sessions"]["private"])}

_lock = threading.Lock()
# (operation, tag or None, cursor) for every nextCursor the API handed out.
_issued_cursors: set[tuple[str, str | None, str]] = {tuple(c) for c in SEED["issuedCursors"]}
# media id -> the last share code a share of it answered.
_codes: dict[str, str] = {}
# revoked code -> when its DELETE answered.
_revoked: dict[str, float] = {code: 0.0 for code in SEED["revokedCodes"]}
# share code -> (maxViews, linkExpiresAt) as the last share of it answered.
_limits: dict[str, tuple] = {}
# share code -> resolves that carried a URL since its view limit was last set.
_views: dict[str, int] = {}


def _json(response) -> object:
    try:
        return response.json()
    except Exception:
        return None


def _query(case) -> dict:
    return dict(case.query or {})


def _body(case) -> dict:
    return case.body if isinstance(case.body, dict) else {}


@schemathesis.hook
def before_load_schema(context, raw_schema):
    path = raw_schema["components"]["schemas"]["ShareByPathRequest"]["properties"]["filePath"]
    any_user = "^users/[A-Za-z0-9._:@|~-]{1,128}"
    if not path["pattern"].startswith(any_user) or not re.fullmatch(r"[A-Za-z0-9_-]+", CALLER):
        raise RuntimeError("openapi.yaml's filePath pattern changed: update joip_hooks.py")
    path["pattern"] = f"^users/{CALLER}" + path["pattern"][len(any_user):]


@schemathesis.hook
def after_call(context, case, response):
    label = case.operation.label
    body = _json(response)
    if response.status_code != 200 or not isinstance(body, dict):
        return
    with _lock:
        if label in (LIST_USER_MEDIA, FEED) and isinstance(body.get("nextCursor"), str):
            tag = _query(case).get("tag") if label == FEED else None
            _issued_cursors.add((label, tag, body["nextCursor"]))
        elif label in (SHARE, SHARE_BY_PATH) and isinstance(body.get("shareCode"), str):
            # A share that answers a code makes it live again, whatever happened before.
            _revoked.pop(body["shareCode"], None)
            _limits[body["shareCode"]] = (body.get("maxViews"), body.get("linkExpiresAt"))
            if "maxViews" in _body(case):
                _views[body["shareCode"]] = 0  # a view limit set anew counts from zero
            if label == SHARE:
                _codes[str(case.path_parameters["id"])] = body["shareCode"]
        elif label == RESOLVE and isinstance(body.get("url"), str):
            code = body.get("shareCode")
            _views[code] = _views.get(code, 0) + 1
        elif label == UNSHARE:
            code = _codes.pop(str(case.path_parameters["id"]), None)
            if code is not None:
                _revoked[code] = time.monotonic()


def _tags(body: dict) -> list[str] | None:
    tags = body.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        return None
    out: list[str] = []
    for t in tags:
        t = t.strip().lower()
        if t not in out:
            out.append(t)
    return out


def _refusal_is_documented(case, message: str) -> bool:
    """True when the request qualifies for the 400 `message` the API gave it."""
    label = case.operation.label
    if label in (LIST_USER_MEDIA, FEED) and message == "Invalid cursor":
        query = _query(case)
        tag = query.get("tag") if label == FEED else None
        with _lock:
            return (label, tag, query.get("cursor")) not in _issued_cursors
    if label not in (SHARE, SHARE_BY_PATH):
        return False
    body = _body(case)
    if label == SHARE_BY_PATH and message == "Invalid file path":
        path = body.get("filePath")
        return isinstance(path, str) and not path.startswith(f"users/{CALLER}/")
    community = body.get("shareToCommunity", True) is True
    tags = _tags(body)
    if not community or tags is None:
        return False
    if message.startswith("Unknown tags: "):
        return any(t not in CANONICAL for t in tags)
    if message == f"At most {MAX_TAGS} tags are allowed":
        return len(tags) > MAX_TAGS
    if message == "Policy confirmation is required for upload sharing":
        return body.get("policyAgreed", False) is not True
    if message == "At least one tag is required for upload sharing":
        return not tags
    return message == "This file type cannot be shared to the community"


def _link_is_spent(code) -> bool:
    """True when this run saw the link's views used up or its expiry pass."""
    with _lock:
        max_views, expires_at = _limits.get(code, (None, None))
        used = _views.get(code, 0)
    if isinstance(max_views, int) and used >= max_views:
        return True
    if isinstance(expires_at, str):
        now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        return expires_at[:19] <= now
    return False


def _drop_reason(failure, case, response) -> str | None:
    code = getattr(failure, "code", None)
    body = _json(response)
    if (
        code == "ST301"
        and case.operation.label == SHARE_STATE
        and response.status_code == 200
        and isinstance(body, dict)
        and body.get("shareCode") is None
    ):
        # The share was deleted; the media it belonged to stays, and its share state says so.
        return "the share state of a media whose share was deleted (shareCode null)"
    if (
        code == "ST202"
        and case.operation.label == RESOLVE
        and response.status_code == 410
        and _link_is_spent((case.path_parameters or {}).get("code"))
    ):
        return "documented data-dependent refusal: the link's views are used up or it expired"
    if code != "ST202" or response.status_code != 400:
        return None
    body = _json(response)
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(message, str) and _refusal_is_documented(case, message):
        return f"documented data-dependent refusal: {message}"
    return None


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keep every failure but the documented data-dependent refusals of schema-valid input."""
    reason = _drop_reason(failure, case, response)
    if reason is None:
        return True
    record = {"operation": case.operation.label, "failure": getattr(failure, "code", None),
              "status": response.status_code, "why": reason}
    with _lock, DROPPED.open("a") as f:
        f.write(json.dumps(record) + "\n")
    return False


@schemathesis.check
def others_stay_out_of_reach(ctx, response, case):
    """Another user's media and sessions that are not in the community answer no 2xx."""
    if not 200 <= response.status_code < 300:
        return None
    label = case.operation.label
    params = case.path_parameters or {}
    reached = (
        (label in (SHARE, UNSHARE, SHARE_STATE)
         and str(params.get("id")) == str(FOREIGN["mediaId"]))
        or (label == SHARE_BY_PATH and _body(case).get("filePath") == FOREIGN["filePath"])
        or (label == SAVE and str(params.get("id")) in NOT_SAVEABLE)
    )
    if reached:
        raise AssertionError(
            f"{label} answered {response.status_code} for what the caller may not touch "
            "(another user's media, or a session that is private or not in the community)"
        )
    return None


@schemathesis.check
def revoked_share_code_stays_revoked(ctx, response, case):
    """A share code whose media was unshared (DELETE) resolves to 404 ever after."""
    if case.operation.label != RESOLVE or response.status_code == 404:
        return None
    code = case.path_parameters.get("code")
    sent_at = time.monotonic() - response.elapsed
    with _lock:
        revoked_at = _revoked.get(code)
    if revoked_at is not None and revoked_at < sent_at:
        raise AssertionError(
            f"share code {code[:8]}… was revoked by DELETE /api/media/{{id}}/share, "
            f"yet resolving it answered {response.status_code}, not 404"
        )
    return None

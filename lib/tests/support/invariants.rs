//! The cross-record invariants of sharing and saving (DESIGN invariants 1-5), read from one
//! snapshot of a table and its buckets: every way records, markers, tags, codes, saves, sessions
//! and objects disagree. The fault sweep checks them after every faulted request and its retry;
//! the load test after the run.

use super::{snapshot_of, Snapshot};
use joip::App;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Everything but the id counters (allocating an id is not a change anyone sees).
pub fn without_counters(s: &Snapshot) -> Snapshot {
    Snapshot {
        items: s
            .items
            .iter()
            .filter(|i| !i.contains("\"COUNTER#"))
            .cloned()
            .collect(),
        objects: s.objects.clone(),
    }
}

/// What sharing and saving keep, by kind.
#[derive(Debug, Default)]
pub struct Stored {
    /// Media records by id.
    pub media: BTreeMap<u64, Value>,
    /// Path items: file path -> media id.
    pub paths: BTreeMap<String, u64>,
    /// Community markers: media id -> community id.
    pub markers: BTreeMap<u64, u64>,
    /// Community records by id.
    pub records: BTreeMap<u64, Value>,
    /// Tag items by community id.
    pub tag_items: BTreeMap<u64, Vec<Value>>,
    /// Share code items by code.
    pub codes: BTreeMap<String, Value>,
    /// Save records.
    pub saves: Vec<Value>,
    /// Session items by id.
    pub sessions: BTreeMap<u64, Value>,
    /// Session media (chunk entries, in order) by session id.
    pub session_media: BTreeMap<u64, Vec<Value>>,
    /// User profiles by user id.
    pub users: BTreeMap<String, Value>,
    /// Keys under `community/` in the general bucket.
    pub public: BTreeSet<String>,
    /// Keys under `staging/` in the general bucket.
    pub staging: BTreeSet<String>,
    /// Keys under `held/` in the general bucket (hidden copies' objects, kept for review).
    pub held: BTreeSet<String>,
    /// Keys in the user-media bucket.
    pub user_objects: BTreeSet<String>,
    /// Objects whose removal is owed (the unpublish outbox): none once removals have settled.
    pub owed: BTreeSet<String>,
    /// Keys the CDN still serves from its cache (read by [`Stored::read`] once invalidations
    /// have taken effect; empty from a bare snapshot).
    pub edge: BTreeSet<String>,
}

impl Stored {
    /// Reads `app`'s table, buckets and CDN at the next quiescent point: once the removals its
    /// removers left are finished (as the reaper's sweep finishes them each minute) and the CDN's
    /// invalidations in progress have taken effect.
    pub async fn read(app: &App) -> Self {
        settle_removals(app).await;
        let mut s = Self::from_snapshot(&snapshot_of(app).await, app);
        s.edge = edge(app).await;
        s
    }

    /// Sorts a snapshot of `app`'s table and buckets by kind.
    pub fn from_snapshot(snapshot: &Snapshot, app: &App) -> Self {
        let mut s = Self::default();
        for raw in &snapshot.items {
            let item: Value = serde_json::from_str(raw).expect("item JSON");
            let pk = item["pk"].as_str().expect("pk").to_string();
            let sk = item["sk"].as_str().expect("sk").to_string();
            let id = |prefix: &str| pk.strip_prefix(prefix).and_then(|i| i.parse::<u64>().ok());
            if let Some(id) = id("MEDIA#") {
                match sk.as_str() {
                    "MEDIA" => {
                        s.media.insert(id, item);
                    }
                    "COMMUNITY" => {
                        let cid = item["communityMediaId"].as_u64().expect("marker id");
                        s.markers.insert(id, cid);
                    }
                    other => panic!("unexpected item {other} in a media partition: {raw}"),
                }
            } else if let Some(id) = id("COMMUNITY#") {
                if sk == "COMMUNITY" {
                    s.records.insert(id, item);
                } else if sk.starts_with("TAG#") {
                    s.tag_items.entry(id).or_default().push(item);
                }
                // Reports and their summary live beside the record; moderation checks them.
            } else if let Some(id) = id("SESSION#") {
                if sk == "SESSION" {
                    s.sessions.insert(id, item);
                } else if let Some(media) = item["media"].as_array() {
                    s.session_media
                        .entry(id)
                        .or_default()
                        .extend(media.iter().cloned());
                }
            } else if pk.starts_with("SHARE#") {
                let code = item["shareCode"].as_str().expect("code").to_string();
                s.codes.insert(code, item);
            } else if let Some(path) = pk.strip_prefix("PATH#") {
                let id = item["mediaId"].as_u64().expect("path media id");
                s.paths.insert(path.to_string(), id);
            } else if pk.starts_with("UNPUBLISH#") {
                let key = item["key"].as_str().expect("owed key").to_string();
                s.owed.insert(key);
            } else if let Some(user) = pk.strip_prefix("USER#") {
                if sk == "PROFILE" {
                    s.users.insert(user.to_string(), item);
                } else if sk.starts_with("SAVE#") {
                    s.saves.push(item);
                }
            }
        }
        let (general, user_media) = (&app.config.general_bucket, &app.config.user_media_bucket);
        for object in &snapshot.objects {
            let (path, _etag) = object.rsplit_once(' ').expect("key and etag");
            let (bucket, key) = path.split_once('/').expect("bucket/key");
            if bucket == general && key.starts_with("community/") {
                s.public.insert(key.to_string());
            } else if bucket == general && key.starts_with("staging/") {
                s.staging.insert(key.to_string());
            } else if bucket == general && key.starts_with("held/") {
                s.held.insert(key.to_string());
            } else if bucket == user_media {
                s.user_objects.insert(key.to_string());
            }
        }
        s
    }

    /// The community records of media `id`.
    pub fn records_of(&self, id: u64) -> Vec<(&u64, &Value)> {
        self.records
            .iter()
            .filter(|(_, r)| r["mediaId"].as_u64() == Some(id))
            .collect()
    }

    /// The save records still `copying` (allowed until the reaper has run).
    pub fn copying_saves(&self) -> Vec<&Value> {
        self.saves
            .iter()
            .filter(|r| r["state"] == "copying")
            .collect()
    }

    /// Every way the records and objects disagree, or a state no serial order of requests
    /// leaves; empty when they agree.
    pub fn violations(&self) -> Vec<String> {
        let mut v = self.copy_violations();
        v.extend(self.dead_links());
        v.extend(self.save_violations());
        v
    }

    /// Media shared (or in the community) without a live code: a state no serial order of
    /// shares and unshares leaves, though racing ones may pass through it.
    pub fn dead_links(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (id, m) in &self.media {
            let code = m["shareCode"].as_str();
            let is_shared = m["isShared"].as_bool().expect("isShared");
            let in_community = m["shareToCommunity"].as_bool().expect("shareToCommunity");
            if is_shared != code.is_some() || (in_community && code.is_none()) {
                v.push(format!(
                    "media {id}: isShared {is_shared}, shareToCommunity {in_community}, shareCode {code:?}"
                ));
            }
        }
        v
    }

    /// Every way the media, path items, codes, markers, community records, tag items and
    /// objects disagree (DESIGN invariants 3 and 5).
    pub fn copy_violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (id, m) in &self.media {
            let code = m["shareCode"].as_str();
            let in_community = m["shareToCommunity"].as_bool().expect("shareToCommunity");
            let cid = m["communityMediaId"].as_u64();
            let marker = self.markers.get(id).copied();
            if let Some(code) = code {
                if self.codes.get(code).and_then(|c| c["mediaId"].as_u64()) != Some(*id) {
                    v.push(format!("media {id}: its code {code} has no item naming it"));
                }
            }
            if (in_community, cid) != (marker.is_some(), marker) {
                v.push(format!(
                    "media {id}: shareToCommunity {in_community}, communityMediaId {cid:?}, marker {marker:?}"
                ));
            }
            let path = m["filePath"].as_str().expect("filePath");
            if self.paths.get(path) != Some(id) {
                v.push(format!(
                    "media {id}: its path {path} names {:?}",
                    self.paths.get(path)
                ));
            }
        }
        for (path, id) in &self.paths {
            if !self.media.contains_key(id) {
                v.push(format!("path item {path} names media {id}, which is gone"));
            }
        }
        for (mid, cid) in &self.markers {
            if !self.media.contains_key(mid) {
                v.push(format!("marker of media {mid}, which is gone"));
            }
            if self.records.get(cid).and_then(|r| r["mediaId"].as_u64()) != Some(*mid) {
                v.push(format!(
                    "marker of media {mid} names record {cid}, which is not its"
                ));
            }
        }
        for (cid, r) in &self.records {
            let mid = r["mediaId"].as_u64().expect("mediaId");
            // Copies outlive their original; while it exists, it must mark this copy.
            if self.media.contains_key(&mid) && self.markers.get(&mid) != Some(cid) {
                v.push(format!(
                    "record {cid} of media {mid} is not the media's marked copy"
                ));
            }
            let tags: Vec<&str> = r["tags"]
                .as_array()
                .expect("tags")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let items = self.tag_items.get(cid).map(Vec::as_slice).unwrap_or(&[]);
            let item_slugs: BTreeSet<&str> =
                items.iter().filter_map(|i| i["slug"].as_str()).collect();
            if item_slugs != tags.iter().copied().collect() || items.len() != tags.len() {
                v.push(format!(
                    "record {cid}: tags {tags:?} but tag items {item_slugs:?}"
                ));
            }
            let status = r["status"].as_str().expect("status");
            let listed = status == "ready";
            if r["gsi1pk"].is_string() != listed {
                v.push(format!(
                    "record {cid} ({status}) in the feed index: {}",
                    !listed
                ));
            }
            for item in items {
                if item["tags"] != r["tags"] || item["gsi1pk"].is_string() != listed {
                    v.push(format!(
                        "record {cid} ({status}): tag item {item} disagrees"
                    ));
                }
            }
            let key = r["key"].as_str().expect("key");
            let public = self.public.contains(key);
            let staged = r["stagingKey"]
                .as_str()
                .is_some_and(|s| self.staging.contains(s));
            let held = r["heldKey"].as_str().is_some_and(|h| self.held.contains(h));
            let agrees = match status {
                "ready" => public && !staged,
                "pending" => !public && staged,
                // Held for review when it had an object to hold.
                "hidden" => !public && !staged && (held || r["heldKey"].is_null()),
                _ => !public && !held,
            };
            if !agrees {
                v.push(format!(
                    "{status} record {cid}: public object {public}, staged object {staged}"
                ));
            }
        }
        for key in &self.public {
            if !self
                .records
                .values()
                .any(|r| r["key"] == key.as_str() && r["status"] == "ready")
            {
                v.push(format!("public object {key} belongs to no ready record"));
            }
        }
        for key in &self.owed {
            v.push(format!("the removal of {key} is still owed"));
        }
        for key in &self.edge {
            if !self
                .records
                .values()
                .any(|r| r["key"] == key.as_str() && r["status"] == "ready")
            {
                v.push(format!(
                    "the CDN still serves {key}, which no ready record names"
                ));
            }
        }
        for key in &self.staging {
            let owned = self
                .records
                .values()
                .any(|r| r["stagingKey"] == key.as_str() && r["status"] == "pending");
            if !owned {
                v.push(format!("staged object {key} belongs to no pending record"));
            }
        }
        for key in &self.held {
            let owned = self
                .records
                .values()
                .any(|r| r["heldKey"] == key.as_str() && r["status"] == "hidden");
            if !owned {
                v.push(format!("held object {key} belongs to no hidden record"));
            }
        }
        for cid in self.tag_items.keys() {
            if !self.records.contains_key(cid) {
                v.push(format!("tag items of record {cid}, which is gone"));
            }
        }
        for (code, item) in &self.codes {
            let mid = item["mediaId"].as_u64().expect("mediaId");
            let current = self.media.get(&mid).and_then(|m| m["shareCode"].as_str());
            if current != Some(code.as_str()) {
                v.push(format!(
                    "share code {code} opens media {mid}, whose code is {current:?}"
                ));
            }
        }
        v
    }

    fn save_violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        let mut saved_sessions = BTreeSet::new();
        for save in &self.saves {
            let sid = save["sessionId"].as_u64().expect("sessionId");
            saved_sessions.insert(sid);
            let Some(session) = self.sessions.get(&sid) else {
                v.push(format!("save {} without its session {sid}", save["sk"]));
                continue;
            };
            if session["ownerId"] != save["userId"] {
                v.push(format!(
                    "save {} names session {sid} of another owner",
                    save["sk"]
                ));
            }
            let media = self
                .session_media
                .get(&sid)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            if session["mediaCount"].as_u64() != Some(media.len() as u64) {
                v.push(format!(
                    "session {sid}: mediaCount {} but {} media",
                    session["mediaCount"],
                    media.len()
                ));
            }
            if save["state"] != "ready" {
                continue; // copying: the copier or the reaper finishes it
            }
            if session["state"] != "ready" {
                v.push(format!(
                    "ready save of session {sid}, which is {}",
                    session["state"]
                ));
            }
            if save["gsi1pk"].is_string() {
                v.push(format!(
                    "ready save of session {sid} still in the copying index"
                ));
            }
            for m in media {
                if let Some(key) = m["key"].as_str() {
                    if !self.user_objects.contains(key) {
                        v.push(format!("ready session {sid}: media {} missing", m["order"]));
                    }
                }
            }
        }
        for (sid, session) in &self.sessions {
            if session["importSource"] == "community" && !saved_sessions.contains(sid) {
                v.push(format!("saved copy {sid} without a save record"));
            }
        }
        for sid in self.session_media.keys() {
            if !self.sessions.contains_key(sid) {
                v.push(format!("media plan of session {sid}, which does not exist"));
            }
        }
        for key in &self.user_objects {
            // users/{user}/manual-sessions/{session}/{order}-{name}: a saved copy's media.
            let session = key
                .split('/')
                .skip_while(|s| *s != "manual-sessions")
                .nth(1)
                .and_then(|s| s.parse::<u64>().ok());
            if session.is_some_and(|sid| !self.sessions.contains_key(&sid)) {
                v.push(format!(
                    "copied object {key} of a session that does not exist"
                ));
            }
        }
        v
    }
}

/// Finishes the removals left owed (what the reaper's sweep does each minute), then waits for
/// the CDN's invalidations in progress to take effect.
pub async fn settle_removals(app: &App) {
    for _ in 0..10 {
        let swept = joip::service::unpublish::sweep(app, 0)
            .await
            .expect("sweep owed removals");
        if swept.left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let Some(report) = cdn_report(app).await else {
        return;
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut report = report;
    while report["invalidations"]["in_progress"].as_u64().unwrap_or(0) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "CDN invalidations still in progress: {report}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        report = cdn_report(app).await.expect("the CDN report");
    }
}

/// The emulator's report of `app`'s distribution (`GET /_joip/cdn/{id}`), if it has one.
pub async fn cdn_report(app: &App) -> Option<Value> {
    let id = app.config.cdn_distribution_id.clone()?;
    let url = format!("{}/_joip/cdn/{id}", super::endpoint());
    let report: Value = tokio::task::spawn_blocking(move || {
        ureq::get(&url)
            .call()
            .expect("GET the CDN report")
            .body_mut()
            .read_json::<Value>()
            .expect("CDN report JSON")
    })
    .await
    .expect("CDN report task");
    Some(report["distributions"][id.as_str()].clone())
}

/// The keys the CDN serves from its cache now.
pub async fn edge(app: &App) -> BTreeSet<String> {
    let Some(report) = cdn_report(app).await else {
        return BTreeSet::new();
    };
    (report["cached"].as_array().cloned().unwrap_or_default())
        .iter()
        .filter_map(|p| p.as_str())
        .map(|p| p.trim_start_matches('/').to_string())
        .collect()
}

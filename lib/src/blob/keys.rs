//! Every S3 object key and prefix in one place, as `store::keys` holds the table's keys. The
//! functions, `joip-admin` and the tests build keys only through here.

use crate::domain::{SessionId, UserId};

/// User-media bucket: every user's private objects live under `users/{userId}/`.
pub const USER_PREFIX: &str = "users/";
/// General bucket: the media of community sessions (the only prefix saves copy from).
pub const SESSION_MEDIA_PREFIX: &str = "sessions/";
/// General bucket: the public community objects (CloudFront serves only this prefix).
pub const COMMUNITY_PREFIX: &str = "community/";
/// General bucket: private sources the publisher reads (S3 notifies the publisher of new keys
/// here; never served).
pub const STAGING_PREFIX: &str = "staging/";

/// The key start-up HEADs to open a connection to a bucket (`crate::connections`): outside every
/// prefix, so no object ever has it and no policy serves it (the answer, 403 or 404, is the point).
pub const CONNECTION_PROBE: &str = "connection-probe";

/// `users/{user}/`: everything of one user's in the user-media bucket.
pub fn user_prefix(user: &UserId) -> String {
    format!("{USER_PREFIX}{user}/")
}

/// Where a user's upload named `file_name` goes: a unique name under `users/{owner}/uploads/`,
/// the name reduced to safe characters.
pub fn upload(owner: &UserId, file_name: &str) -> String {
    let safe: String = file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{}uploads/{}-{safe}",
        user_prefix(owner),
        uuid::Uuid::new_v4().simple()
    )
}

/// The object of a community session's media at `order`: `sessions/{id}/{order}-{stem}.{ext}`.
pub fn session_media(session: SessionId, order: usize, stem: &str, ext: &str) -> String {
    format!("{SESSION_MEDIA_PREFIX}{session}/{order:04}-{stem}.{ext}")
}

/// Where a save of a community session copies its media: `users/{user}/manual-sessions/{id}/`.
pub fn saved_session_prefix(user: &UserId, session: SessionId) -> String {
    format!("{}manual-sessions/{session}/", user_prefix(user))
}

/// Where a save copies the media at `order` (deterministic, so a retried copy finds it).
pub fn saved_session_media(user: &UserId, session: SessionId, order: u32, src_key: &str) -> String {
    let name = src_key.rsplit('/').next().unwrap_or("media");
    format!("{}{order:04}-{name}", saved_session_prefix(user, session))
}

/// A community copy's public key: unique, under a non-flat prefix (two levels from a hash of the
/// id), so no single S3 prefix takes every community object.
pub fn community(id: u64, mime: &str) -> String {
    let h = crate::store::keys::stable_hash(id.to_be_bytes());
    let unique = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{COMMUNITY_PREFIX}{:02x}/{:02x}/{id}-{}.{}",
        h >> 24,
        (h >> 16) & 0xff,
        &unique[..12],
        extension(mime)
    )
}

/// The private staging key a community key's source is put at before it is published.
pub fn staging_for(community_key: &str) -> String {
    format!(
        "{STAGING_PREFIX}{}",
        community_key.trim_start_matches(COMMUNITY_PREFIX)
    )
}

/// The public key whose source is staged at `staging_key` (the inverse of [`staging_for`]).
pub fn community_for_staging(staging_key: &str) -> String {
    format!(
        "{COMMUNITY_PREFIX}{}",
        staging_key.trim_start_matches(STAGING_PREFIX)
    )
}

/// The community record a staging key belongs to: `staging/aa/bb/{id}-{unique}.{ext}`.
pub fn staging_record_id(staging_key: &str) -> Option<u64> {
    let name = staging_key
        .strip_prefix(STAGING_PREFIX)?
        .rsplit('/')
        .next()?;
    crate::domain::parse_positive_id(name.split('-').next()?)
}

fn extension(mime: &str) -> &'static str {
    match mime {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "image/gif" => "gif",
        "video/mp4" => "mp4",
        "video/webm" => "webm",
        "video/quicktime" => "mov",
        _ => "bin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn community_keys_are_unique_and_spread() {
        let a = community(7, "image/png");
        let b = community(7, "image/png");
        assert_ne!(a, b);
        assert!(a.starts_with("community/") && a.ends_with(".png"));
        assert_eq!(a.matches('/').count(), 3);
    }

    #[test]
    fn staging_keys_name_their_record() {
        assert_eq!(
            staging_record_id("staging/9a/e1/17-ee8b2b3b918d.png"),
            Some(17)
        );
        assert_eq!(
            staging_record_id("community/9a/e1/17-ee8b2b3b918d.png"),
            None
        );
        assert_eq!(staging_record_id("staging/x/y/abc-1.png"), None);
        assert_eq!(staging_record_id("staging/x/y/0-1.png"), None);
        assert_eq!(
            staging_for("community/9a/e1/17-ee8b2b3b918d.png"),
            "staging/9a/e1/17-ee8b2b3b918d.png"
        );
        assert_eq!(
            community_for_staging("staging/9a/e1/17-ee8b2b3b918d.png"),
            "community/9a/e1/17-ee8b2b3b918d.png"
        );
    }

    #[test]
    fn saved_media_keys_are_deterministic() {
        let u = UserId::parse("user_1").unwrap();
        assert_eq!(
            saved_session_media(&u, SessionId(9), 3, "sessions/4/0003-a.jpg"),
            "users/user_1/manual-sessions/9/0003-0003-a.jpg"
        );
    }
}

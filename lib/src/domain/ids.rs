use serde::{Deserialize, Serialize};
use std::fmt;

/// Largest integer a JavaScript client can hold exactly (2^53 - 1).
pub const MAX_SAFE_ID: u64 = (1 << 53) - 1;

/// Parses a path id the spec types as `number`: a positive, JS-safe integer written in plain
/// decimal digits (no sign, no leading zeros, no fraction).
pub fn parse_positive_id(raw: &str) -> Option<u64> {
    let first = raw.as_bytes().first()?;
    if !(b'1'..=b'9').contains(first) || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<u64>().ok().filter(|n| *n <= MAX_SAFE_ID)
}

macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// Parses a path segment (see [`parse_positive_id`]).
            pub fn parse(raw: &str) -> Option<Self> {
                parse_positive_id(raw).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

numeric_id!(
    /// A user media record's id (`GET /api/user/media` lists them).
    MediaId
);
numeric_id!(
    /// A session's id.
    SessionId
);

/// Longest user id accepted (IdP subjects are at most 128 bytes in practice: Cognito's are 36).
pub const MAX_USER_ID_BYTES: usize = 128;

/// A user's id: the identity provider's `sub` claim (a UUID for Cognito; any opaque id elsewhere).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    /// Accepts 1-128 bytes of `[A-Za-z0-9._:@|~-]` and `_`, not made of dots alone: every real IdP
    /// subject (Cognito UUIDs, `auth0|…`, Clerk `user_…`, Google's digits, Apple's dotted ids,
    /// base64url), and nothing that could make two users' keys meet: no `#` (the table's key
    /// separator), no `/` (the S3 prefix separator), no `.`/`..` path segment, no whitespace or
    /// control characters. Case is kept: IdP subjects are case-sensitive, and so are DynamoDB
    /// and S3 keys.
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = (1..=MAX_USER_ID_BYTES).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:@|~-".contains(&b) || b == b'_')
            && !raw.bytes().all(|b| b == b'.');
        ok.then(|| Self(raw.to_string()))
    }

    /// A fresh random id (what `joip-admin user create` assigns).
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_ids_are_positive_plain_integers() {
        assert_eq!(parse_positive_id("123"), Some(123));
        assert_eq!(parse_positive_id("9007199254740991"), Some(MAX_SAFE_ID));
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            "01",
            "1.5",
            "12abc",
            " 1",
            "9007199254740992",
            "1e3",
        ] {
            assert_eq!(parse_positive_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn user_ids_accept_real_idp_subjects() {
        for good in [
            "0b7c6f2e-8a1d-4c1e-9f3a-2d5e6f7a8b9c",
            "auth0|5f7c8ec7c33c6c004bbafe82",
            "google-oauth2|109876543210987654321",
            "user_2NNEqL2nrIRdJ194ndJqAHwEfxC",
            "109876543210987654321",
            "001234.5b2c7e7f3a4d4b8e9f1a2b3c4d5e6f70.1234",
            "dGhpcyBpcyBiYXNlNjR1cmw_LXg",
            "a@example.com",
            &"x".repeat(128),
        ] {
            assert!(UserId::parse(good).is_some(), "{good:?}");
        }
    }

    #[test]
    fn user_ids_refuse_anything_that_could_make_keys_meet() {
        for bad in [
            "",
            "a#b",
            "a/b",
            "a\\b",
            "a b",
            ".",
            "..",
            "a\nb",
            "a\0b",
            "a%2Fb",
            "é",
            &"x".repeat(129),
        ] {
            assert!(UserId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn distinct_user_ids_never_share_a_key_or_prefix() {
        use crate::store::keys;
        let ids = [
            "a", "a_b", "a-b", "a.b", "a|b", "A", "ab", "a:b", "a@b", "a~b",
        ];
        let users: Vec<UserId> = ids.iter().map(|i| UserId::parse(i).unwrap()).collect();
        for (i, u) in users.iter().enumerate() {
            for v in &users[i + 1..] {
                let prefix = |x: &UserId| format!("users/{x}/");
                assert!(!prefix(u).starts_with(&prefix(v)) && !prefix(v).starts_with(&prefix(u)));
                assert_ne!(keys::user(u), keys::user(v));
                assert!(!keys::owner_media(u).starts_with(&format!("{}#", keys::user(v))));
            }
        }
    }
}

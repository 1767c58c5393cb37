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

/// A user's id: the identity provider's `sub` claim (a UUID for Cognito; any opaque id elsewhere).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    /// Accepts 1-128 characters of `[A-Za-z0-9._:@|-]`: enough for any IdP subject, and safe inside
    /// table keys (which use `#`) and S3 keys (which use `/`).
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = (1..=128).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:@|-".contains(&b));
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
    fn user_ids_refuse_key_separators() {
        assert!(UserId::parse("0b7c6f2e-8a1d-4c1e-9f3a-2d5e6f7a8b9c").is_some());
        assert!(UserId::parse("auth0|abc").is_some());
        for bad in ["", "a#b", "a/b", "a b", &"x".repeat(129)] {
            assert!(UserId::parse(bad).is_none(), "{bad:?}");
        }
    }
}

//! Opaque, tamper-safe cursors: the resume point, MAC'd with the server's secret and bound to the
//! caller, so a cursor can be neither forged, edited nor replayed by another user.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;
const TAG_LEN: usize = 16;

fn tag(secret: &[u8], scope: &str, payload: &[u8]) -> [u8; TAG_LEN] {
    let mut m = HmacSha256::new_from_slice(secret).expect("hmac takes any key length");
    m.update(&(scope.len() as u64).to_be_bytes());
    m.update(scope.as_bytes());
    m.update(payload);
    let full = m.finalize().into_bytes();
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&full[..TAG_LEN]);
    out
}

/// Seals `payload` for `scope` (the caller): `base64url(payload || mac)`.
pub fn seal(secret: &[u8], scope: &str, payload: &str) -> String {
    let mut bytes = payload.as_bytes().to_vec();
    bytes.extend_from_slice(&tag(secret, scope, payload.as_bytes()));
    B64.encode(bytes)
}

/// Opens a cursor sealed by [`seal`] for the same scope; `None` if it was altered or is another's.
pub fn open(secret: &[u8], scope: &str, cursor: &str) -> Option<String> {
    if cursor.len() > 1024 {
        return None;
    }
    let bytes = B64.decode(cursor).ok()?;
    let split = bytes.len().checked_sub(TAG_LEN)?;
    let (payload, mac) = bytes.split_at(split);
    let mut m = HmacSha256::new_from_slice(secret).expect("hmac takes any key length");
    m.update(&(scope.len() as u64).to_be_bytes());
    m.update(scope.as_bytes());
    m.update(payload);
    m.verify_truncated_left(mac).ok()?;
    String::from_utf8(payload.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_for_the_same_caller_only() {
        let c = seal(b"s", "alice", "0001#42");
        assert_eq!(open(b"s", "alice", &c).as_deref(), Some("0001#42"));
        assert_eq!(open(b"s", "bob", &c), None);
        assert_eq!(open(b"other", "alice", &c), None);
    }

    #[test]
    fn any_edit_is_refused() {
        let c = seal(b"s", "alice", "0001#42");
        let mut bytes = B64.decode(&c).unwrap();
        bytes[0] ^= 1;
        assert_eq!(open(b"s", "alice", &B64.encode(bytes)), None);
        assert_eq!(open(b"s", "alice", "not base64!"), None);
        assert_eq!(open(b"s", "alice", ""), None);
    }
}

use serde::{Deserialize, Serialize};

/// What a session media item is, as sessions record it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// A still image.
    Image,
    /// A video.
    Video,
    /// An animated GIF.
    Gif,
}

impl MediaKind {
    /// Classifies by MIME type (`image/gif` is a GIF, not an image).
    pub fn from_mime(mime: &str) -> Option<Self> {
        match mime {
            "image/gif" => Some(Self::Gif),
            m if m.starts_with("image/") => Some(Self::Image),
            m if m.starts_with("video/") => Some(Self::Video),
            _ => None,
        }
    }
}

/// Where a user's media came from; decides whether sharing watermarks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MediaSource {
    /// Uploaded by the user (watermarked when shared, if an image).
    Upload,
    /// AI-generated captions.
    SmartCaption,
    /// Babecock Studio composites.
    Babecock,
    /// HypnoCocks renders.
    Hypnococks,
}

impl MediaSource {
    /// Parses the wire name (`upload`, `smart-caption`, `babecock`, `hypnococks`).
    pub fn parse(raw: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(raw.to_string())).ok()
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upload => "upload",
            Self::SmartCaption => "smart-caption",
            Self::Babecock => "babecock",
            Self::Hypnococks => "hypnococks",
        }
    }
}

/// Sniffs a MIME type from the bytes themselves (never trusting a client's claim).
pub fn sniff_mime(bytes: &[u8]) -> Option<&'static str> {
    infer::get(bytes).map(|t| t.mime_type())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gif_is_its_own_kind() {
        assert_eq!(MediaKind::from_mime("image/gif"), Some(MediaKind::Gif));
        assert_eq!(MediaKind::from_mime("image/webp"), Some(MediaKind::Image));
        assert_eq!(MediaKind::from_mime("video/mp4"), Some(MediaKind::Video));
        assert_eq!(MediaKind::from_mime("application/pdf"), None);
    }

    #[test]
    fn sources_round_trip() {
        for s in ["upload", "smart-caption", "babecock", "hypnococks"] {
            assert_eq!(MediaSource::parse(s).unwrap().as_str(), s);
        }
        assert!(MediaSource::parse("Upload").is_none());
    }

    #[test]
    fn sniffs_png_bytes() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(sniff_mime(png), Some("image/png"));
    }
}

/// A canonical tag's slug: 1-64 of `[a-z0-9-]`, not starting or ending with `-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct TagSlug(String);

impl TagSlug {
    /// Parses a slug exactly as given (no case folding: slugs are identifiers).
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !raw.starts_with('-')
            && !raw.ends_with('-');
        ok.then(|| Self(raw.to_string()))
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A display name from the slug: `"long-hair"` -> `"Long Hair"`.
    pub fn default_name(&self) -> String {
        self.0
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Tags as a share request gives them: trimmed, lower-cased, de-duplicated in first-seen order.
/// Anything that is not a slug stays as given (trimmed) so the "Unknown tags" answer names it.
/// Linear: a body may hold 100,000 tags.
pub fn normalize_tags(raw: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    raw.iter()
        .map(|tag| tag.trim().to_lowercase())
        .filter(|t| seen.insert(t.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_trimmed_lowercased_and_deduplicated() {
        let raw: Vec<String> = [" Brunette", "brunette", "SOLO ", "Bad Tag"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(normalize_tags(&raw), ["brunette", "solo", "bad tag"]);
    }

    #[test]
    fn slugs_are_lowercase_words() {
        assert!(TagSlug::parse("long-hair").is_some());
        for bad in ["", "Brunette", "-a", "a-", "a b", "a#b", &"a".repeat(65)] {
            assert!(TagSlug::parse(bad).is_none(), "{bad:?}");
        }
        assert_eq!(
            TagSlug::parse("long-hair").unwrap().default_name(),
            "Long Hair"
        );
    }
}

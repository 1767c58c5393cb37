//! Bytes into `joip::watermark::stamp`, JPEG only (the DCT-domain codec of issue 21: the header
//! parser, the Huffman and arithmetic decoders, the scan writer and the splice). libFuzzer
//! catches panics, hangs (`-timeout`) and memory past `-rss_limit_mb` (tools/fuzz.sh sets both);
//! this adds: a published copy is itself a JPEG we publish again, and what the planes path
//! publishes decodes to exactly the coefficients it stamped (the progressive splice's oracle).
#![no_main]

// lib/src/watermark/ compiled here, not the `joip` crate: see fuzz/Cargo.toml.
#[path = "../../lib/src/watermark/mod.rs"]
#[allow(dead_code)]
mod watermark;

use libfuzzer_sys::{fuzz_target, Corpus};
use watermark::{stamp, Limits, WatermarkError};

/// Smaller than the function's: a flipped header claiming 50 MP would spend the fuzzer's time
/// decoding one input. lib/tests/fuzz_regressions.rs replays the findings under the same.
const FUZZ_LIMITS: Limits = Limits {
    max_pixels: 1 << 20,
    max_bytes: 1 << 20,
};

fuzz_target!(|input: &[u8]| -> Corpus {
    // PNG and WebP are other codecs' work (image, libwebp): keep the corpus on JPEG.
    if !input.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Corpus::Reject;
    }
    let Ok(published) = stamp(input, &FUZZ_LIMITS) else {
        return Corpus::Keep;
    };
    assert_eq!(published.mime, "image/jpeg");
    match stamp(&published.bytes, &FUZZ_LIMITS) {
        Ok(_) | Err(WatermarkError::TooLarge(_)) => {}
        Err(e) => panic!("the published copy is refused when stamped again: {e}"),
    }
    assert_ne!(
        watermark::bench::planes_output_is_exact(input, &FUZZ_LIMITS),
        Some(false),
        "the published copy does not decode to the stamped coefficients"
    );
    Corpus::Keep
});

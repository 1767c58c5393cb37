//! PDQ on real photographs: scikit-image's sample photographs and what people do to re-upload
//! them (`tools/perceptual/variants.py` writes the set; `JOIP_PERCEPTUAL_DATA` names a written
//! one, or the tests write it with the project's `.venv` Python), and Meta's reference hashes of
//! the same photographs (`lib/tests/data/pdq/skimage-reference.tsv`).
//!
//! `cargo test -p joip --lib perceptual::photographs -- --nocapture` prints the tables.

use super::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The variants a blocklisted photograph must still match, by their file stem.
const VARIANTS: [&str; 4] = ["q70", "resized90", "cropped2", "converted"];

/// Most pixels any test photograph has.
const MAX_PIXELS: u64 = 50_000_000;

/// The directory of photographs and variants: `JOIP_PERCEPTUAL_DATA`, or one written under the
/// workspace's target/tmp by the script (named by the script's own hash, so a changed script
/// writes a new set). `None` only where the project's Python is not installed.
fn data_dir() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("JOIP_PERCEPTUAL_DATA") {
            return Some(PathBuf::from(dir));
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let python = root.join(".venv/bin/python");
        if !python.exists() {
            eprintln!(
                "SKIPPED: no {} (tools/bootstrap.sh installs it) and no JOIP_PERCEPTUAL_DATA: \
                 the photograph tests need scikit-image's photographs",
                python.display()
            );
            return None;
        }
        let script = root.join("tools/perceptual/variants.py");
        let source = std::fs::read(&script).expect("tools/perceptual/variants.py");
        let digest: String = sha2::Sha256::digest(&source)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let dir = root.join(format!("target/tmp/perceptual-{digest}"));
        if !dir.join("VERSIONS").exists() {
            // Written aside and renamed, so a concurrent test run never reads half a set.
            let partial = root.join(format!(
                "target/tmp/perceptual-{digest}.{}",
                std::process::id()
            ));
            let out = std::process::Command::new(&python)
                .arg(&script)
                .arg(&partial)
                .output()
                .expect("run tools/perceptual/variants.py");
            assert!(
                out.status.success(),
                "tools/perceptual/variants.py failed (tools/bootstrap.sh installs scikit-image \
                 and Pillow into .venv): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            if std::fs::rename(&partial, &dir).is_err() {
                // Another run renamed its own first.
                let _ = std::fs::remove_dir_all(&partial);
            }
        }
        Some(dir)
    })
    .as_deref()
}

use sha2::Digest;

/// A photograph's file of the given stem (`original`, `q70`, ...), whatever its extension.
fn file(photo: &Path, stem: &str) -> PathBuf {
    std::fs::read_dir(photo)
        .expect("photograph directory")
        .map(|e| e.expect("entry").path())
        .find(|p| p.file_stem().is_some_and(|s| s == stem))
        .unwrap_or_else(|| panic!("no {stem} in {}", photo.display()))
}

fn photographs(dir: &Path) -> Vec<PathBuf> {
    let mut photos: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("JOIP_PERCEPTUAL_DATA")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    photos.sort();
    assert!(
        photos.len() >= 12,
        "{} photographs in {}",
        photos.len(),
        dir.display()
    );
    photos
}

fn name(path: &Path) -> String {
    path.file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned()
}

/// What a takedown of the photograph at `path` files: its hash and its centre crops' hashes.
fn filed(path: &Path) -> (PdqHash, Vec<PdqHash>) {
    let bytes = std::fs::read(path).expect("read");
    hash_image_and_crops(&bytes, MAX_PIXELS).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What an upload of the file at `path` is looked up by.
fn uploaded(path: &Path) -> PdqHash {
    let bytes = std::fs::read(path).expect("read");
    hash_image(&bytes, MAX_PIXELS).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The blocklist's decision for an upload hashing to `upload`: the distance to the nearest
/// of what a takedown of the original files (its hash and its centre crops' hashes).
fn nearest(filed: &(PdqHash, Vec<PdqHash>), upload: &PdqHash) -> u32 {
    std::iter::once(&filed.0)
        .chain(&filed.1)
        .map(|h| h.distance(upload))
        .min()
        .expect("at least the whole picture is filed")
}

/// Re-uploads PDQ itself does not survive, printed but not asserted: resizing a picture made of
/// fine repeating detail (a brick wall, a page of small print) moves its hash 28 to 64 bits at
/// every scale from 95 % to 25 %, the detail aliasing differently onto PDQ's 64 x 64 grid (its
/// box filter barely attenuates above that grid's Nyquist frequency). Resampling to 512 x 512
/// first would catch them, at the cost of the reference's exact bits: see the module docs.
const PDQ_MISSES: [(&str, &str); 2] = [("brick", "resized90"), ("page", "resized90")];

/// Every re-upload variant of every photograph is within [`MATCH_DISTANCE`] of what its
/// original's takedown filed (but [`PDQ_MISSES`]); no photograph or variant is within it of
/// another photograph's.
#[test]
fn reuploads_match_their_original_and_distinct_photographs_never_match() {
    let Some(dir) = data_dir() else { return };
    let photos = photographs(dir);
    let originals: Vec<_> = photos.iter().map(|p| filed(&file(p, "original"))).collect();

    println!(
        "photograph          variant      whole  filed  decision (match at <= {MATCH_DISTANCE})"
    );
    let mut worst = [0u32; VARIANTS.len()];
    let mut missed = Vec::new();
    let mut uploads = Vec::new();
    for (i, photo) in photos.iter().enumerate() {
        for (k, variant) in VARIANTS.iter().enumerate() {
            let hash = uploaded(&file(photo, variant));
            let whole = originals[i].0.distance(&hash);
            let filed = nearest(&originals[i], &hash);
            worst[k] = worst[k].max(filed);
            let known = PDQ_MISSES.contains(&(name(photo).as_str(), *variant));
            let decision = match (filed <= MATCH_DISTANCE, known) {
                (true, _) => "match",
                (false, true) => "missed (PDQ_MISSES)",
                (false, false) => "MISSED",
            };
            println!(
                "{:<19} {variant:<12} {whole:>5}  {filed:>5}  {decision}",
                name(photo)
            );
            if filed > MATCH_DISTANCE && !known {
                missed.push(format!("{}/{variant}: {filed}", name(photo)));
            }
            uploads.push((i, *variant, hash));
        }
    }
    let worst: Vec<String> = VARIANTS
        .iter()
        .zip(worst)
        .map(|(v, d)| format!("{v} {d}"))
        .collect();
    println!("worst distance to the filed hashes: {}", worst.join(", "));

    // Distinct photographs: each original and each variant against every other photograph's
    // filed hashes, as the blocklist would compare them.
    let mut false_positives = Vec::new();
    let mut closest = (u32::MAX, String::new());
    let mut total = 0u64;
    let uploads = photos
        .iter()
        .enumerate()
        .map(|(i, _)| (i, "original", originals[i].0))
        .chain(uploads);
    let mut pairs = 0;
    for (i, variant, hash) in uploads {
        for (j, filed) in originals.iter().enumerate().filter(|(j, _)| *j != i) {
            pairs += 1;
            let d = nearest(filed, &hash);
            total += u64::from(d);
            let pair = format!("{}/{variant} vs {}", name(&photos[i]), name(&photos[j]));
            if d < closest.0 {
                closest = (d, pair.clone());
            }
            if d <= MATCH_DISTANCE {
                false_positives.push(format!("{pair}: {d}"));
            }
        }
    }
    println!(
        "distinct photographs: {pairs} comparisons, closest {} ({}), mean {:.1}, false positives: {}",
        closest.0,
        closest.1,
        total as f64 / f64::from(pairs),
        false_positives.len()
    );
    assert!(missed.is_empty(), "re-uploads missed: {missed:?}");
    assert!(
        false_positives.is_empty(),
        "false positives: {false_positives:?}"
    );
}

/// Meta's reference (ThreatExchange `pdq/cpp`, its own luma, filter and DCT) on the pixels
/// Pillow decodes from each photograph (lib/tests/data/pdq/README.md says how they were
/// made). PNGs decode to the same pixels everywhere, so ours must be the reference's bits; a
/// JPEG decoder may round differently from libjpeg-turbo, for which ThreatExchange accepts
/// ports within 10 bits.
#[test]
fn photographs_hash_as_the_reference_does() {
    let Some(dir) = data_dir() else { return };
    let table = include_str!("../../tests/data/pdq/skimage-reference.tsv");
    let mut checked = 0;
    for line in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let fields: Vec<&str> = line.split('\t').collect();
        let [photo, sha256, reference, quality] = fields[..] else {
            panic!("malformed line {line:?}")
        };
        let path = file(&dir.join(photo), "original");
        let bytes = std::fs::read(&path).expect("read");
        let digest: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            digest, sha256,
            "{photo}: not the file the reference hashed (scikit-image version?)"
        );
        let ours = hash_image(&bytes, MAX_PIXELS).expect("hash");
        let d = ours.distance(&PdqHash::from_hex(reference).expect("reference hex"));
        let bound = if path.extension().is_some_and(|e| e == "png") {
            0
        } else {
            10
        };
        println!(
            "{photo:<19} quality {quality:>3}  {d:>2} bits from the reference (allowed {bound})"
        );
        assert!(
            d <= bound,
            "{photo}: {d} bits from the reference's {reference}"
        );
        checked += 1;
    }
    assert!(checked >= 12, "{checked} reference hashes");
}

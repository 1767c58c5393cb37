//! What the JPEG fuzzer found (issue 21; tools/fuzz.sh), replayed: every file of
//! lib/tests/fuzz-regressions/ goes through [`joip::watermark::stamp`] without a panic, and it is
//! published iff libjpeg-turbo's `djpeg -strict` reads it (`TooLarge` is neither), and what is
//! published djpeg reads and we stamp again. Dot files there are not findings.
//!
//! The ignored test is tools/fuzz.sh's oracle pass over a whole fuzz corpus (`JOIP_FUZZ_CORPUS`),
//! where only publishing what djpeg refuses is a finding (its paths go to `JOIP_FUZZ_FINDINGS`).
//!
//! Needs djpeg (Debian: libjpeg-turbo-progs); without it the panic check still runs and the
//! comparison skips loudly, or fails under `CI=1` or `JOIP_REQUIRE_ORACLES=1`.

use joip::watermark::bench::planes_output_is_exact;
use joip::watermark::{stamp, Limits, WatermarkError};
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The fuzz target's limits (`FUZZ_LIMITS` in fuzz/fuzz_targets/stamp.rs): a finding replays
/// under the limits it was found with.
const FUZZ_LIMITS: Limits = Limits {
    max_pixels: 1 << 20,
    max_bytes: 1 << 20,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Published,
    Refused,
    TooLarge,
}

/// One file's judgement; `problem` is `None` when we agree with djpeg.
struct Verdict {
    path: PathBuf,
    answer: Answer,
    djpeg_reads: Option<bool>,
    /// Why it was refused.
    refusal: Option<String>,
    problem: Option<String>,
}

#[test]
fn every_fuzz_finding_is_published_iff_djpeg_reads_it() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let files = files_in(&dir);
    let djpeg = djpeg_available();
    let verdicts = judge_all(&files, djpeg);
    let mut failures = String::new();
    for v in &verdicts {
        let disagrees = match (v.answer, v.djpeg_reads) {
            (Answer::Published, Some(false)) => Some("published, djpeg -strict refuses it"),
            (Answer::Refused, Some(true)) => Some("refused, djpeg -strict reads it"),
            _ => None,
        };
        if let Some(problem) = v.problem.as_deref().or(disagrees) {
            let _ = writeln!(failures, "  {}: {problem}", v.path.display());
        }
    }
    eprintln!(
        "fuzz regressions: {} files, {} published, {} refused, {} too large",
        verdicts.len(),
        count(&verdicts, Answer::Published),
        count(&verdicts, Answer::Refused),
        count(&verdicts, Answer::TooLarge)
    );
    assert!(failures.is_empty(), "fuzz regressions:\n{failures}");
}

#[test]
#[ignore = "tools/fuzz.sh's oracle pass over JOIP_FUZZ_CORPUS"]
fn a_fuzz_corpus_publishes_nothing_djpeg_refuses() {
    let corpus = PathBuf::from(
        std::env::var_os("JOIP_FUZZ_CORPUS").expect("JOIP_FUZZ_CORPUS names the corpus"),
    );
    assert!(djpeg_available(), "the oracle pass needs djpeg");
    let verdicts = judge_all(&files_in(&corpus), true);
    let mut findings = Vec::new();
    let mut report = String::new();
    for v in &verdicts {
        let problem = match (v.answer, v.djpeg_reads) {
            (Answer::Published, Some(false)) => Some("published, djpeg -strict refuses it"),
            _ => v.problem.as_deref(),
        };
        if let Some(problem) = problem {
            findings.push(v.path.display().to_string());
            let _ = writeln!(report, "  {}: {problem}", v.path.display());
        }
    }
    // What we refuse that djpeg reads, by our reason: what libjpeg-turbo lets pass.
    let mut lenient = std::collections::BTreeMap::<&str, usize>::new();
    for v in &verdicts {
        if let (Some(why), Some(true)) = (&v.refusal, v.djpeg_reads) {
            *lenient.entry(why).or_default() += 1;
        }
    }
    for (why, n) in &lenient {
        eprintln!("  refused, read by djpeg -strict: {n} x {why}");
    }
    let lenient: usize = lenient.values().sum();
    eprintln!(
        "fuzz corpus: {} files, {} published, {} refused ({lenient} of them read by djpeg -strict: libjpeg-turbo's leniency, not a finding), {} too large; {} findings",
        verdicts.len(),
        count(&verdicts, Answer::Published),
        count(&verdicts, Answer::Refused),
        count(&verdicts, Answer::TooLarge),
        findings.len()
    );
    if let Some(out) = std::env::var_os("JOIP_FUZZ_FINDINGS") {
        let mut list = findings.join("\n");
        list.push('\n');
        std::fs::write(out, if findings.is_empty() { "" } else { &list }).expect("findings");
    }
    assert!(findings.is_empty(), "fuzz corpus findings:\n{report}");
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| {
            p.is_file()
                && !p
                    .file_name()
                    .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."))
        })
        .collect();
    files.sort();
    files
}

fn count(verdicts: &[Verdict], answer: Answer) -> usize {
    verdicts.iter().filter(|v| v.answer == answer).count()
}

/// Whether djpeg runs here; without it, fails where the oracles are required.
fn djpeg_available() -> bool {
    let found = Command::new("djpeg")
        .arg("-version")
        .stdin(Stdio::null())
        .output()
        .is_ok();
    let require = ["CI", "JOIP_REQUIRE_ORACLES"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.is_empty() && s != "0"));
    assert!(
        found || !require,
        "djpeg is missing (Debian: apt-get install libjpeg-turbo-progs; tools/common.sh bootstrap_codec_tools)"
    );
    if !found {
        eprintln!("\n!!!!! fuzz regressions: djpeg missing, comparison SKIPPED (panics still checked) !!!!!\n");
    }
    found
}

/// Judges every file on as many threads as there are cores.
fn judge_all(files: &[PathBuf], djpeg: bool) -> Vec<Verdict> {
    // One directory per call: both tests may judge at once in one process.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let scratch = std::env::temp_dir().join(format!(
        "joip-fuzz-regressions-{}-{}",
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let next = AtomicUsize::new(0);
    let verdicts = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = files.get(i) else { break };
                let out = scratch.join(format!("{i}.jpg"));
                let verdict = judge(path, djpeg.then_some(out.as_path()));
                verdicts.lock().unwrap().push((i, verdict));
            });
        }
    });
    let _ = std::fs::remove_dir_all(&scratch);
    let mut verdicts = verdicts.into_inner().unwrap();
    verdicts.sort_by_key(|(i, _)| *i);
    verdicts.into_iter().map(|(_, v)| v).collect()
}

/// Stamps one file (a panic is its problem), then asks djpeg about the input and, when
/// published, about the copy (written to `scratch`), which must also stamp again.
fn judge(path: &Path, scratch: Option<&Path>) -> Verdict {
    let input = std::fs::read(path).expect("read the file");
    let mut verdict = Verdict {
        path: path.to_owned(),
        answer: Answer::Refused,
        djpeg_reads: None,
        refusal: None,
        problem: None,
    };
    let published = match catch_unwind(AssertUnwindSafe(|| stamp(&input, &FUZZ_LIMITS))) {
        Err(_) => {
            verdict.problem = Some("stamp panicked".to_owned());
            return verdict;
        }
        Ok(Err(WatermarkError::TooLarge(_))) => {
            verdict.answer = Answer::TooLarge;
            return verdict;
        }
        Ok(Err(e)) => {
            verdict.refusal = Some(e.to_string());
            None
        }
        Ok(Ok(published)) => {
            verdict.answer = Answer::Published;
            Some(published.bytes)
        }
    };
    if let Some(bytes) = &published {
        match catch_unwind(AssertUnwindSafe(|| stamp(bytes, &FUZZ_LIMITS))) {
            Ok(Ok(_) | Err(WatermarkError::TooLarge(_))) => {}
            Ok(Err(e)) => verdict.problem = Some(format!("the published copy is refused: {e}")),
            Err(_) => verdict.problem = Some("stamping the published copy panicked".to_owned()),
        }
        let exact = catch_unwind(AssertUnwindSafe(|| {
            planes_output_is_exact(&input, &FUZZ_LIMITS)
        }));
        if verdict.problem.is_none() && !matches!(exact, Ok(None | Some(true))) {
            verdict.problem =
                Some("the published copy does not decode to the stamped coefficients".to_owned());
        }
    }
    let Some(scratch) = scratch else {
        return verdict;
    };
    verdict.djpeg_reads = Some(djpeg_reads(path));
    if let Some(bytes) = published {
        std::fs::write(scratch, bytes).expect("write the published copy");
        if !djpeg_reads(scratch) && verdict.problem.is_none() {
            verdict.problem = Some("djpeg -strict refuses the published copy".to_owned());
        }
    }
    verdict
}

/// Whether `djpeg -strict` decodes the file without an error or a warning.
fn djpeg_reads(path: &Path) -> bool {
    Command::new("djpeg")
        .args(["-strict", "-outfile", "/dev/null"])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("djpeg runs")
        .success()
}

//! The instructions the entropy coders' hot loops may use, chosen at run time.
//!
//! The JPEG decoder and writer count, find and shift bits in every block (a block's non-zero
//! coefficients, the nth zero a refinement symbol lands on, the length of a code). Built for
//! plain x86-64, `count_ones`, `leading_zeros` and `trailing_zeros` are a dozen instructions
//! each; with POPCNT, LZCNT and BMI1/BMI2 they are one. Every x86-64 server since 2013 has
//! them (Lambda's too), but the workspace is built for plain x86-64 so that its binaries run
//! anywhere: the hot loops are compiled twice instead, and [`Isa::current`] picks one per scan.
//! Same output either way (`isa_tests`).

/// Which copy of the hot loops to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// Plain x86-64 (or another architecture).
    Portable,
    /// POPCNT, LZCNT, BMI1 and BMI2, found on this CPU. Only [`Isa::current`] makes it, so
    /// holding it is proof that the CPU has them.
    #[cfg(target_arch = "x86_64")]
    Bmi,
}

impl Isa {
    /// The best this CPU runs (the standard library caches what the CPU reports).
    pub(crate) fn current() -> Isa {
        #[cfg(test)]
        if PORTABLE_ONLY.with(std::cell::Cell::get) {
            return Isa::Portable;
        }
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("popcnt")
            && std::is_x86_feature_detected!("lzcnt")
            && std::is_x86_feature_detected!("bmi1")
            && std::is_x86_feature_detected!("bmi2")
        {
            return Isa::Bmi;
        }
        Isa::Portable
    }
}

#[cfg(test)]
thread_local! {
    static PORTABLE_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with [`Isa::current`] answering `Portable` on this thread: the tests compare
/// both copies of the hot loops on a CPU that has the features.
#[cfg(test)]
pub(crate) fn portable_only<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            PORTABLE_ONLY.with(|p| p.set(false));
        }
    }
    PORTABLE_ONLY.with(|p| p.set(true));
    let _reset = Reset;
    f()
}

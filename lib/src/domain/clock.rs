//! The one clock every record and rule reads: the system's, or one a test sets and moves (rules
//! with deadlines are then tested without sleeping).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Milliseconds since the Unix epoch, from the system or from a test.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    fixed: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that stands at `ms` until moved (clones share it).
    pub fn fixed(ms: i64) -> Self {
        Self {
            fixed: Some(Arc::new(AtomicI64::new(ms))),
        }
    }

    /// Moves a fixed clock by `ms` (no effect on the system clock).
    pub fn advance(&self, ms: i64) {
        if let Some(now) = &self.fixed {
            now.fetch_add(ms, Ordering::SeqCst);
        }
    }

    /// Now, in milliseconds since the Unix epoch.
    pub fn now_millis(&self) -> i64 {
        match &self.fixed {
            Some(now) => now.load(Ordering::SeqCst),
            None => super::now_millis(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_moves_only_when_told() {
        let clock = Clock::fixed(1_000);
        let shared = clock.clone();
        assert_eq!(clock.now_millis(), 1_000);
        shared.advance(250);
        assert_eq!(clock.now_millis(), 1_250);
        let system = Clock::system();
        system.advance(1_000_000);
        assert!((system.now_millis() - super::super::now_millis()).abs() < 60_000);
    }
}

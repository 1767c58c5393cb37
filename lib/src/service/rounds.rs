//! The one read-decide-write loop: read what the decision needs, decide, write conditionally on
//! what was read; when the condition fails (another request changed the same items meanwhile),
//! read and decide again. Convergence without locks (DESIGN: conditional writes, never locks).

use std::future::Future;

/// Rounds before a loop gives up: each lost round means another request changed the same items,
/// so this many in a row is far beyond any real contention.
pub const ROUNDS: usize = 32;

/// What one round came to.
pub enum Round<T, S> {
    /// Decided and written: the loop's answer.
    Done(T),
    /// What was read changed meanwhile: go again from this state.
    Again(S),
}

/// Every round lost to concurrent changes.
#[derive(Debug, thiserror::Error)]
#[error("{0}: kept losing to concurrent changes")]
pub struct Contended(pub &'static str);

/// Runs `round` from `state` until it is `Done`, at most `rounds` times. The outer `Result` is
/// the rounds' own failure; the inner one says whether the loop settled.
pub async fn settle<T, S, E, F, Fut>(
    what: &'static str,
    rounds: usize,
    mut state: S,
    mut round: F,
) -> Result<Result<T, Contended>, E>
where
    F: FnMut(S) -> Fut,
    Fut: Future<Output = Result<Round<T, S>, E>>,
{
    for _ in 0..rounds {
        match round(state).await? {
            Round::Done(answer) => return Ok(Ok(answer)),
            Round::Again(next) => state = next,
        }
    }
    Ok(Err(Contended(what)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn a_loop_goes_again_until_done_and_gives_up_after_its_rounds() {
        let settled = block_on(settle("count", 5, 0, |n| async move {
            Ok::<_, ()>(if n == 3 {
                Round::Done(n)
            } else {
                Round::Again(n + 1)
            })
        }));
        assert_eq!(settled.unwrap().unwrap(), 3);
        let contended = block_on(settle("never", 4, 0u32, |n| async move {
            Ok::<Round<(), u32>, ()>(Round::Again(n + 1))
        }));
        assert_eq!(
            contended.unwrap().unwrap_err().to_string(),
            "never: kept losing to concurrent changes"
        );
        let failed = block_on(settle("fails", 4, 0u32, |_| async {
            Err::<Round<(), u32>, &str>("boom")
        }));
        assert_eq!(failed.unwrap_err(), "boom");
    }
}

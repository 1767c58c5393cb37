//! The integration tests, one test binary: each former `lib/tests/<suite>.rs` is a module here,
//! so the tests keep their names as `<suite>::<test>` (`cargo test -p joip --test it share_media::`
//! runs one suite) and the AWS SDK, tokio and the `joip` crate are linked once instead of once per
//! suite. libtest runs every test of the binary in parallel (as many at a time as there are
//! cores), suites mixed: none of them touches process- or emulator-global state another relies
//! on. Each test owns its table and buckets; chaos is per client (`x-joip-chaos`, support/chaos.rs),
//! never the emulator's global rate; nothing sets environment variables.
//!
//! Shared by the suites: the emulator's global fault counter (`GET /_joip/chaos`), which
//! emulator_semantics reads only as a lower bound; the e2e stack's table (e2e, hostile_input),
//! where hostile_input compares only its own users' items; and one global tracing subscriber,
//! installed by whichever of faults, save_hardening and share_media logs first (their `logs()`
//! try_init: the others' filters are then ignored; logs are only shown for failing tests).
//!
//! Not here: `lib/tests/load.rs`, its own binary, because it turns the emulator's global chaos
//! rate on (`POST /_joip/chaos`) for its whole timed run, which would fail any other test's
//! requests, and measures throughput that other tests would skew. cargo runs test binaries one
//! after another, so it never overlaps these.
//!
//! e2e, hostile_input (except its two in-process tests) need `cargo lambda watch` as
//! tools/test.sh starts it (`JOIP_E2E_URL`) and fail without it: `-- --skip e2e:: --skip
//! hostile_input::` runs the rest.

#[path = "../support/mod.rs"]
mod support;

mod e2e;
mod emulator_semantics;
mod faults;
mod hostile_input;
mod links;
mod list_user_media;
mod moderation;
mod openapi;
mod presign;
mod save_community_session;
mod save_hardening;
mod share_media;
mod template_policy;
mod unpublish;
mod watermark;

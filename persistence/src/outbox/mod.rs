//! The outbox: `task` rows written in the same transaction as the change they announce, and
//! the relay that carries them on.
//!
//! * [`store`] — every statement on the `task` table: insert, claim, settle, admin list/replay;
//! * [`relay`] — the per-shard loop: claim a batch, publish it with confirms, settle it;
//! * [`projector`] — what a relayed batch changes on the read side: projection-only events
//!   applied to the user views, award history, and the task-status streams.

pub mod projector;
pub mod relay;
pub mod store;

//! Checkpoints: how keyed state and source positions survive a crash.
//!
//! The protocol, which the rest of this module implements piece by piece:
//!
//! * **Epochs are checkpoints.** Every stateful operator applies the records of
//!   the lowest open epoch and buffers later ones (see [`crate::stateful`]).
//!   When epoch `e` completes at its input, the operator writes the keys it
//!   changed in `e` — as a *delta* keyed by `e`, never over older data — into
//!   its worker's store, before it releases its capability for `e`. Sources
//!   write their split positions for `e` the same way.
//! * **A checkpoint is complete** when every worker has flushed `e`. Timely
//!   says so: an operator downstream of every stateful operator sees its
//!   input frontier pass `e` only after all of them, on all workers, have
//!   flushed. It then appends `e` to the manifest, with each worker's
//!   checksum.
//! * **Restore** picks the newest complete epoch whose data verifies
//!   ([`protocol::choose_restore`]), loads base + deltas up to it for the key
//!   groups a worker owns (a key-range scan, so any worker count works),
//!   drops newer deltas (a torn epoch), seeks sources, and resumes at `e + 1`.
//! * **Compaction** folds deltas into the base only below the oldest of the
//!   last N complete epochs ([`protocol::fold_through`]), so each of those N
//!   can still be restored.
//!
//! * **Output** to files is exactly-once: each epoch's records are staged and
//!   published when the epoch's checkpoint is complete ([`staged`]).
//!
//! Decisions are pure functions in [`protocol`], tested as tables; the I/O is
//! a small trait ([`store::StateStore`]) with an in-memory implementation here
//! and a RocksDB one in `weir-rocks`. Every key is built by [`layout`].

pub mod conformance;
pub mod inspect;
pub(crate) mod keyed;
pub mod layout;
pub mod manifest;
pub mod protocol;
pub mod runtime;
pub mod staged;
pub mod store;
pub(crate) mod writer;

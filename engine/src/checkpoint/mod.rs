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
//! * **A checkpoint is complete** when every stateful operator has flushed
//!   `e` on every worker and every exactly-once sink on the worker that
//!   writes it ([`protocol::epoch_complete`]; sources do not count). Timely
//!   says when no flush for `e` can still arrive: the manifest writer, downstream
//!   of every flushing step, sees its input frontier pass `e` only after all
//!   of them, on all workers, have flushed or skipped it. It then appends `e`
//!   to the manifest, with each flush's checksum, keeping the newest N
//!   ([`protocol::retained`]), and announces it to every worker of every
//!   process through the dataflow, with how far they may fold.
//! * **Restore** verifies the complete epochs with [`verify::verify`] — each
//!   flush's data against its marker and the manifest, and whether the state
//!   a restore loads can be read — and restores the newest that passes
//!   ([`protocol::choose_restore`]), or refuses to start when none does. It
//!   loads base + deltas up to it for the key groups a worker owns (a
//!   key-range scan, so any worker count works), drops newer deltas (a torn
//!   epoch), seeks sources, and resumes at `e + 1`.
//! * **Compaction** folds deltas into the base only below the oldest of the
//!   last N complete epochs ([`protocol::fold_through`]), so each of those N
//!   can still be restored.
//! * **Output** is exactly-once through sinks that take part: each epoch's
//!   records are staged on every worker that writes the sink, and committed
//!   when the epoch's checkpoint is complete; the sink protocol's rules are
//!   in [`crate::sink_protocol`].
//!
//! Where the rules live, once each:
//!
//! * every decision — completeness, retention, how far to fold, which epoch
//!   to restore — is a pure function in [`protocol`], tested as tables, and
//!   called by the code that acts on it;
//! * whether an epoch's stored data restores is [`verify::verify`], the one
//!   verification: a job's start ([`runtime::plan`]) and `weir-checkpoint
//!   verify`/`list` ([`inspect`]) call it alike, so they never disagree;
//! * every stored key, and the encoding of state deltas and split
//!   positions, is laid out by [`layout`];
//! * the I/O is a small trait ([`store::StateStore`]) with an in-memory
//!   implementation here and a RocksDB one in `weir-rocks`; the operations on
//!   it (flush, fold, load) are written once in [`store`].

pub(crate) mod background;
pub mod conformance;
#[cfg(test)]
mod fixtures;
pub mod inspect;
pub(crate) mod keyed;
pub mod layout;
pub mod manifest;
mod planning;
pub mod protocol;
pub mod runtime;
pub mod store;
pub mod verify;
pub(crate) mod writer;

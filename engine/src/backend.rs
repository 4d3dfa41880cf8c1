//! The door for state backends and checkpoint tools.
//!
//! A job author never needs this module: a job gets its backend through
//! [`RunArgs::backend`](crate::RunArgs::backend) (`weir_rocks::backend()`).
//! Someone writing a backend implements two traits, neither of which
//! imports a storage engine:
//!
//! * [`Backend`] opens a worker's store, for writing or read-only;
//! * [`StateStore`] is that store: atomic, durable [`Batch`]es of [`Op`]s,
//!   ordered range scans and point reads, failing with a [`StoreError`]
//!   that says what was being done.
//!
//! Everything a checkpoint does — flushes, folding, restores, verification
//! — is written once in the engine on top of these, so a backend is only
//! storage. [`check_store`] is the behaviour every store must have, as a
//! check a backend runs in its own tests ([`MemoryStore`] passes it, and so
//! does `weir-rocks`).
//!
//! A tool that reads what jobs left in a checkpoint directory (such as
//! `weir-checkpoint`) uses [`manifest`] (the list of complete epochs),
//! [`verify`] (whether an epoch restores: the same check a job's start
//! makes, so the two never disagree), [`inspect`] (what an epoch holds,
//! store by store) and [`store_path`] (where a worker's store is);
//! [`RestoreDecision`] is which epoch a restore would choose, and
//! [`Unusable`] why it passed over the others.

pub use crate::checkpoint::conformance::check_store;
pub use crate::checkpoint::protocol::{RestoreDecision, Unusable};
pub use crate::checkpoint::runtime::{store_path, Backend};
pub use crate::checkpoint::store::{
    BackgroundWriter, Batch, MemoryStore, Op, StateStore, StoreError,
};
pub use crate::checkpoint::{inspect, manifest, verify};

// What the engine's own tests and benches reach into (the plan a job's
// start makes, key layout, fold and checksum helpers): not part of the
// backend interface.
#[doc(hidden)]
pub use crate::checkpoint::layout;
#[doc(hidden)]
pub use crate::checkpoint::runtime::{plan, Plan, RestoreFrom};
#[doc(hidden)]
pub use crate::checkpoint::store::{checksum_of_epoch_step, folded_through};

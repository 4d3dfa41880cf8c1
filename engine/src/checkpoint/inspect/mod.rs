//! Read-only inspection of a checkpoint directory: what the `weir-checkpoint`
//! tool (in `weir-rocks`) prints, computed here on any [`StateStore`] so that
//! it is the same on every backend and testable on [`MemoryStore`].
//!
//! Nothing here writes: stores are opened with [`Backend::open_read_only`],
//! the manifest is only read. Two views:
//!
//! * [`list`]: every epoch found, from the manifest and from the flush
//!   markers in the stores, with its status (restorable, unusable, torn…)
//!   and what it wrote on each worker ([`summarize`] scans a store once).
//! * [`operator_state`] and [`source_positions`]: one epoch's keyed state
//!   per key group, and each split's decoded position.
//!
//! Whether epochs verify, and which one a restore uses, is not decided
//! here: [`verify`](super::verify::verify) is the one verification, which a
//! job's start calls too; the views above report what it found.
//!
//! One module per concern: `summary` (what a store holds, by kind and
//! epoch), `listing` (each epoch's status), `state` (an epoch's keyed state
//! and split positions, read back), `disk` (generations and sizes on disk).
//!
//! [`StateStore`]: super::store::StateStore
//! [`MemoryStore`]: super::store::MemoryStore
//! [`Backend::open_read_only`]: super::runtime::Backend::open_read_only

mod disk;
mod listing;
mod state;
mod summary;

pub use disk::{disk_size, generations_on_disk};
pub use listing::{list, EpochListing, EpochStatus};
pub use state::{
    operator_state, source_positions, BufferedEntry, GroupState, InspectError, OperatorState,
    SourceSplit, SplitPosition, StoredKey,
};
pub use summary::{marker_summary, markers, summarize, EpochFootprint, StoreSummary, Volume};

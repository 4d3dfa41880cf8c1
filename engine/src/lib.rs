//! # weir
//!
//! A deterministic event-time stream processing engine on timely dataflow.
//!
//! A job is a [`Pipeline`]: sources → event time → operators → sinks. You
//! never touch timely capabilities or frontiers. The ideas, in order:
//!
//! * **Time** ([`time`]): one timely timestamp `Time { epoch, event }` under the
//!   product order. `event` is the watermark a source stamped a record with;
//!   `epoch` is a checkpoint epoch. A record is late for a window iff its stamp
//!   is at or past the window's end — decided by input order, never by thread
//!   timing, so output is the same on 1, 2 or 4 workers.
//! * **Sources** ([`source`], [`watermark`]): connectors are sets of splits;
//!   each split has its own watermark (bounded out-of-orderness, a quantum, an
//!   idle timeout); a source holds the minimum; timely takes the minimum over
//!   workers. Sources pause when downstream lags (flow control).
//! * **Streams** ([`Stream`], [`KeyedStream`]): `map`, `filter`, `flat_map`,
//!   `inspect`, `union`, `key_by`, `sink`, `dead_letter`. Windows and other
//!   stateful families live in `weir-operators`, on the keyed-state primitive
//!   in [`stateful`].
//! * **Bad data is data** ([`DeadLetter`]): malformed records, missing
//!   timestamps and late records go to a dead-letter stream with the reason
//!   and where they came from.
//! * **Testing** ([`testing`]): a scripted source, a capturing sink and
//!   `run_workers(n, …)`.
//! * **Checkpoints** survive a crash through a state backend that a job
//!   names in [`RunArgs::backend`] (`weir_rocks::backend()`). Writing a
//!   backend, or a tool that reads checkpoints, goes through one door,
//!   [`backend`]; the checkpoint machinery itself is not public.
//!
//! ```
//! use weir::testing::{run_workers, Script};
//! use weir::Watermarks;
//!
//! let out = run_workers(2, |p, capture| {
//!     let script = Script::new().records(&[(1u64, 10u64), (2, 20)]);
//!     p.source("numbers", script)
//!         .event_time(|r: &(u64, u64)| r.1, Watermarks::ascending())
//!         .map(|(k, v)| (k, v * 2))
//!         .sink("out", capture.sink());
//! });
//! assert_eq!(out, vec![(1, 20), (2, 40)]);
//! ```
#![deny(missing_docs)]

pub mod backend;
pub(crate) mod checkpoint;
pub mod commit_log;
pub mod config;
pub mod data;
pub mod dead_letter;
pub mod error;
mod failpoint;
mod flow;
pub mod ids;
mod metrics;
pub mod pipeline;
pub mod rng;
pub mod sink;
mod sink_checkpointed;
pub mod sink_protocol;
pub mod source;
mod source_op;
pub mod stateful;
pub mod stream;
pub mod testing;
pub mod time;
pub mod watermark;
mod worker_context;

pub use commit_log::{CommitLog, Committed};
pub use config::RunArgs;
pub use data::{Data, Key};
pub use dead_letter::{DeadLetter, FieldValue, Fields, Origin, Raw};
pub use error::{ConfigError, Fault, FaultKind, JobError};
pub use ids::{FastMap, FastSet, KeyGroup, SplitId, WorkerIndex};
pub use metrics::Summary;
pub use pipeline::{run, Pipeline, SourceBuilder};
pub use sink::{Recovery, Sink};
pub use source::{ReadItem, ReadStatus, Source, SplitReader, Waker};
pub use source_op::IntoEventTime;
pub use stream::{KeyedStream, Stream};
pub use time::{Epoch, EventTime, Time};
pub use watermark::Watermarks;

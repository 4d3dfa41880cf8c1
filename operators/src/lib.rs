//! # weir-operators
//!
//! Stateful operator families for weir, each on the engine's keyed-state
//! primitive ([`weir::stateful`]): event-time windows ([`WindowExt`]) and the
//! aggregators they compute ([`Count`], [`Sum`], [`Min`], [`Max`], [`Avg`],
//! [`Fold`], [`Percentiles`], and tuples of them).
#![deny(missing_docs)]

pub mod aggregate;
pub mod exact_sum;
pub mod process;
pub mod window;

pub use aggregate::{
    Aggregator, Avg, Count, Fold, Max, Min, Percentiles, Quantiles, Sum, Summable,
};
pub use exact_sum::ExactSum;
pub use process::{
    Context, ListState, MapState, ProcessExt, ProcessFunction, Processed, ValueState,
};
pub use window::{Fired, Late, Window, WindowExt, Windowed, Windows};

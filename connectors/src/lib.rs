//! # weir-connectors
//!
//! Sources and sinks for weir: a deterministic [`generator`] of card
//! transactions, service requests, sensor readings and auction bids; [`file`](mod@file)
//! input and output as CSV or JSON lines (exactly-once as [`parts`]), with
//! [`fields`] checks that turn nonsense values into dead letters; stdout; and dead-letter files.
#![deny(missing_docs)]

mod csv_de;
pub mod fields;
pub mod file;
pub mod format;
pub mod generator;
pub mod parts;
pub mod staged;

pub use file::{FileSink, FileSource, StdoutSink};
pub use format::Format;
pub use generator::{
    Bid, Generated, Generation, Generator, GeneratorConfig, Reading, Request, Transaction,
};
pub use parts::PartsSink;

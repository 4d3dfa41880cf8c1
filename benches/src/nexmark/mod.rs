//! Nexmark: the standard streaming benchmark of an online auction (persons
//! register, open auctions, bid), its generator ([`model`], [`source`]) and
//! queries q0, q1, q2, q3, q4, q5, q7 and q8 on weir ([`queries`]) and
//! hand-written ([`baseline`]), with the rows they output ([`rows`]).
//!
//! [`engine_digest`] and [`baseline_digest`] run one query over the same
//! events and fingerprint its output ([`digest`]), so a bench checks that
//! both computed the same thing without collecting it; [`engine_rows`] and
//! [`baseline_rows`] collect it, for tests.

pub mod baseline;
pub mod digest;
pub mod model;
pub mod queries;
pub mod rows;
pub mod source;

use std::hash::Hash;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use weir::testing::Capture;
use weir::{Data, JobError, RunArgs, Stream};

pub use digest::{Digest, DigestSink};
pub use model::{Auction, Bid, Event, Model, Person};
pub use source::Nexmark;

/// One of the implemented queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Query {
    /// Pass-through.
    Q0,
    /// Currency conversion.
    Q1,
    /// Selection.
    Q2,
    /// Local item suggestion (join).
    Q3,
    /// Average closing price per category (join, running aggregate).
    Q4,
    /// Hot items (sliding windows).
    Q5,
    /// Highest bid (tumbling windows).
    Q7,
    /// New users (windowed join).
    Q8,
}

impl Query {
    /// Every query, in order.
    pub const ALL: [Query; 8] = [
        Query::Q0,
        Query::Q1,
        Query::Q2,
        Query::Q3,
        Query::Q4,
        Query::Q5,
        Query::Q7,
        Query::Q8,
    ];

    /// `q0` … `q8`.
    pub fn name(self) -> &'static str {
        match self {
            Query::Q0 => "q0",
            Query::Q1 => "q1",
            Query::Q2 => "q2",
            Query::Q3 => "q3",
            Query::Q4 => "q4",
            Query::Q5 => "q5",
            Query::Q7 => "q7",
            Query::Q8 => "q8",
        }
    }

    /// The query named `name` (`q0` … `q8`).
    pub fn parse(name: &str) -> Result<Query, String> {
        Query::ALL
            .into_iter()
            .find(|q| q.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Query::ALL.iter().map(|q| q.name()).collect();
                format!("unknown query {name:?}: use one of {}", names.join(", "))
            })
    }
}

/// A query on weir: the event stream in, its rows out.
pub type Build<R> = for<'s> fn(Stream<'s, Event>) -> Stream<'s, R>;

/// Runs `build` over `source`, each worker's output into a fresh `sink()`;
/// the time from the first worker's building its dataflow (in a cluster of
/// processes: once they are connected) to the end of the run.
fn run<R, E, S, K>(
    build: Build<R>,
    source: E,
    args: &RunArgs,
    sink: S,
) -> Result<Duration, JobError>
where
    R: Data,
    E: weir::Source<Item = Event> + Clone + Send + Sync + 'static,
    S: Fn() -> K + Send + Sync + 'static,
    K: weir::Sink<R>,
{
    let built = Arc::new(OnceLock::new());
    let first = Arc::clone(&built);
    weir::run(args, move |p| {
        first.get_or_init(Instant::now);
        let events = p
            .source("events", source.clone())
            .event_time(|e: &Event| e.ts_ms(), queries::watermarks());
        build(events).sink("out", sink());
    })?;
    Ok(built.get().map_or(Duration::ZERO, |t| t.elapsed()))
}

fn digest_of<R: Data + Hash>(
    build: Build<R>,
    source: Nexmark,
    args: &RunArgs,
) -> Result<(Digest, Duration), JobError> {
    let shared = Arc::new(Mutex::new(Digest::default()));
    let into = Arc::clone(&shared);
    let took = run(build, source, args, move || {
        DigestSink::new(Arc::clone(&into))
    })?;
    let digest = *shared
        .lock()
        .map_err(|_| JobError::Runtime("a digest sink panicked".into()))?;
    Ok((digest, took))
}

/// Runs `query` on weir over `source` and fingerprints its output.
pub fn engine_digest(query: Query, source: Nexmark, args: &RunArgs) -> Result<Digest, JobError> {
    engine_digest_timed(query, source, args).map(|(d, _)| d)
}

/// [`engine_digest`], with the time from the dataflow's start (once the
/// processes are connected) to the end of the run.
pub fn engine_digest_timed(
    query: Query,
    source: Nexmark,
    args: &RunArgs,
) -> Result<(Digest, Duration), JobError> {
    match query {
        Query::Q0 => digest_of(queries::q0, source, args),
        Query::Q1 => digest_of(queries::q1, source, args),
        Query::Q2 => digest_of(queries::q2, source, args),
        Query::Q3 => digest_of(queries::q3, source, args),
        Query::Q4 => digest_of(queries::q4, source, args),
        Query::Q5 => digest_of(queries::q5, source, args),
        Query::Q7 => digest_of(queries::q7, source, args),
        Query::Q8 => digest_of(queries::q8, source, args),
    }
}

/// Runs `query` by hand over `source`'s events and fingerprints its output.
pub fn baseline_digest(query: Query, source: &Nexmark) -> Digest {
    let mut d = Digest::default();
    let events = source.iter();
    match query {
        Query::Q0 => baseline::q0(events, &mut |r| d.add(&r)),
        Query::Q1 => baseline::q1(events, &mut |r| d.add(&r)),
        Query::Q2 => baseline::q2(events, &mut |r| d.add(&r)),
        Query::Q3 => baseline::q3(events, &mut |r| d.add(&r)),
        Query::Q4 => baseline::q4(events, &mut |r| d.add(&r)),
        Query::Q5 => baseline::q5(events, &mut |r| d.add(&r)),
        Query::Q7 => baseline::q7(events, &mut |r| d.add(&r)),
        Query::Q8 => baseline::q8(events, &mut |r| d.add(&r)),
    }
    d
}

/// Runs `build` on weir over `source` (Nexmark's, or a script of events
/// for a test); its rows, sorted.
pub fn engine_rows<R, E>(build: Build<R>, source: E, args: &RunArgs) -> Result<Vec<R>, JobError>
where
    R: Data + Ord,
    E: weir::Source<Item = Event> + Clone + Send + Sync + 'static,
{
    let capture = Capture::<R>::new();
    let into = capture.clone();
    run(build, source, args, move || into.sink())?;
    let mut rows = capture.records();
    rows.sort();
    Ok(rows)
}

/// Runs a hand-written query function over `source`'s events; its rows,
/// sorted.
pub fn baseline_rows<R: Ord>(
    query: impl FnOnce(std::vec::IntoIter<Event>, &mut dyn FnMut(R)),
    source: &Nexmark,
) -> Vec<R> {
    let mut rows = Vec::new();
    let events: Vec<Event> = source.iter().collect();
    query(events.into_iter(), &mut |r| rows.push(r));
    rows.sort();
    rows
}

//! weir's streams: [`Stream`] and [`KeyedStream`].
//!
//! Both wrap a timely stream of `Vec` batches timestamped with [`Time`]; users
//! never see a capability or a frontier. Universal operations are inherent
//! methods here; specialised families (windows, …) are extension traits in
//! `weir-operators`.

use std::rc::Rc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::core::{Concat, Exchange, Inspect};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Filter;
use timely::dataflow::StreamVec;

use crate::data::{Data, Key};
use crate::dead_letter::DeadLetter;
use crate::ids::KeyGroup;
use crate::sink::{build_at_least_once, Sink};
use crate::sink_checkpointed;
use crate::sink_protocol::{self, Delivery};
use crate::time::Time;
use crate::worker_context::PipelineState;

pub(crate) use crate::time::TimedOutput;
pub use crate::time::{Timed, TimedStream};

/// A stream of records of type `D`. Every record carries the event time its
/// source extracted (or, for window results, the window's last ms), so later
/// operators need no extractor.
pub struct Stream<'s, D> {
    pub(crate) inner: StreamVec<'s, Time, Timed<D>>,
    pub(crate) state: Rc<PipelineState<'s>>,
    /// Whether an upstream stateful operator holds this stream's frontier back
    /// (window results wait for their window's end). Flow control only watches
    /// streams that are not held, or sources would wait for windows that wait
    /// for sources.
    pub(crate) held: bool,
}

impl<D: Clone + 'static> Clone for Stream<'_, D> {
    fn clone(&self) -> Self {
        Stream {
            inner: self.inner.clone(),
            state: Rc::clone(&self.state),
            held: self.held,
        }
    }
}

impl<'s, D: Data> Stream<'s, D> {
    pub(crate) fn new(
        inner: StreamVec<'s, Time, Timed<D>>,
        state: Rc<PipelineState<'s>>,
        held: bool,
    ) -> Self {
        Stream { inner, state, held }
    }

    fn with<D2: Data>(&self, inner: StreamVec<'s, Time, Timed<D2>>) -> Stream<'s, D2> {
        Stream::new(inner, Rc::clone(&self.state), self.held)
    }

    /// Transforms each record.
    pub fn map<D2: Data>(self, mut logic: impl FnMut(D) -> D2 + 'static) -> Stream<'s, D2> {
        let inner = per_batch(self.inner.clone(), "Map", move |batch, out| {
            out.extend(batch.map(|(t, d)| (t, logic(d))));
        });
        self.with(inner)
    }

    /// Keeps the records for which `predicate` is true.
    pub fn filter(self, mut predicate: impl FnMut(&D) -> bool + 'static) -> Stream<'s, D> {
        let inner = self.inner.clone().filter(move |(_, d)| predicate(d));
        self.with(inner)
    }

    /// Replaces each record by any number of records.
    pub fn flat_map<I>(self, mut logic: impl FnMut(D) -> I + 'static) -> Stream<'s, I::Item>
    where
        I: IntoIterator,
        I::Item: Data,
    {
        let inner = per_batch(self.inner.clone(), "FlatMap", move |batch, out| {
            for (t, d) in batch {
                out.extend(logic(d).into_iter().map(|x| (t, x)));
            }
        });
        self.with(inner)
    }

    /// Looks at each record without changing the stream.
    pub fn inspect(self, mut logic: impl FnMut(&D) + 'static) -> Stream<'s, D> {
        let inner = self.inner.clone().inspect(move |(_, d)| logic(d));
        self.with(inner)
    }

    /// Merges two streams of the same type.
    pub fn union(self, other: Stream<'s, D>) -> Stream<'s, D> {
        let held = self.held || other.held;
        let inner = self.inner.clone().concat(other.inner);
        Stream::new(inner, self.state, held)
    }

    /// Partitions the stream by key: every record with the same key goes to
    /// the worker that owns the key's [`KeyGroup`]. `name` names the step.
    ///
    /// The exchange happens in the operator that consumes the keyed stream
    /// (no extra pass over the data); the key is computed again there.
    pub fn key_by<K: Key>(
        self,
        name: &str,
        key: impl Fn(&D) -> K + 'static,
    ) -> KeyedStream<'s, K, D> {
        self.state.claim_name("key_by", name);
        KeyedStream {
            inner: self.inner,
            key: Rc::new(key),
            state: self.state,
            held: self.held,
        }
    }

    /// Sends every record to a sink whose writes are done when they return
    /// (stderr), outside checkpoints: for sinks the pipeline attaches once
    /// its checkpoint steps are fixed.
    pub(crate) fn sink_unchecked(self, name: &str, sink: impl Sink<D>) {
        self.state.claim_name("sink", name);
        build_at_least_once(self.inner, &self.state, self.held, name, sink);
    }

    /// Sends every record to `sink`. Sinks that are not parallel receive all
    /// records on worker 0.
    pub fn sink(self, name: &str, sink: impl Sink<D>) {
        self.state.claim_name("sink", name);
        // How it delivers is the sink protocol's decision; an exactly-once
        // sink in a job without checkpoints runs at-least-once, unless it
        // needs them.
        let checkpoint = self.state.ctx.checkpoint.clone();
        let delivery = sink_protocol::delivery(
            name,
            sink.exactly_once(),
            sink.needs_checkpoints(),
            checkpoint.is_some(),
            sink.parallel() && !sink.staging_survives_crash(),
        );
        match (delivery, checkpoint) {
            (Err(e), _) => self.state.ctx.shared.fail(e.into()),
            (Ok(Delivery::AtLeastOnce), _) | (Ok(_), None) => {
                build_at_least_once(self.inner, &self.state, self.held, name, sink)
            }
            // A step of the checkpoint: no checkpoint completes before the
            // sink's output through it is durable.
            (Ok(delivery), Some(checkpoint)) => sink_checkpointed::build(
                self.inner,
                &self.state,
                self.held,
                name,
                sink,
                checkpoint,
                delivery,
            ),
        }
    }

    /// Turns every record into a dead letter (for example late records) and
    /// adds them to the pipeline's dead letters.
    pub fn dead_letter(self, logic: impl FnMut(D) -> DeadLetter + 'static) {
        let shared = std::sync::Arc::clone(&self.state.ctx.shared);
        let mut logic = logic;
        let dead = per_batch(self.inner.clone(), "DeadLetter", move |batch, out| {
            out.extend(batch.map(|(t, d)| (t, logic(d))));
            shared
                .dead_letters
                .fetch_add(out.len() as u64, std::sync::atomic::Ordering::Relaxed);
        });
        self.state.add_dead_letters(dead);
    }

    /// The event time of each record, as the record it travels with.
    pub fn with_event_time(self) -> Stream<'s, (u64, D)> {
        let inner = per_batch(self.inner.clone(), "WithEventTime", |batch, out| {
            out.extend(batch.map(|(t, d)| (t, (t, d))));
        });
        self.with(inner)
    }

    /// The underlying timely stream of `(event time, record)`, for experts.
    pub fn into_timely(self) -> StreamVec<'s, Time, Timed<D>> {
        self.inner
    }

    /// Applies a timely operator and keeps the result in weir's world. Flow
    /// control treats the result as held back (it may hold capabilities).
    pub fn with_timely<D2: Data>(
        self,
        logic: impl FnOnce(StreamVec<'s, Time, Timed<D>>) -> StreamVec<'s, Time, Timed<D2>>,
    ) -> Stream<'s, D2> {
        let inner = logic(self.inner.clone());
        Stream::new(inner, self.state, true)
    }
}

impl<K, D: Clone + 'static> Clone for KeyedStream<'_, K, D> {
    fn clone(&self) -> Self {
        KeyedStream {
            inner: self.inner.clone(),
            key: Rc::clone(&self.key),
            state: Rc::clone(&self.state),
            held: self.held,
        }
    }
}

/// A stream partitioned by key: the operator that consumes it sees every
/// record of a key on the worker that owns the key's group.
pub struct KeyedStream<'s, K, D> {
    /// Records not yet exchanged; consumers exchange them by `key`.
    pub(crate) inner: TimedStream<'s, D>,
    pub(crate) key: Rc<dyn Fn(&D) -> K>,
    pub(crate) state: Rc<PipelineState<'s>>,
    pub(crate) held: bool,
}

impl<'s, K: Key, D: Data> KeyedStream<'s, K, D> {
    /// Where a record goes: the worker owning its key's group.
    pub(crate) fn router(&self) -> impl Fn(&Timed<D>) -> u64 + 'static {
        let key = Rc::clone(&self.key);
        let peers = self.inner.scope().peers();
        move |(_, d): &Timed<D>| KeyGroup::of(&key(d)).worker(peers).0 as u64
    }

    /// The records with their keys, as a plain stream, each on the worker
    /// that owns its key.
    pub fn into_stream(self) -> Stream<'s, (K, D)> {
        let key = Rc::clone(&self.key);
        let route = self.router();
        let exchanged = self.inner.exchange(move |r: &Timed<D>| route(r));
        let inner = per_batch(exchanged, "WithKey", move |batch, out| {
            out.extend(batch.map(|(t, d)| (t, (key(&d), d))));
        });
        Stream::new(inner, self.state, self.held)
    }

    /// Looks at each keyed record without changing the stream.
    pub fn inspect(self, mut logic: impl FnMut(&K, &D) + 'static) -> KeyedStream<'s, K, D> {
        let key = Rc::clone(&self.key);
        let inner = self.inner.clone().inspect(move |(_, d)| logic(&key(d), d));
        KeyedStream {
            inner,
            key: self.key,
            state: self.state,
            held: self.held,
        }
    }

    /// The underlying timely stream of `(key, event time, record)`, exchanged
    /// by key, for experts.
    pub fn into_timely(self) -> StreamVec<'s, Time, (K, u64, D)> {
        let key = Rc::clone(&self.key);
        let route = self.router();
        let exchanged = self.inner.exchange(move |r: &Timed<D>| route(r));
        per_batch(exchanged, "WithKey", move |batch, out| {
            out.extend(batch.map(|(t, d)| (key(&d), t, d)));
        })
    }
}

/// A record-at-a-time step run a batch at a time: `logic` drains each input
/// batch into a vector that is handed on as one container, instead of
/// pushing every record through timely's container builder.
fn per_batch<'s, A: 'static, B: 'static>(
    inner: StreamVec<'s, Time, A>,
    name: &str,
    mut logic: impl FnMut(std::vec::Drain<'_, A>, &mut Vec<B>) + 'static,
) -> StreamVec<'s, Time, B> {
    inner.unary::<CapacityContainerBuilder<Vec<B>>, _, _, _>(Pipeline, name, move |_, _| {
        let mut out: Vec<B> = Vec::new();
        move |input, output| {
            input.for_each(|cap, batch| {
                out.reserve(batch.len());
                logic(batch.drain(..), &mut out);
                output.session(&cap).give_container(&mut out);
                out.clear();
            });
        }
    })
}

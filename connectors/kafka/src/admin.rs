//! Creating and deleting topics (for tests, benches, the CLI and demos), without an async
//! runtime: rdkafka's admin calls return futures that its own background
//! thread completes, so a thread that parks until woken is enough.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use weir::Fault;

use crate::config::KafkaConfig;
use crate::fault::fault;

/// Wakes the thread that waits in [`block_on`].
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to its end on this thread.
fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(out) => return out,
            Poll::Pending => std::thread::park_timeout(Duration::from_millis(100)),
        }
    }
}

fn admin(config: &KafkaConfig) -> Result<AdminClient<DefaultClientContext>, Fault> {
    config
        .client(&[])
        .create()
        .map_err(|e| fault("creating an admin client", &e))
}

fn options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)))
}

/// Creates `topic` with `partitions` partitions (replication factor 1, for
/// a local broker); a topic that already exists is left as it is.
pub fn create_topic(config: &KafkaConfig, topic: &str, partitions: i32) -> Result<(), Fault> {
    create_topic_with(config, topic, partitions, &[])
}

/// [`create_topic`] with topic-level settings (`cleanup.policy=compact`).
pub fn create_topic_with(
    config: &KafkaConfig,
    topic: &str,
    partitions: i32,
    settings: &[(&str, &str)],
) -> Result<(), Fault> {
    let admin = admin(config)?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (key, value) in settings {
        new = new.set(key, value);
    }
    let results = block_on(admin.create_topics([&new], &options()))
        .map_err(|e| fault(&format!("creating topic `{topic}`"), &e))?;
    // A topic that was there keeps its own partition count.
    let mut expect = partitions.max(1) as usize;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => expect = 1,
            Err((name, code)) => {
                return Err(Fault::fatal(format!(
                    "kafka: creating topic `{name}`: {code}"
                )))
            }
        }
    }
    wait_until_served(&admin, topic, expect)
}

/// How long a new topic or partition may take to be served.
const SERVED_WITHIN: Duration = Duration::from_secs(60);

/// Waits until the broker's metadata shows `topic` with at least
/// `partitions` partitions, each with a leader. The controller answers a
/// create call once it has recorded the topic; the broker serves it a
/// little later (seconds on a broker that has just started), and a client
/// asking in between is told the topic does not exist.
fn wait_until_served(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    partitions: usize,
) -> Result<(), Fault> {
    let deadline = std::time::Instant::now() + SERVED_WITHIN;
    loop {
        let served = match admin
            .inner()
            .fetch_metadata(Some(topic), Duration::from_secs(5))
        {
            Ok(metadata) => metadata.topics().iter().any(|t| {
                t.name() == topic
                    && t.error().is_none()
                    && t.partitions().len() >= partitions
                    && t.partitions()
                        .iter()
                        .all(|p| p.error().is_none() && p.leader() >= 0)
            }),
            Err(_) => false,
        };
        if served {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(Fault::fatal(format!(
                "kafka: topic `{topic}` was created but the broker did not serve its {partitions} partitions within {} s",
                SERVED_WITHIN.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Raises `topic`'s partition count to `partitions`.
pub fn add_partitions(config: &KafkaConfig, topic: &str, partitions: usize) -> Result<(), Fault> {
    let admin = admin(config)?;
    let new = NewPartitions::new(topic, partitions);
    let results = block_on(admin.create_partitions([&new], &options()))
        .map_err(|e| fault(&format!("adding partitions to `{topic}`"), &e))?;
    for result in results {
        if let Err((name, code)) = result {
            return Err(Fault::fatal(format!(
                "kafka: adding partitions to `{name}`: {code}"
            )));
        }
    }
    wait_until_served(&admin, topic, partitions)
}

/// Deletes `topics` (a topic that does not exist is an error).
pub fn delete_topics(config: &KafkaConfig, topics: &[&str]) -> Result<(), Fault> {
    let admin = admin(config)?;
    let results = block_on(admin.delete_topics(topics, &options()))
        .map_err(|e| fault(&format!("deleting topics {topics:?}"), &e))?;
    for result in results {
        if let Err((name, code)) = result {
            return Err(Fault::fatal(format!(
                "kafka: deleting topic `{name}`: {code}"
            )));
        }
    }
    Ok(())
}

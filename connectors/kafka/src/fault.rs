//! librdkafka's errors as weir [`Fault`]s: whether trying again may help.
//!
//! A broker that is down, a leader that moved or a timed-out request pass:
//! librdkafka reconnects by itself, and the engine retries the call with
//! backoff and shows it in the status line. Everything else (an unknown
//! topic, a refused authentication, an offset that retention deleted) stops
//! the job with the broker's message.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use weir::Fault;

/// Whether `code` is a condition that passes by itself.
pub(crate) fn passes(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::OperationTimedOut
            | C::RequestTimedOut
            | C::NetworkException
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::BrokerNotAvailable
            | C::NotCoordinator
            | C::CoordinatorNotAvailable
            | C::CoordinatorLoadInProgress
            | C::QueueFull
            | C::Resolve
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::UnknownLeaderEpoch
            | C::FencedLeaderEpoch
            | C::OffsetNotAvailable
    )
}

/// `e`, while doing `what`, as a fault.
pub(crate) fn fault(what: &str, e: &KafkaError) -> Fault {
    let message = format!("kafka: {what}: {e}");
    match e.rdkafka_error_code() {
        Some(code) if passes(code) => Fault::transient(message),
        _ => Fault::fatal(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_pass_and_refusals_stop_the_job() {
        let down = KafkaError::MessageConsumption(RDKafkaErrorCode::AllBrokersDown);
        assert!(fault("reading", &down).is_transient());
        let gone = KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition);
        let f = fault("reading", &gone);
        assert!(!f.is_transient());
        assert!(f.to_string().contains("reading"), "{f}");
    }
}

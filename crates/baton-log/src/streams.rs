//! The two streams, created if missing and checked if present.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::{subject, LogError};

/// How the streams are created.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// JetStream replicas (1 on a single server, 3 on a cluster).
    pub replicas: usize,
    /// JetStream's message-id de-duplication window. Idempotency beyond it
    /// comes from the hand-off's own history.
    pub duplicate_window: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
        }
    }
}

fn config(name: &str, subject: &str, settings: &StreamSettings) -> stream::Config {
    stream::Config {
        name: name.to_owned(),
        subjects: vec![subject.to_owned()],
        storage: stream::StorageType::File,
        num_replicas: settings.replicas,
        duplicate_window: settings.duplicate_window,
        // Events are the record: nothing ages out, nothing is discarded.
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::New,
        allow_direct: true,
        ..Default::default()
    }
}

/// Creates `BATON_HANDOFFS` and `BATON_SLA` if missing; refuses to run on
/// streams whose subjects are not Baton's.
pub async fn ensure(js: &jetstream::Context, settings: &StreamSettings) -> Result<(), LogError> {
    for (name, subject) in [
        (subject::EVENTS_STREAM, subject::ALL_EVENTS),
        (subject::SLA_STREAM, subject::ALL_SLA),
    ] {
        let mut stream = js
            .get_or_create_stream(config(name, subject, settings))
            .await
            .map_err(|e| LogError::Unavailable(format!("creating stream {name}: {e}")))?;
        let info = stream
            .info()
            .await
            .map_err(|e| LogError::Unavailable(format!("reading stream {name}: {e}")))?;
        if info.config.subjects != [subject] {
            return Err(LogError::Misconfigured {
                stream: name.to_owned(),
                reason: format!(
                    "its subjects are {:?}, expected [{subject:?}]",
                    info.config.subjects
                ),
            });
        }
    }
    Ok(())
}

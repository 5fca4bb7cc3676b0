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

fn config(name: &str, subjects: &[&str], settings: &StreamSettings) -> stream::Config {
    stream::Config {
        name: name.to_owned(),
        subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
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

/// Creates `BATON_HANDOFFS`, `BATON_SLA` and `BATON_DEADLETTER` if missing, adds subjects a
/// newer Baton needs to streams an older one created, and refuses to run
/// on streams with subjects that are not Baton's.
pub async fn ensure(js: &jetstream::Context, settings: &StreamSettings) -> Result<(), LogError> {
    let events: &[&str] = &[subject::ALL_EVENTS, subject::ALL_DISRUPTIONS];
    let sla: &[&str] = &[subject::ALL_SLA];
    let deadletter: &[&str] = &[subject::ALL_DEADLETTER];
    for (name, subjects) in [
        (subject::EVENTS_STREAM, events),
        (subject::SLA_STREAM, sla),
        (subject::DEADLETTER_STREAM, deadletter),
    ] {
        let wanted = config(name, subjects, settings);
        let mut stream = js
            .get_or_create_stream(wanted.clone())
            .await
            .map_err(|e| LogError::Unavailable(format!("creating stream {name}: {e}")))?;
        let info = stream
            .info()
            .await
            .map_err(|e| LogError::Unavailable(format!("reading stream {name}: {e}")))?;
        let have = &info.config.subjects;
        if have.iter().any(|s| !subjects.contains(&s.as_str())) {
            return Err(LogError::Misconfigured {
                stream: name.to_owned(),
                reason: format!("its subjects are {have:?}, expected {subjects:?}"),
            });
        }
        if have.len() != subjects.len() {
            let mut updated = info.config.clone();
            updated.subjects = wanted.subjects;
            js.update_stream(updated)
                .await
                .map_err(|e| LogError::Unavailable(format!("updating stream {name}: {e}")))?;
        }
    }
    Ok(())
}

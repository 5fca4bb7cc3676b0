//! The two streams, created if missing and checked if present.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::{error::Request, subject, LogError};

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
        let mut wanted = config(name, subjects, settings);
        if name == subject::EVENTS_STREAM {
            wanted
                .metadata
                .insert(subject::SCHEME_KEY.to_owned(), subject::SCHEME.to_owned());
        }
        let mut stream = js
            .get_or_create_stream(wanted.clone())
            .await
            .map_err(|e| LogError::unavailable(Request::CreateStream(name.into()), e))?;
        let info = stream
            .info()
            .await
            .cloned()
            .map_err(|e| LogError::unavailable(Request::ReadStream(name.into()), e))?;
        if name == subject::EVENTS_STREAM {
            check_scheme(js, &stream, &info).await?;
        }
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
                .map_err(|e| LogError::unavailable(Request::UpdateStream(name.into()), e))?;
        }
    }
    Ok(())
}

/// Refuses an events stream written under another subject scheme, whose
/// hand-offs this Baton would not find by their ids; marks an older
/// stream that holds no hand-off event yet as written under this one.
async fn check_scheme(
    js: &jetstream::Context,
    stream: &stream::Stream,
    info: &stream::Info,
) -> Result<(), LogError> {
    let name = subject::EVENTS_STREAM;
    match info.config.metadata.get(subject::SCHEME_KEY) {
        Some(scheme) if scheme == subject::SCHEME => return Ok(()),
        Some(scheme) => {
            return Err(LogError::Misconfigured {
                stream: name.to_owned(),
                reason: format!(
                    "it was written under subject scheme {scheme}; this Baton reads scheme {}",
                    subject::SCHEME
                ),
            })
        }
        None => {}
    }
    let holds_handoffs = match stream
        .get_first_raw_message_by_subject(subject::ALL_EVENTS, 1)
        .await
    {
        Ok(_) => true,
        Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => false,
        Err(e) => {
            return Err(LogError::unavailable(
                Request::ReadMessages {
                    stream: name.into(),
                    filter: subject::ALL_EVENTS.into(),
                },
                e,
            ))
        }
    };
    if holds_handoffs {
        return Err(LogError::Misconfigured {
            stream: name.to_owned(),
            reason: format!(
                "it holds hand-off events under subject scheme 1 \
                 (baton.handoff.<kind>.<supplier>.<customer>.<handoff_id>), and this Baton \
                 finds a hand-off's history under scheme {} (baton.handoff.<handoff_id>.>): \
                 replay its events through ingest into a new stream",
                subject::SCHEME
            ),
        });
    }
    let mut marked = info.config.clone();
    marked
        .metadata
        .insert(subject::SCHEME_KEY.to_owned(), subject::SCHEME.to_owned());
    js.update_stream(marked)
        .await
        .map_err(|e| LogError::unavailable(Request::UpdateStream(name.into()), e))?;
    Ok(())
}

//! A hand-off's events as recorded, read from the log of record.
//!
//! The views keep only what a hand-off's clocks read of its events
//! ([`baton_views::compact`]); its story (ids, actors, attributes, who sent
//! each) is read from `BATON_HANDOFFS` by the hand-off's subjects when a
//! timeline is asked for. It must never be taken as what the figures were
//! computed from: only the events the views applied are shown.

use std::time::Duration;

use baton_domain::{event::RecordedEvent, lifecycle::LifecycleError, Catalog, Token};
use baton_log::{EventLog, LogError};
use baton_views::HandoffView;

/// How long a timeline may wait for the log before the answer says it is
/// unavailable.
const LOG_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a timeline could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    #[error("the hand-off's events could not be read from the log: {0}")]
    Log(#[from] LogError),
    #[error("the hand-off's events could not be read from the log: no NATS server answered within {0:?}")]
    NotConnected(Duration),
    /// A retired hand-off's events in the log do not replay (the log
    /// should never hold such events: ingest refuses them).
    #[error("the retired hand-off's events in the log do not replay: {0}")]
    Replay(#[from] LifecycleError),
}

/// The events of `view`'s hand-off the views applied, whole, in stream
/// order: the first as many as the view holds (the log may hold newer ones
/// the views have not reached yet).
pub async fn events(
    client: &async_nats::Client,
    view: &HandoffView,
) -> Result<Vec<RecordedEvent>, TimelineError> {
    let log = checked_log(client).await?;
    let logged = log
        .first_events(
            &view.handoff.handoff_id,
            view.first_sequence,
            view.events.len(),
        )
        .await?;
    Ok(logged.into_iter().map(|l| l.record).collect())
}

/// A retired hand-off as its events in the log tell it (see
/// [`baton_views::compact::retired_view`]), with those events.
pub async fn retired(
    client: &async_nats::Client,
    catalog: &Catalog,
    id: &Token,
) -> Result<(HandoffView, Vec<RecordedEvent>), TimelineError> {
    let events = history(client, id).await?;
    let view = baton_views::compact::retired_view(catalog, id, &events)?;
    Ok((view, events))
}

/// Every event of the hand-off in the log, in stream order.
async fn history(
    client: &async_nats::Client,
    id: &Token,
) -> Result<Vec<RecordedEvent>, TimelineError> {
    let logged = checked_log(client).await?.history(id).await?;
    Ok(logged.into_iter().map(|l| l.record).collect())
}

/// The log on `client`, once its server's version was checked.
async fn checked_log(client: &async_nats::Client) -> Result<EventLog, TimelineError> {
    let log = EventLog::new(client.clone(), LOG_TIMEOUT);
    tokio::time::timeout(LOG_TIMEOUT, log.check_server())
        .await
        .map_err(|_| TimelineError::NotConnected(LOG_TIMEOUT))??;
    Ok(log)
}

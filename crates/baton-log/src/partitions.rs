//! Splitting the event stream by hand-off, for projectors that share the work.
//!
//! JetStream does the splitting; Baton adds nothing of its own:
//! - `BATON_PARTITIONED_<n>` sources `BATON_HANDOFFS`'s hand-off events
//!   through a subject transform that puts a partition number in front,
//!   `baton.handoff.<id>.<kind>.<s>.<c>` →
//!   `baton.part.<p>.<id>.<kind>.<s>.<c>` with
//!   `p = {{partition(n,1)}}`, a hash of the hand-off id (token 1), so every
//!   event of a hand-off lands in one partition, in stream order.
//! - `BATON_PARTITION_<n>_<p>` sources partition `p` of it, plus every
//!   disruption from `BATON_HANDOFFS` (a disruption concerns hand-offs of
//!   every partition). Projector `p` of `n` consumes this stream unfiltered
//!   (a filtered consumer is far slower on nats-server 2.12, see the bench).
//!
//! Neither stream has subjects of its own, so nobody can publish into them:
//! `BATON_HANDOFFS` stays the one record, and the partition streams are
//! derived from it by the server, replicated like it, and can be deleted and
//! re-sourced at any time. Changing `n` creates new streams (and new, empty
//! views): a repartition is a rebuild, never a migration.

use async_nats::jetstream::{self, stream};

use crate::{error::Request, streams::StreamSettings, subject, LogError};

/// Which share of the hand-offs one projector owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// Partitions in all (1: no partitioning).
    pub count: u32,
    /// This projector's partition, `0..count`.
    pub index: u32,
}

/// Why a partition cannot be one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    #[error("partitions must be 1 to {MAX_PARTITIONS}, not {0}")]
    Count(u32),
    #[error("partition must be below partitions ({count}), not {index}")]
    Index { count: u32, index: u32 },
}

/// The most partitions Baton sets up (more would be a NATS account limit
/// of streams long before it is a useful split).
pub const MAX_PARTITIONS: u32 = 64;

impl Partition {
    /// The whole stream, unsplit.
    pub const WHOLE: Partition = Partition { count: 1, index: 0 };

    pub fn new(count: u32, index: u32) -> Result<Partition, PartitionError> {
        if count == 0 || count > MAX_PARTITIONS {
            return Err(PartitionError::Count(count));
        }
        if index >= count {
            return Err(PartitionError::Index { count, index });
        }
        Ok(Partition { count, index })
    }

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// The stream this projector consumes.
    pub fn stream(&self) -> String {
        if self.is_whole() {
            subject::EVENTS_STREAM.to_owned()
        } else {
            format!("BATON_PARTITION_{}_{}", self.count, self.index)
        }
    }

    /// The stream holding every hand-off event tagged with its partition.
    fn tagged_stream(&self) -> String {
        format!("BATON_PARTITIONED_{}", self.count)
    }

    /// The transform's destination for `count` partitions.
    fn transform_destination(&self) -> String {
        format!(
            "baton.part.{{{{partition({},1)}}}}.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}.{{{{wildcard(3)}}}}.{{{{wildcard(4)}}}}",
            self.count
        )
    }

    /// Subjects of this partition in the tagged stream.
    fn tagged_filter(&self) -> String {
        format!("baton.part.{}.>", self.index)
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of {}", self.index, self.count)
    }
}

fn sourced(
    name: String,
    sources: Vec<stream::Source>,
    settings: &StreamSettings,
) -> stream::Config {
    stream::Config {
        name,
        subjects: Vec::new(),
        sources: Some(sources),
        storage: stream::StorageType::File,
        num_replicas: settings.replicas,
        duplicate_window: settings.duplicate_window,
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    }
}

/// Creates the streams `partition` is consumed from, if missing (the base
/// streams first: see [`crate::streams::ensure`]). Several projectors may
/// call this at once: creating a stream with the same configuration twice
/// is a no-op for JetStream.
pub async fn ensure(
    js: &jetstream::Context,
    partition: Partition,
    settings: &StreamSettings,
) -> Result<(), LogError> {
    crate::streams::ensure(js, settings).await?;
    if partition.is_whole() {
        return Ok(());
    }
    let tagged = sourced(
        partition.tagged_stream(),
        vec![stream::Source {
            name: subject::EVENTS_STREAM.to_owned(),
            subject_transforms: vec![stream::SubjectTransform {
                source: format!("{}*.*.*.*", subject::HANDOFF_PREFIX),
                destination: partition.transform_destination(),
            }],
            ..Default::default()
        }],
        settings,
    );
    let own = sourced(
        partition.stream(),
        vec![
            stream::Source {
                name: partition.tagged_stream(),
                filter_subject: Some(partition.tagged_filter()),
                ..Default::default()
            },
            stream::Source {
                name: subject::EVENTS_STREAM.to_owned(),
                filter_subject: Some(subject::ALL_DISRUPTIONS.to_owned()),
                ..Default::default()
            },
        ],
        settings,
    );
    for config in [tagged, own] {
        let name = config.name.clone();
        js.get_or_create_stream(config)
            .await
            .map_err(|e| LogError::unavailable(Request::CreateStream(name), e))?;
    }
    Ok(())
}

/// How far JetStream's copying into `partition`'s stream is behind
/// `BATON_HANDOFFS`: `Some(0)` when everything recorded has been copied,
/// `None` while a source has not reported yet (just created). Always
/// `Some(0)` for the whole stream. A projector that caught up with its
/// partition stream has the whole of its share only when this is `Some(0)`:
/// right after the partition streams are created they fill for a while.
pub async fn sourcing_lag(
    js: &jetstream::Context,
    partition: Partition,
) -> Result<Option<u64>, LogError> {
    if partition.is_whole() {
        return Ok(Some(0));
    }
    let mut lag = 0;
    for name in [partition.tagged_stream(), partition.stream()] {
        let read = || Request::ReadStream(name.clone());
        let mut stream = js
            .get_stream(&name)
            .await
            .map_err(|e| LogError::unavailable(read(), e))?;
        let info = stream
            .info()
            .await
            .map_err(|e| LogError::unavailable(read(), e))?;
        for source in &info.sources {
            if source.active.is_none() {
                return Ok(None);
            }
            lag += source.lag;
        }
    }
    Ok(Some(lag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_checked() {
        assert_eq!(Partition::new(0, 0), Err(PartitionError::Count(0)));
        assert_eq!(
            Partition::new(4, 4),
            Err(PartitionError::Index { count: 4, index: 4 })
        );
        assert_eq!(
            Partition::new(MAX_PARTITIONS + 1, 0),
            Err(PartitionError::Count(MAX_PARTITIONS + 1))
        );
        assert_eq!(Partition::new(4, 3), Ok(Partition { count: 4, index: 3 }));
    }

    #[test]
    fn the_whole_stream_is_the_record_itself() {
        assert_eq!(Partition::WHOLE.stream(), "BATON_HANDOFFS");
        let p = Partition::new(3, 1).expect("valid");
        assert_eq!(p.stream(), "BATON_PARTITION_3_1");
        assert_eq!(p.tagged_filter(), "baton.part.1.>");
        assert_eq!(
            p.transform_destination(),
            "baton.part.{{partition(3,1)}}.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}.{{wildcard(4)}}"
        );
    }
}

//! The views as the wire shows them: view types to `baton.v1` messages.

use baton_domain::{compliance::Tallies, histogram::Histogram, Timestamp, Token};
use baton_proto::{
    convert::{duration_to_proto, event_type_to_proto, priority_to_proto, timestamp_to_proto},
    v1,
};
use baton_views::{BreachRecord, Cause, Correction, DisruptionView, MatrixCell};

/// A breach as listed and announced; `now` measures an open breach's overrun.
pub fn breach_to_proto(record: &BreachRecord, now: Timestamp) -> v1::Breach {
    v1::Breach {
        handoff_id: record.handoff_id.to_string(),
        policy_id: record.policy_id.to_string(),
        supplier: record.supplier.to_string(),
        customer: record.customer.to_string(),
        deadline: Some(timestamp_to_proto(record.deadline)),
        breached_at: Some(timestamp_to_proto(record.deadline)),
        kind: record.kind.to_string(),
        priority: priority_to_proto(record.priority) as i32,
        open: record.stopped_at.is_none(),
        stopped_at: record.stopped_at.map(timestamp_to_proto),
        corrected: false,
        cycle: record.cycle,
        overrun: Some(duration_to_proto(record.overrun(now))),
        escalate_to: record
            .escalate_to
            .as_ref()
            .map(Token::to_string)
            .unwrap_or_default(),
        target: Some(duration_to_proto(record.target)),
        cause: record.cause.as_ref().map(cause_to_proto),
        acknowledged_by: record
            .acknowledged
            .as_ref()
            .map(|a| a.by.clone())
            .unwrap_or_default(),
        acknowledged_at: record
            .acknowledged
            .as_ref()
            .map(|a| timestamp_to_proto(a.at)),
    }
}

pub fn cause_to_proto(cause: &Cause) -> v1::CorrectionCause {
    v1::CorrectionCause {
        event_id: cause.event_id.clone(),
        r#type: event_type_to_proto(cause.event_type) as i32,
        sent_by: cause.sent_by.clone(),
        entry_lag: Some(duration_to_proto(cause.entry_lag)),
        by_supplier: cause.by_supplier,
    }
}

pub fn correction_to_proto(c: &Correction) -> v1::Correction {
    v1::Correction {
        policy_id: c.policy_id.to_string(),
        cycle: c.cycle,
        deadline: Some(timestamp_to_proto(c.deadline)),
        corrected_at: Some(timestamp_to_proto(c.corrected_at)),
        cause: Some(cause_to_proto(&c.cause)),
    }
}

pub fn warning_to_proto(record: &BreachRecord) -> v1::SlaWarning {
    v1::SlaWarning {
        handoff_id: record.handoff_id.to_string(),
        policy_id: record.policy_id.to_string(),
        supplier: record.supplier.to_string(),
        customer: record.customer.to_string(),
        kind: record.kind.to_string(),
        priority: priority_to_proto(record.priority) as i32,
        cycle: record.cycle,
        warned_at: record.warn_at.map(timestamp_to_proto),
        deadline: Some(timestamp_to_proto(record.deadline)),
        target: Some(duration_to_proto(record.target)),
    }
}

pub fn tallies_to_proto(policy: Option<&Token>, tallies: &Tallies) -> v1::Compliance {
    let quantile = |q| tallies.durations.quantile(q).map(duration_to_proto);
    v1::Compliance {
        policy_id: policy.map(Token::to_string).unwrap_or_default(),
        total: tallies.total(),
        met: tallies.met,
        breached: tallies.breached,
        open: tallies.open,
        compliance: tallies.compliance(),
        p50: quantile(0.5),
        p90: quantile(0.9),
        p95: quantile(0.95),
        max: quantile(1.0),
        cancelled: tallies.cancelled,
        reset: tallies.reset,
        rejected: tallies.rejected,
        warned: tallies.warned,
        bucket_start: None,
        buckets: Vec::new(),
        durations: Some(v1::DurationHistogram {
            zeros: tallies.durations.zeros(),
            bucket: tallies
                .durations
                .buckets()
                .iter()
                .map(|(b, _)| u32::from(*b))
                .collect(),
            count: tallies
                .durations
                .buckets()
                .iter()
                .map(|(_, n)| *n)
                .collect(),
        }),
    }
}

/// What is wrong with figures another projector sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadFigures {
    #[error("figures without their durations")]
    NoDurations,
    #[error("{buckets} duration buckets but {counts} counts")]
    Uneven { buckets: usize, counts: usize },
    #[error("duration bucket {0} is out of range")]
    BucketOutOfRange(u32),
    #[error("a bucket without its start")]
    BucketWithoutStart,
}

/// The tallies behind figures another projector sent (the inverse of
/// [`tallies_to_proto`]), or what is wrong with them.
pub fn tallies_from_proto(figures: &v1::Compliance) -> Result<Tallies, BadFigures> {
    let durations = match &figures.durations {
        None if figures.met + figures.breached > 0 => return Err(BadFigures::NoDurations),
        None => Histogram::default(),
        Some(h) if h.bucket.len() != h.count.len() => {
            return Err(BadFigures::Uneven {
                buckets: h.bucket.len(),
                counts: h.count.len(),
            })
        }
        Some(h) => {
            let mut buckets = Vec::with_capacity(h.bucket.len());
            for (bucket, count) in h.bucket.iter().zip(&h.count) {
                let bucket =
                    u16::try_from(*bucket).map_err(|_| BadFigures::BucketOutOfRange(*bucket))?;
                buckets.push((bucket, *count));
            }
            Histogram::from_buckets(h.zeros, buckets)
        }
    };
    Ok(Tallies {
        open: figures.open,
        met: figures.met,
        breached: figures.breached,
        cancelled: figures.cancelled,
        reset: figures.reset,
        rejected: figures.rejected,
        warned: figures.warned,
        durations,
    })
}

pub fn cell_to_proto(supplier: &str, customer: &str, cell: &MatrixCell) -> v1::MatrixCell {
    v1::MatrixCell {
        supplier: supplier.to_owned(),
        customer: customer.to_owned(),
        handoffs: cell.handoffs.handoffs,
        met: cell.clocks.met,
        breached: cell.clocks.breached,
        open: cell.clocks.open,
        compliance: cell.clocks.compliance(),
        rejected: cell.handoffs.rejected,
        disrupted: cell.handoffs.disrupted,
        ratings: cell.handoffs.ratings,
        rating: cell.handoffs.rating().unwrap_or(0.0),
        rating_sum: cell.handoffs.rating_sum,
        late_entry_corrections: cell.handoffs.late_entry_corrections,
    }
}

pub fn disruption_to_proto(view: &DisruptionView, now: Timestamp) -> v1::Disruption {
    let d = &view.disruption;
    v1::Disruption {
        disruption_id: d.disruption_id.to_string(),
        supplier: d.supplier.to_string(),
        kind: d.kind.as_ref().map(Token::to_string).unwrap_or_default(),
        scope: d
            .scope
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        reason: d.reason.clone(),
        started_at: Some(timestamp_to_proto(d.started_at)),
        ended_at: d.ended_at.map(timestamp_to_proto),
        announced_at: d.announced_at.map(timestamp_to_proto),
        active: d.is_active(now),
        affected: view.affected,
        failed_before_announcement: view.failed_before_announcement,
    }
}

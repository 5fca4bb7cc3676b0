//! Text or JSON output, and the JSON shape of Baton's messages (the proto
//! field names, enums as their lower-case short names, times in RFC 3339).

use baton_proto::v1;
use serde_json::{json, Value};

use crate::time;

/// How the report card writes a share kept and a priority, so every
/// command writes them the same.
pub use baton_report::render::{priority, share_kept};

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    pub fn print(&self, text: impl FnOnce() -> String, value: impl FnOnce() -> Value) {
        if self.json {
            line(&value().to_string());
        } else {
            line(&text());
        }
    }
}

/// Writes `text` and a newline to standard output. When the reader has gone
/// (`batonctl tail | head`), there is nobody left to tell anything: exit
/// quietly, as a shell tool does, instead of panicking in `println!`.
pub fn line(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            std::process::exit(1)
        }
        Ok(()) => {}
    }
}

/// `EVENT_TYPE_ON_HOLD` -> `on_hold`.
pub fn short(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_lowercase()
}

pub fn event_type(t: i32) -> String {
    v1::EventType::try_from(t)
        .map(|t| short(t.as_str_name(), "EVENT_TYPE_"))
        .unwrap_or_else(|_| t.to_string())
}

pub fn status(s: i32) -> String {
    v1::HandoffStatus::try_from(s)
        .map(|s| short(s.as_str_name(), "HANDOFF_STATUS_"))
        .unwrap_or_else(|_| s.to_string())
}

pub fn sla_state(s: i32) -> String {
    v1::SlaState::try_from(s)
        .map(|s| short(s.as_str_name(), "SLA_STATE_"))
        .unwrap_or_else(|_| s.to_string())
}

pub fn event_json(e: &v1::HandoffEvent) -> Value {
    json!({
        "event_id": e.event_id,
        "handoff_id": e.handoff_id,
        "type": event_type(e.r#type),
        "occurred_at": time::format(&e.occurred_at),
        "kind": e.kind,
        "supplier": e.supplier,
        "customer": e.customer,
        "priority": priority(e.priority),
        "actor": e.actor,
        "attributes": e.attributes,
        "version": e.version,
        "recorded_at": time::format(&e.recorded_at),
        "entry_lag": time::format_duration(&e.entry_lag),
        "sent_by": e.sent_by,
        "backfill": e.backfill,
    })
}

/// Who withdrew an announced breach, and how late they entered it.
pub fn cause_text(c: &v1::CorrectionCause) -> String {
    let by = if c.sent_by.is_empty() {
        "an unauthenticated caller"
    } else {
        c.sent_by.as_str()
    };
    format!(
        "{} {} entered {} late by {}{}",
        event_type(c.r#type),
        c.event_id,
        time::format_duration(&c.entry_lag),
        by,
        if c.by_supplier {
            " (the supplier's own late entry)"
        } else {
            ""
        }
    )
}

pub fn correction_json(c: &v1::Correction) -> Value {
    json!({
        "policy_id": c.policy_id,
        "cycle": c.cycle,
        "deadline": time::format(&c.deadline),
        "corrected_at": time::format(&c.corrected_at),
        "cause": c.cause.as_ref().map(|cause| json!({
            "event_id": cause.event_id,
            "type": event_type(cause.r#type),
            "sent_by": cause.sent_by,
            "entry_lag": time::format_duration(&cause.entry_lag),
            "by_supplier": cause.by_supplier,
        })),
    })
}

pub fn breach_json(b: &v1::Breach) -> Value {
    json!({
        "handoff_id": b.handoff_id,
        "policy_id": b.policy_id,
        "supplier": b.supplier,
        "customer": b.customer,
        "kind": b.kind,
        "priority": priority(b.priority),
        "deadline": time::format(&b.deadline),
        "breached_at": time::format(&b.breached_at),
        "open": b.open,
        "stopped_at": time::format(&b.stopped_at),
        "corrected": b.corrected,
        "cycle": b.cycle,
        "overrun": time::format_duration(&b.overrun),
        "escalate_to": b.escalate_to,
        "acknowledged_by": b.acknowledged_by,
        "acknowledged_at": time::format(&b.acknowledged_at),
    })
}

pub fn warning_json(w: &v1::SlaWarning) -> Value {
    json!({
        "handoff_id": w.handoff_id,
        "policy_id": w.policy_id,
        "supplier": w.supplier,
        "customer": w.customer,
        "cycle": w.cycle,
        "warned_at": time::format(&w.warned_at),
        "deadline": time::format(&w.deadline),
    })
}

pub fn disruption_json(d: &v1::DisruptionEvent) -> Value {
    let phase = v1::DisruptionPhase::try_from(d.phase)
        .map(|p| p.as_str_name())
        .unwrap_or("DISRUPTION_PHASE_UNSPECIFIED");
    json!({
        "disruption_id": d.disruption_id,
        "phase": phase,
        "supplier": d.supplier,
        "kind": d.kind,
        "scope": d.scope,
        "occurred_at": time::format(&d.occurred_at),
        "reason": d.reason,
        "actor": d.actor,
    })
}

pub fn breach_line(b: &v1::Breach) -> String {
    format!(
        "BREACH {:<20} {:<12} {} -> {}  hand-off {}  deadline {}  late by {}{}",
        b.policy_id,
        b.kind,
        b.supplier,
        b.customer,
        b.handoff_id,
        time::format(&b.deadline),
        time::format_duration(&b.overrun),
        if b.open {
            "  (still open)".to_string()
        } else {
            format!("  stopped {}", time::format(&b.stopped_at))
        }
    )
}

pub fn sla_json(s: &v1::SlaStatus) -> Value {
    json!({
        "policy_id": s.policy_id,
        "state": sla_state(s.state),
        "deadline": time::format(&s.deadline),
        "elapsed": time::format_duration(&s.elapsed),
        "target": time::format_duration(&s.target),
        "started_at": time::format(&s.started_at),
        "stopped_at": time::format(&s.stopped_at),
        "cycle": s.cycle,
        "supplier": s.supplier,
        "warn_at": time::format(&s.warn_at),
        "warned": s.warned,
    })
}

pub fn handoff_json(h: &v1::Handoff) -> Value {
    json!({
        "handoff_id": h.handoff_id,
        "kind": h.kind,
        "supplier": h.supplier,
        "customer": h.customer,
        "priority": priority(h.priority),
        "status": status(h.status),
        "version": h.version,
        "slas": h.slas.iter().map(sla_json).collect::<Vec<_>>(),
        "events": h.events.iter().map(event_json).collect::<Vec<_>>(),
        "corrections": h.corrections.iter().map(correction_json).collect::<Vec<_>>(),
        "catalog_version": h.catalog_version,
    })
}

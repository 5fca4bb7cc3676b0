//! `batonctl append`

use std::{collections::HashMap, io::BufRead};

use anyhow::{anyhow, bail, Context};
use baton_proto::v1;
use serde::Deserialize;
use serde_json::json;

use crate::{output::Output, time};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Hand-off id.
    #[arg(long, required_unless_present = "from_json")]
    handoff: Option<String>,
    /// requested, acknowledged, started, on_hold, resumed, completed, rejected, cancelled, reassigned.
    #[arg(long = "type", required_unless_present = "from_json")]
    event_type: Option<String>,
    /// Idempotency key; default: <handoff>-<type>-<milliseconds now>.
    #[arg(long)]
    event_id: Option<String>,
    /// When it happened: RFC 3339, 'now' or 'now-10m'.
    #[arg(long, default_value = "now")]
    at: String,
    /// Service kind from the catalog (on requested).
    #[arg(long)]
    kind: Option<String>,
    /// Supplier department id: who is asked (on requested, or a handover).
    #[arg(long)]
    supplier: Option<String>,
    /// Customer department id: who asks (on requested).
    #[arg(long)]
    customer: Option<String>,
    /// routine, urgent or stat.
    #[arg(long)]
    priority: Option<String>,
    /// Opaque id of the staff member or system (never a name).
    #[arg(long, default_value = "batonctl")]
    actor: String,
    /// An attribute, key=value (repeatable).
    #[arg(long = "attr", value_parser = parse_attribute)]
    attributes: Vec<(String, String)>,
    /// Append only if the hand-off is at this version.
    #[arg(long)]
    expected_version: Option<u64>,
    /// Read events as JSON lines from this file ('-' for stdin) and append them as batches.
    #[arg(long, conflicts_with_all = ["handoff", "event_type"])]
    from_json: Option<String>,
    /// Load as history: judged by the events' own times without the
    /// promise's late-entry bound, paging nobody (needs the importer role
    /// where ingest authenticates callers).
    #[arg(long)]
    backfill: bool,
}

fn parse_attribute(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not key=value"))
}

/// One event as JSON: the proto field names; enums by short name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonEvent {
    handoff_id: String,
    #[serde(rename = "type")]
    event_type: String,
    event_id: Option<String>,
    occurred_at: Option<String>,
    kind: Option<String>,
    supplier: Option<String>,
    customer: Option<String>,
    priority: Option<String>,
    actor: Option<String>,
    #[serde(default)]
    attributes: HashMap<String, String>,
    expected_version: Option<u64>,
}

fn enum_value(
    name: &str,
    prefix: &str,
    lookup: impl Fn(&str) -> Option<i32>,
    what: &str,
) -> anyhow::Result<i32> {
    let full = format!("{prefix}{}", name.to_uppercase());
    lookup(&full).ok_or_else(|| anyhow!("{name:?} is not a {what}"))
}

fn build(e: JsonEvent) -> anyhow::Result<v1::AppendRequest> {
    let event_type = enum_value(
        &e.event_type,
        "EVENT_TYPE_",
        |n| v1::EventType::from_str_name(n).map(|t| t as i32),
        "event type",
    )?;
    let priority = match &e.priority {
        Some(p) => enum_value(
            p,
            "PRIORITY_",
            |n| v1::Priority::from_str_name(n).map(|p| p as i32),
            "priority",
        )?,
        None => 0,
    };
    let occurred_at = time::parse(e.occurred_at.as_deref().unwrap_or("now"))?;
    let event_id = e.event_id.unwrap_or_else(|| {
        // The time split by letters: 13 digits in a row would be refused
        // as patient data.
        let now = baton_domain::privacy::id_number(time::now_millis().unsigned_abs());
        format!("{}-{}-{now}", e.handoff_id, e.event_type)
    });
    Ok(v1::AppendRequest {
        event: Some(v1::HandoffEvent {
            event_id,
            handoff_id: e.handoff_id,
            r#type: event_type,
            occurred_at: Some(occurred_at),
            kind: e.kind.unwrap_or_default(),
            supplier: e.supplier.unwrap_or_default(),
            customer: e.customer.unwrap_or_default(),
            priority,
            actor: e.actor.unwrap_or_else(|| "batonctl".into()),
            attributes: e.attributes,
            ..Default::default()
        }),
        expected_version: e.expected_version,
        backfill: false,
    })
}

pub async fn run(url: &str, args: Args, out: Output) -> anyhow::Result<()> {
    let mut client = super::ingest(url).await?;
    if let Some(path) = &args.from_json {
        return append_json_lines(&mut client, path, args.backfill, out).await;
    }
    let (Some(handoff_id), Some(event_type)) = (args.handoff, args.event_type) else {
        bail!("--handoff and --type are required");
    };
    let mut request = build(JsonEvent {
        handoff_id,
        event_type,
        event_id: args.event_id,
        occurred_at: Some(args.at),
        kind: args.kind,
        supplier: args.supplier,
        customer: args.customer,
        priority: args.priority,
        actor: Some(args.actor),
        attributes: args.attributes.into_iter().collect(),
        expected_version: args.expected_version,
    })?;
    request.backfill = args.backfill;
    let r = client
        .append(request)
        .await
        .map_err(super::status)?
        .into_inner();
    out.print(
        || format!("appended: version {} at stream sequence {}{}", r.version, r.stream_sequence, if r.duplicate { " (duplicate: already appended)" } else { "" }),
        || json!({"version": r.version, "stream_sequence": r.stream_sequence, "duplicate": r.duplicate}),
    );
    Ok(())
}

async fn append_json_lines(
    client: &mut baton_proto::v1::ingest_client::IngestClient<tonic::transport::Channel>,
    path: &str,
    backfill: bool,
    out: Output,
) -> anyhow::Result<()> {
    let reader: Box<dyn BufRead> = if path == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {path}"))?,
        ))
    };
    let mut batch = Vec::new();
    let (mut ok, mut failed) = (0u64, 0u64);
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let event: JsonEvent =
            serde_json::from_str(&line).with_context(|| format!("line {}", n + 1))?;
        let mut request = build(event).with_context(|| format!("line {}", n + 1))?;
        request.backfill = backfill;
        batch.push(request);
        if batch.len() == 500 {
            let (o, f) = send(client, std::mem::take(&mut batch), out).await?;
            ok += o;
            failed += f;
        }
    }
    if !batch.is_empty() {
        let (o, f) = send(client, batch, out).await?;
        ok += o;
        failed += f;
    }
    eprintln!("{ok} appended, {failed} refused");
    if failed > 0 {
        bail!("{failed} events were refused");
    }
    Ok(())
}

async fn send(
    client: &mut baton_proto::v1::ingest_client::IngestClient<tonic::transport::Channel>,
    requests: Vec<v1::AppendRequest>,
    out: Output,
) -> anyhow::Result<(u64, u64)> {
    let ids: Vec<String> = requests
        .iter()
        .map(|r| {
            r.event
                .as_ref()
                .map(|e| e.event_id.clone())
                .unwrap_or_default()
        })
        .collect();
    let results = client
        .append_batch(v1::AppendBatchRequest { requests })
        .await
        .map_err(super::status)?
        .into_inner()
        .results;
    let (mut ok, mut failed) = (0, 0);
    for (id, result) in ids.iter().zip(results) {
        match result.outcome {
            Some(v1::append_result::Outcome::Ok(_)) => ok += 1,
            Some(v1::append_result::Outcome::Error(e)) => {
                failed += 1;
                let code = tonic::Code::from(e.code);
                out.print(
                    || format!("{id}: {code:?}: {}", e.message),
                    || json!({"event_id": id, "code": format!("{code:?}"), "message": e.message}),
                );
            }
            None => failed += 1,
        }
    }
    Ok((ok, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The event id made when none is given carries the time, and passes
    /// ingest's patient-data screen (13 digits in a row would not).
    #[test]
    fn a_made_event_id_passes_the_patient_data_screen() {
        let event: JsonEvent =
            serde_json::from_str(r#"{"handoff_id": "r-121", "type": "acknowledged"}"#)
                .expect("json");
        let request = build(event).expect("built");
        let id = request.event.map(|e| e.event_id).unwrap_or_default();
        assert!(id.starts_with("r-121-acknowledged-"), "{id}");
        assert_eq!(baton_domain::privacy::screen(&id), None, "{id}");
    }
}

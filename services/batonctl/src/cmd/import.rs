//! `batonctl import`: backfills an event log (XES or CSV) into Baton as
//! hand-offs, by a mapping file ([`crate::mapping`]), through the ingest's
//! AppendBatch. Event ids are derived from the hand-off ids, so importing
//! the same log twice adds nothing (the second run answers duplicates).
//! Breaches older than the projector's announce horizon are recorded, not
//! announced: an import pages nobody.

use std::{
    io::{BufRead, BufReader, IsTerminal, Write},
    path::{Path, PathBuf},
};

use anyhow::Context;
use baton_proto::v1::{self, ingest_client::IngestClient};
use tonic::transport::Channel;

use crate::{
    eventlog,
    mapping::{FoundHandoff, Mapping},
    time,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The log: a .xes or .csv file, or '-' for standard input
    /// (e.g. `zcat log.xes.gz | batonctl import --format xes -`).
    file: String,
    /// xes or csv; default: from the file name.
    #[arg(long)]
    format: Option<Format>,
    /// The mapping from the log's activities to hand-offs (JSON).
    #[arg(
        long,
        env = "BATON_IMPORT_MAPPING",
        default_value = "deploy/import/sepsis.json"
    )]
    mapping: PathBuf,
    /// Events per AppendBatch (at most 1000).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=1000))]
    batch: u64,
    /// Read and map the log, print what would be imported, send nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Xes,
    Csv,
}

pub async fn run(ingest_url: &str, args: Args) -> anyhow::Result<()> {
    let mapping = read_mapping(&args.mapping)?;
    let events = read_log(&args, &mapping)?;
    if !mapping.description.is_empty() {
        eprintln!("mapping: {}", mapping.description);
    }
    let found = mapping.find(&events);
    report_found(&args.file, &mapping, &events, &found);
    let requests = to_requests(&mapping, &found);
    if args.dry_run {
        eprintln!("dry run: {} events not sent", requests.len());
        return Ok(());
    }

    let mut ingest = super::ingest(ingest_url).await?;
    let Outcomes {
        ok,
        duplicate,
        refused,
    } = send(&mut ingest, &requests, args.batch as usize).await?;
    eprintln!("imported: {ok} events appended, {duplicate} already there, {refused} refused");
    anyhow::ensure!(refused == 0, "{refused} events were refused");
    Ok(())
}

fn read_mapping(path: &Path) -> anyhow::Result<Mapping> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the mapping {}", path.display()))?;
    Mapping::from_json(&text).with_context(|| format!("mapping {}", path.display()))
}

/// Reads the log named by `args.file`, in the format asked for or else the
/// one its name says.
fn read_log(args: &Args, mapping: &Mapping) -> anyhow::Result<Vec<eventlog::LogEvent>> {
    let format = match args.format {
        Some(f) => f,
        None if args.file.ends_with(".csv") => Format::Csv,
        None if args.file.ends_with(".xes") => Format::Xes,
        None => anyhow::bail!("say --format xes or --format csv for {:?}", args.file),
    };
    let input: Box<dyn BufRead> = if args.file == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file))?;
        Box::new(BufReader::new(file))
    };
    match format {
        Format::Xes => eventlog::read_xes(input),
        Format::Csv => {
            let columns = mapping
                .csv
                .as_ref()
                .context("the mapping has no \"csv\" columns for a CSV log")?;
            eventlog::read_csv(input, columns)
        }
    }
    .with_context(|| format!("reading {}", args.file))
}

/// What the log holds and which hand-offs the mapping found in it, rule by
/// rule, on stderr.
fn report_found(
    file: &str,
    mapping: &Mapping,
    events: &[eventlog::LogEvent],
    found: &[FoundHandoff],
) {
    let cases = events
        .iter()
        .map(|e| e.case.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len();
    eprintln!(
        "{}: {} events in {cases} cases; {} hand-offs found",
        file,
        events.len(),
        found.len()
    );
    for (i, rule) in mapping.handoffs.iter().enumerate() {
        let of_rule: Vec<&FoundHandoff> = found.iter().filter(|f| f.rule == i).collect();
        let completed = of_rule.iter().filter(|f| f.completed_ms.is_some()).count();
        eprintln!(
            "  {:<14} {} -> {} ({}): {} hand-offs, {} completed",
            rule.name,
            rule.requested_by,
            rule.completed_by.join(" | "),
            rule.kind,
            of_rule.len(),
            completed
        );
    }
}

/// How ingest answered the events sent.
#[derive(Debug, Default)]
struct Outcomes {
    ok: u64,
    duplicate: u64,
    refused: u64,
}

/// Sends the requests in AppendBatches of `batch`, reporting progress; the
/// first few refusals are printed with their reasons.
async fn send(
    ingest: &mut IngestClient<Channel>,
    requests: &[v1::AppendRequest],
    batch: usize,
) -> anyhow::Result<Outcomes> {
    let mut progress = Progress::new(requests.len());
    let mut outcomes = Outcomes::default();
    for chunk in requests.chunks(batch) {
        let response = ingest
            .append_batch(v1::AppendBatchRequest {
                requests: chunk.to_vec(),
            })
            .await
            .map_err(super::status)
            .context("AppendBatch")?
            .into_inner();
        for (request, result) in chunk.iter().zip(response.results) {
            outcomes.count(request, result);
        }
        progress.advance(chunk.len());
    }
    progress.finish();
    Ok(outcomes)
}

impl Outcomes {
    fn count(&mut self, request: &v1::AppendRequest, result: v1::AppendResult) {
        match result.outcome {
            Some(v1::append_result::Outcome::Ok(r)) if r.duplicate => self.duplicate += 1,
            Some(v1::append_result::Outcome::Ok(_)) => self.ok += 1,
            Some(v1::append_result::Outcome::Error(e)) => {
                self.refused += 1;
                if self.refused <= 10 {
                    let id = request.event.as_ref().map(|e| e.event_id.as_str());
                    eprintln!("\nrefused {}: {}", id.unwrap_or("?"), e.message);
                }
            }
            None => self.refused += 1,
        }
    }
}

/// REQUESTED and (when found) COMPLETED for each hand-off, in order.
fn to_requests(mapping: &Mapping, found: &[FoundHandoff]) -> Vec<v1::AppendRequest> {
    let mut out = Vec::with_capacity(found.len() * 2);
    for handoff in found {
        let rule = &mapping.handoffs[handoff.rule];
        let priority = match rule.priority.as_str() {
            "stat" => v1::Priority::Stat,
            "urgent" => v1::Priority::Urgent,
            _ => v1::Priority::Routine,
        };
        out.push(v1::AppendRequest {
            event: Some(v1::HandoffEvent {
                event_id: format!("{}-requested", handoff.handoff_id),
                handoff_id: handoff.handoff_id.clone(),
                r#type: v1::EventType::Requested as i32,
                occurred_at: Some(time::from_millis(handoff.requested_ms)),
                kind: rule.kind.clone(),
                supplier: rule.supplier.clone(),
                customer: rule.customer.clone(),
                priority: priority as i32,
                actor: mapping.actor.clone(),
                attributes: rule.attributes.clone().into_iter().collect(),
                ..Default::default()
            }),
            expected_version: None,
            // Last month's log: judged by its own times, paging nobody.
            backfill: true,
        });
        if let Some(completed) = handoff.completed_ms {
            out.push(v1::AppendRequest {
                event: Some(v1::HandoffEvent {
                    event_id: format!("{}-completed", handoff.handoff_id),
                    handoff_id: handoff.handoff_id.clone(),
                    r#type: v1::EventType::Completed as i32,
                    occurred_at: Some(time::from_millis(completed)),
                    actor: mapping.actor.clone(),
                    ..Default::default()
                }),
                expected_version: None,
                backfill: true,
            });
        }
    }
    out
}

/// A one-line progress report on stderr, redrawn in place on a terminal.
#[derive(Debug)]
struct Progress {
    total: usize,
    done: usize,
    started: std::time::Instant,
    tty: bool,
    last_percent: usize,
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress {
            total,
            done: 0,
            started: std::time::Instant::now(),
            tty: std::io::stderr().is_terminal(),
            last_percent: 0,
        }
    }

    fn advance(&mut self, n: usize) {
        self.done += n;
        let percent = self.done * 100 / self.total.max(1);
        if !self.tty && percent / 10 == self.last_percent / 10 && self.done < self.total {
            return;
        }
        self.last_percent = percent;
        let rate = self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        let line = format!(
            "{:>3}% {}/{} events, {rate:.0}/s",
            percent, self.done, self.total
        );
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(err, "\r{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}

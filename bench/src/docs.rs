//! The performance page's figures, generated from the recorded runs: the
//! last full run verbatim, each figure's range over every full run, and
//! each target judged against every run. The page holds these between
//! `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` markers;
//! `baton-bench docs` rewrites them and `--check` (and a test) fails when
//! the page says something the runs do not. It never invents a figure: a
//! figure no run measured is left out, not filled in.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::{
    record,
    stats::{format_value, Report},
};

/// Where the runs are and which page quotes them.
#[derive(Debug, Clone, clap::Args)]
pub struct DocsArgs {
    /// The recorded runs (see --record).
    #[arg(long, env = "BATON_BENCH_RUNS", default_value = "bench/runs")]
    runs: PathBuf,

    /// The page whose generated blocks are rewritten.
    #[arg(long, env = "BATON_BENCH_DOC", default_value = "docs/performance.md")]
    doc: PathBuf,

    /// Only compare: fail, naming the block, if the page differs.
    #[arg(long)]
    check: bool,
}

/// `baton-bench docs`.
pub fn run(args: &DocsArgs) -> anyhow::Result<()> {
    let runs = record::load(&in_repository(&args.runs))?;
    let doc = in_repository(&args.doc);
    let page =
        std::fs::read_to_string(&doc).with_context(|| format!("reading {}", doc.display()))?;
    let generated = regenerate(&page, &runs)?;
    if generated == page {
        eprintln!("baton-bench: {} matches the recorded runs", doc.display());
        return Ok(());
    }
    if args.check {
        anyhow::bail!(
            "{} differs from what the recorded runs give: run `cargo run -p baton-bench -- docs`",
            doc.display()
        );
    }
    std::fs::write(&doc, generated).with_context(|| format!("writing {}", doc.display()))?;
    eprintln!(
        "baton-bench: rewrote the generated blocks of {}",
        doc.display()
    );
    Ok(())
}

/// `path` as given if it exists, else relative to the repository root.
fn in_repository(path: &Path) -> PathBuf {
    if path.exists() || path.is_absolute() {
        return path.to_owned();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// `page` with every generated block rewritten from `runs`.
pub fn regenerate(page: &str, runs: &[Report]) -> anyhow::Result<String> {
    let full: Vec<&Report> = runs.iter().filter(|r| record::is_full(r)).collect();
    let last = full
        .last()
        .context("no full run recorded (see `baton-bench --help`, --record)")?;
    let mut page = page.to_owned();
    for (name, block) in [
        ("last-run", record::as_markdown(last)),
        ("ranges", ranges(&full)),
        ("targets", targets(&full)),
    ] {
        page = replace_block(&page, name, &block)?;
    }
    Ok(page)
}

/// `page` with the text between the markers of block `name` replaced.
fn replace_block(page: &str, name: &str, block: &str) -> anyhow::Result<String> {
    let start = format!("<!-- generated:{name} -->\n");
    let end = format!("<!-- /generated:{name} -->");
    let from = page
        .find(&start)
        .with_context(|| format!("the page has no `{}` marker", start.trim()))?
        + start.len();
    let to = page[from..]
        .find(&end)
        .with_context(|| format!("the page has no `{end}` marker"))?
        + from;
    Ok(format!("{}{block}\n{}", &page[..from], &page[to..]))
}

/// Each figure of the last run, with the lowest and highest every full run gave.
fn ranges(full: &[&Report]) -> String {
    let Some(last) = full.last() else {
        return String::new();
    };
    let first_date = full.first().map(|r| r.date.as_str()).unwrap_or_default();
    let mut out = format!(
        "Over {} full runs recorded in `bench/runs/`, from {} to {}.\n\n\
         | # | figure | last run | lowest | highest | unit |\n|---|---|---:|---:|---:|---|\n",
        full.len(),
        first_date,
        last.date
    );
    for row in &last.rows {
        let values: Vec<f64> = full.iter().filter_map(|r| r.value(&row.name)).collect();
        let lowest = values.iter().copied().fold(f64::INFINITY, f64::min);
        let highest = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            row.section,
            row.name,
            format_value(row.value),
            format_value(lowest),
            format_value(highest),
            row.unit
        ));
    }
    out
}

/// A target Baton set itself, on one figure of the report.
struct Target {
    /// The report row it judges.
    figure: &'static str,
    /// The target as a reader says it.
    wording: &'static str,
    /// Whether a value meets it.
    met: fn(f64) -> bool,
}

const TARGETS: &[Target] = &[
    Target {
        figure: "unary Append alone / bare tonic handler (1b)",
        wording: "unary Append, ingest alone, >= 80% of the bare tonic handler (1b)",
        met: |v| v >= 80.0,
    },
    Target {
        figure: "unary Append until applied CPU / limit pipeline CPU",
        wording: "unary Append end to end (until applied): CPU an event <= 1.2 x the limit pipeline's ((1b) + (1c) + raw sled minimum)",
        met: |v| v <= 1.2,
    },
    Target {
        figure: "unary Append at half of (1b) p99",
        wording: "unary Append p99 < 10 ms, paced at half of (1b)",
        met: |v| v < 10.0,
    },
    Target {
        figure: "AppendBatch alone / raw publish with ids (1)",
        wording: "AppendBatch, ingest alone, >= 50% of raw publish with ids (1)",
        met: |v| v >= 50.0,
    },
    Target {
        figure: "AppendBatch until applied CPU / its limit",
        wording: "AppendBatch end to end (until applied): CPU an event <= 1.3 x raw publish with ids + (1c) + raw sled minimum",
        met: |v| v <= 1.3,
    },
    Target {
        figure: "projection CPU an event, batches of 100 / batches of 5000",
        wording: "projection: CPU an event in live batches of 100 <= 1.3 x in rebuild batches of 5,000",
        met: |v| v <= 1.3,
    },
    Target {
        figure: "rebuild / raw consumer (1c)",
        wording: "rebuild from an empty data dir >= 50% of a raw consumer (1c)",
        met: |v| v >= 50.0,
    },
    Target {
        figure: "sled bytes an event / event payload at 1000000 hand-offs",
        wording: "sled bytes an event <= 3 x the event payload at 10^6 hand-offs",
        met: |v| v <= 3.0,
    },
    Target {
        figure: "end-to-end unary, sync always / default",
        wording: "sync always: unary Append end to end >= 50% of the default mode's",
        met: |v| v >= 50.0,
    },
    Target {
        figure: "end-to-end AppendBatch, sync always / default",
        wording: "sync always: AppendBatch end to end >= 50% of the default mode's",
        met: |v| v >= 50.0,
    },
    Target {
        figure: "GetCompliance (month) p99 at 1000000 hand-offs",
        wording: "GetCompliance p99 < 5 ms at 10^6 hand-offs",
        met: |v| v < 5.0,
    },
    Target {
        figure: "GetHandoff p99 at 1000000 hand-offs",
        wording: "GetHandoff p99 < 5 ms at 10^6 hand-offs, its timeline read from the log",
        met: |v| v < 5.0,
    },
    Target {
        figure: "breach delay p99 with 100000 hand-offs open",
        wording: "breach delay p99 < 1 s with 10^5 open hand-offs",
        met: |v| v < 1000.0,
    },
    Target {
        figure: "breach to webhook p99 with 100000 hand-offs open",
        wording: "notify: breach to webhook p99 < 1 s with 10^5 open hand-offs",
        met: |v| v < 1000.0,
    },
    Target {
        figure: "projector memory per open clock at 100000 hand-offs, settled",
        wording: "< 1 KiB of projector memory per open clock at 10^5, settled",
        met: |v| v < 1024.0,
    },
    Target {
        figure: "projector memory per open clock at 1000000 hand-offs, settled",
        wording: "< 1 KiB of projector memory per open clock at 10^6, settled",
        met: |v| v < 1024.0,
    },
    Target {
        figure: "2 projectors / one projector's rebuild (3)",
        wording: "2 partitioned projectors rebuild faster than one (> 100%)",
        met: |v| v > 100.0,
    },
    Target {
        figure: "3 projectors / one projector's rebuild (3)",
        wording: "3 partitioned projectors rebuild faster than one (> 100%)",
        met: |v| v > 100.0,
    },
];

/// Each target judged on the last full run and counted over all of them;
/// a target whose figure a run lacks (a run older than the figure) is
/// "not measured" there, never judged.
fn targets(full: &[&Report]) -> String {
    let Some(last) = full.last() else {
        return String::new();
    };
    let mut out = String::from("| target | last run | | met in |\n|---|---:|---|---|\n");
    for target in TARGETS {
        let measured: Vec<f64> = full.iter().filter_map(|r| r.value(target.figure)).collect();
        let met = measured.iter().filter(|v| (target.met)(**v)).count();
        let judged = match last.value(target.figure) {
            Some(value) => {
                let unit = last
                    .rows
                    .iter()
                    .find(|r| r.name == target.figure)
                    .map(|r| r.unit.as_str())
                    .unwrap_or_default();
                let verdict = if (target.met)(value) { "met" } else { "missed" };
                format!("{} {unit} | {verdict}", format_value(value))
            }
            None => "not measured | ".to_owned(),
        };
        out.push_str(&format!(
            "| {} | {judged} | {met} of {} full runs |\n",
            target.wording,
            measured.len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Row;

    fn full_run(date: &str, p99: f64, rebuild: f64) -> Report {
        let row = |name: &str, value: f64, unit: &str| Row {
            section: "x".into(),
            name: name.into(),
            value,
            unit: unit.into(),
            note: String::new(),
        };
        Report {
            date: date.to_owned(),
            command: "--scale 100000,1000000 --scale-out 2,3".to_owned(),
            settings: serde_json::json!({
                "scale": [100_000, 1_000_000],
                "scale_out": [2, 3],
                "skip_scale": false,
                "skip_sync_always": false,
            }),
            rows: vec![
                row("unary Append at half of (1b) p99", p99, "ms"),
                row("rebuild / raw consumer (1c)", rebuild, "%"),
            ],
            ..Report::default()
        }
    }

    const PAGE: &str = "intro\n<!-- generated:last-run -->\nold\n<!-- /generated:last-run -->\n\
        middle\n<!-- generated:ranges -->\n<!-- /generated:ranges -->\n\
        <!-- generated:targets -->\nsays met\n<!-- /generated:targets -->\nend\n";

    #[test]
    fn blocks_are_replaced_and_the_rest_kept() {
        let runs = [
            full_run("2026-12-01T00:00:00.000Z", 5.6, 79.3),
            full_run("2026-12-02T00:00:00.000Z", 116.0, 57.6),
        ];
        let page = regenerate(PAGE, &runs).expect("generated");
        assert!(page.starts_with("intro\n<!-- generated:last-run -->\nRun of 2026-12-02"));
        assert!(
            page.contains("\nmiddle\n") && page.ends_with("end\n"),
            "{page}"
        );
        assert!(
            !page.contains("old") && !page.contains("says met"),
            "{page}"
        );
        assert!(
            page.contains("| x | unary Append at half of (1b) p99 | 116 | 5.60 | 116 | ms |"),
            "{page}"
        );
        // The last run misses the p99 target; one run of two met it.
        assert!(
            page.contains(
                "| unary Append p99 < 10 ms, paced at half of (1b) | 116 ms | missed | 1 of 2 full runs |"
            ),
            "{page}"
        );
        assert!(
            page.contains("| 57.6 % | met | 2 of 2 full runs |"),
            "{page}"
        );
        // Regenerating what was generated changes nothing.
        assert_eq!(regenerate(&page, &runs).expect("generated"), page);
    }

    #[test]
    fn a_target_the_last_run_lacks_is_not_measured_and_counted_where_measured() {
        let mut older = full_run("2026-12-01T00:00:00.000Z", 5.6, 79.3);
        older.rows.push(Row {
            section: "2s".into(),
            name: "end-to-end unary, sync always / default".into(),
            value: 60.0,
            unit: "%".into(),
            note: String::new(),
        });
        let runs = [older, full_run("2026-12-02T00:00:00.000Z", 5.6, 79.3)];
        let page = regenerate(PAGE, &runs).expect("generated");
        // Measured in the older run only: not judged on the last one.
        assert!(
            page.contains(
                "| sync always: unary Append end to end >= 50% of the default mode's | not measured |  | 1 of 1 full runs |"
            ),
            "{page}"
        );
        // Measured in neither.
        assert!(
            page.contains(
                "| sled bytes an event <= 3 x the event payload at 10^6 hand-offs | not measured |  | 0 of 0 full runs |"
            ),
            "{page}"
        );
    }

    #[test]
    fn a_page_without_its_markers_or_runs_without_a_full_one_is_an_error() {
        let runs = [full_run("2026-12-01T00:00:00.000Z", 5.6, 79.3)];
        let error = regenerate("no markers\n", &runs).expect_err("no markers");
        assert!(error.to_string().contains("generated:last-run"), "{error}");
        let mut partial = full_run("2026-12-01T00:00:00.000Z", 5.6, 79.3);
        partial.settings["skip_sync_always"] = serde_json::json!(true);
        assert!(regenerate(PAGE, &[partial]).is_err());
    }

    /// The committed performance page says exactly what the committed runs
    /// give: no figure typed by hand, none left behind by a newer run.
    #[test]
    fn the_performance_page_quotes_the_recorded_runs() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let runs = record::load(&root.join("bench/runs")).expect("bench/runs");
        let page =
            std::fs::read_to_string(root.join("docs/performance.md")).expect("docs/performance.md");
        let generated = regenerate(&page, &runs).expect("generated");
        assert!(
            generated == page,
            "docs/performance.md differs from bench/runs: run `cargo run -p baton-bench -- docs`"
        );
    }
}

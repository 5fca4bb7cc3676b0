//! Recorded runs: a run worth keeping is written to a directory
//! (`bench/runs/` in the repository) as JSON, the figures, and Markdown, the
//! table exactly as printed, so that every figure the docs give can be
//! traced to a run that produced it. Nothing here measures; it never
//! rewrites or drops a recorded run.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::stats::Report;

/// Writes `report` into `dir` as `<date>.json` and `<date>.md`; returns both paths.
pub fn write(dir: &Path, report: &Report) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let stem = file_stem(&report.date);
    let json = dir.join(format!("{stem}.json"));
    let markdown = dir.join(format!("{stem}.md"));
    std::fs::write(&json, serde_json::to_string_pretty(report)? + "\n")
        .with_context(|| format!("writing {}", json.display()))?;
    std::fs::write(&markdown, as_markdown(report))
        .with_context(|| format!("writing {}", markdown.display()))?;
    Ok((json, markdown))
}

/// The run as a Markdown page: where it came from, then its table.
pub fn as_markdown(report: &Report) -> String {
    format!("{}\n\n{}", report.provenance(), report.table())
}

/// Every run recorded in `dir` (its `.json` files), oldest first.
pub fn load(dir: &Path) -> anyhow::Result<Vec<Report>> {
    let mut runs = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let run: Report = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a recorded run", path.display()))?;
            runs.push(run);
        }
    }
    runs.sort_by(|a, b| a.date.cmp(&b.date));
    Ok(runs)
}

/// Whether `run` measured every section at the documented size: the
/// 10^6-hand-off scale section, scale-out, and `sync_interval: always`.
pub fn is_full(run: &Report) -> bool {
    let settings = &run.settings;
    let scale_reaches_a_million = settings["scale"]
        .as_array()
        .is_some_and(|s| s.iter().any(|n| n.as_u64() >= Some(1_000_000)));
    let scales_out = settings["scale_out"]
        .as_array()
        .is_some_and(|s| !s.is_empty());
    scale_reaches_a_million
        && scales_out
        && settings["skip_scale"] == false
        && settings["skip_sync_always"] == false
}

/// A file name from an RFC 3339 date: `2026-12-05T09:30:00.000Z` gives
/// `2026-12-05T09-30-00Z`, which sorts as the date does.
fn file_stem(date: &str) -> String {
    let seconds: String = date.chars().take(19).collect();
    format!("{}Z", seconds.replace(':', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Row;

    fn run(date: &str, scale: &[u64], skip_sync_always: bool) -> Report {
        Report {
            date: date.to_owned(),
            command: "--scale 100000,1000000".to_owned(),
            settings: serde_json::json!({
                "scale": scale,
                "scale_out": [2, 3],
                "skip_scale": false,
                "skip_sync_always": skip_sync_always,
            }),
            rows: vec![Row {
                section: "5".into(),
                name: "breach delay p99".into(),
                value: 4.0,
                unit: "ms".into(),
                note: String::new(),
            }],
            ..Report::default()
        }
    }

    #[test]
    fn runs_are_written_and_read_back_oldest_first() {
        let dir = tempfile::tempdir().expect("temp dir");
        let later = run("2026-12-05T10:00:00.000Z", &[1_000_000], false);
        let earlier = run("2026-12-05T09:00:00.000Z", &[1_000_000], false);
        let (json, markdown) = write(dir.path(), &later).expect("written");
        write(dir.path(), &earlier).expect("written");
        assert_eq!(
            json.file_name().and_then(|n| n.to_str()),
            Some("2026-12-05T10-00-00Z.json")
        );
        let page = std::fs::read_to_string(markdown).expect("markdown");
        assert!(
            page.starts_with("Run of 2026-12-05T10:00:00.000Z"),
            "{page}"
        );
        assert!(
            page.contains("| 5 | breach delay p99 | 4.00 | ms |"),
            "{page}"
        );
        let dates: Vec<_> = load(dir.path())
            .expect("loaded")
            .into_iter()
            .map(|r| r.date)
            .collect();
        assert_eq!(
            dates,
            ["2026-12-05T09:00:00.000Z", "2026-12-05T10:00:00.000Z"]
        );
    }

    #[test]
    fn a_run_is_full_only_with_every_section_at_size() {
        assert!(is_full(&run("d", &[100_000, 1_000_000], false)));
        assert!(!is_full(&run("d", &[10_000, 100_000], false)));
        assert!(!is_full(&run("d", &[1_000_000], true)));
    }
}

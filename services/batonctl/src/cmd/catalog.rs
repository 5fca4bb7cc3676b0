//! `batonctl validate-catalog`: check a catalog file before a service is
//! started with it.

use anyhow::Context;
use serde_json::json;

use crate::output::Output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The catalog JSON file.
    file: std::path::PathBuf,
}

/// Exits non-zero (an error naming the line and field) if the catalog is invalid.
pub fn validate(args: Args, out: Output) -> anyhow::Result<()> {
    let source = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let catalog = baton_domain::Catalog::from_json(&source)
        .with_context(|| format!("{} is not a valid catalog", args.file.display()))?;
    out.print(
        || {
            format!(
                "{}: valid, version {} ({} departments, {} kinds, {} promises, {} calendars)",
                args.file.display(),
                catalog.version(),
                catalog.departments.len(),
                catalog.kinds.len(),
                catalog.promises.len(),
                catalog.calendars.len()
            )
        },
        || {
            json!({"file": args.file.display().to_string(), "valid": true, "version": catalog.version(),
                   "departments": catalog.departments.len(), "kinds": catalog.kinds.len(),
                   "promises": catalog.promises.len(), "calendars": catalog.calendars.len()})
        },
    );
    Ok(())
}

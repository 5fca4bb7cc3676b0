//! `batonctl report`: a department's report card for one calendar month, or
//! the hospital-wide summary of every pair's month beside the month before,
//! as text for the terminal, CSV for the quality office's spreadsheet, or
//! one HTML page to print. The figures are the query API's, asked over gRPC
//! (see baton-report); the board serves the same pages at `/report/...`.

use std::path::PathBuf;

use anyhow::Context;
use baton_domain::Catalog;
use baton_proto::v1::{self, query_client::QueryClient};
use baton_report::{render, Options, Source, SummaryOrder};
use tonic::transport::Channel;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The department (its catalog id); without it, the hospital-wide
    /// summary: every pair's promises kept in the month beside the month
    /// before.
    #[arg(long)]
    department: Option<String>,
    /// The month, as YYYY-MM.
    #[arg(long)]
    month: String,
    /// IANA time zone whose calendar month is reported.
    #[arg(long, default_value = "UTC")]
    time_zone: String,
    /// The catalog the services run on: the department's promises and their targets.
    #[arg(long, env = "BATON_CATALOG", default_value = "deploy/catalog.json")]
    catalog: PathBuf,
    /// How many months before this one the trend shows.
    #[arg(long, default_value_t = 2)]
    trend_months: u32,
    /// How many of the worst breaches to list, per side.
    #[arg(long, default_value_t = 5)]
    worst: usize,
    /// The summary's order: kept (least kept first), before (least kept the
    /// month before first), change (largest fall first), handoffs (most
    /// first), supplier or customer (by name).
    #[arg(long, default_value = "kept", value_parser = SummaryOrder::NAMES)]
    sort: String,
    /// text for the terminal, csv for a spreadsheet, html for a page to print.
    #[arg(long, value_parser = ["text", "csv", "html"], default_value = "text")]
    format: String,
}

pub async fn run(url: &str, args: Args) -> anyhow::Result<()> {
    let options = Options {
        time_zone: args.time_zone.clone(),
        trend_months: args.trend_months,
        worst: args.worst,
    };
    let mut source = Grpc(super::query(url).await?);
    let page = match &args.department {
        Some(department) => {
            let catalog = catalog(&args.catalog)?;
            let report =
                baton_report::report(&mut source, &catalog, department, &args.month, &options)
                    .await
                    .map_err(flag_names)?;
            render::Page::of_report(&report)
        }
        None => {
            let order = args.sort.parse().map_err(anyhow::Error::msg)?;
            let summary = baton_report::summary(&mut source, &args.month, &options, order)
                .await
                .map_err(flag_names)?;
            render::Page::of_summary(&summary)
        }
    };
    let page = match args.format.as_str() {
        "csv" => render::csv(&page),
        "html" => render::html(&page),
        _ => render::text(&page),
    };
    crate::output::line(page.trim_end());
    Ok(())
}

fn catalog(path: &PathBuf) -> anyhow::Result<Catalog> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the catalog {}", path.display()))?;
    Catalog::from_json(&text).with_context(|| format!("{} is not a valid catalog", path.display()))
}

/// The report's errors name a month and a department; on the command line
/// they came from `--month` and `--department`.
fn flag_names(e: baton_report::ReportError) -> anyhow::Error {
    use baton_report::ReportError as E;
    match e {
        E::Month(_) | E::Calendar { .. } => anyhow::anyhow!("--month: {e}"),
        E::UnknownDepartment(_) | E::BadDepartment { .. } => anyhow::anyhow!("--department: {e}"),
        E::TimeZone { .. } => anyhow::anyhow!("--time-zone: {e}"),
        E::Query { .. } => anyhow::Error::new(e),
    }
}

/// The query API over gRPC.
struct Grpc(QueryClient<Channel>);

impl Source for Grpc {
    async fn get_matrix(
        &mut self,
        request: v1::GetMatrixRequest,
    ) -> Result<v1::GetMatrixResponse, tonic::Status> {
        Ok(self.0.get_matrix(request).await?.into_inner())
    }

    async fn get_compliance(
        &mut self,
        request: v1::GetComplianceRequest,
    ) -> Result<v1::GetComplianceResponse, tonic::Status> {
        Ok(self.0.get_compliance(request).await?.into_inner())
    }

    async fn list_breaches(
        &mut self,
        request: v1::ListBreachesRequest,
    ) -> Result<v1::ListBreachesResponse, tonic::Status> {
        Ok(self.0.list_breaches(request).await?.into_inner())
    }

    async fn list_disruptions(
        &mut self,
        request: v1::ListDisruptionsRequest,
    ) -> Result<v1::ListDisruptionsResponse, tonic::Status> {
        Ok(self.0.list_disruptions(request).await?.into_inner())
    }
}

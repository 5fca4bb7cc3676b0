//! `batonctl report`: a department's report card for one calendar month,
//! for the meeting where departments review the service they give each
//! other. As supplier and as customer: each pair's volume, kept and broken
//! promises, rejections, disruptions, late entries and ratings; each
//! promise's figures against its targets; the worst breaches; the
//! supplier's disruptions; and the trend over the months before.
//!
//! Every figure is the query API's for the month's window (`GetMatrix`,
//! `GetCompliance`, `ListBreaches`, `ListDisruptions`): the report computes
//! nothing of its own but the month's bounds, so it always agrees with
//! `batonctl matrix` and `batonctl compliance` for the same window. Text for
//! the terminal, CSV for the quality office's spreadsheet, or one HTML page
//! to print.

use std::path::PathBuf;

use anyhow::{anyhow, Context};
use baton_domain::{Catalog, Priority};
use baton_proto::v1::{self, query_client::QueryClient};
use tonic::transport::Channel;

use crate::output::share_kept;

mod render;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The department (its catalog id); without it, the hospital-wide
    /// summary: every pair's promises kept in the month beside the month
    /// before, least kept first.
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
    /// text for the terminal, csv for a spreadsheet, html for a page to print.
    #[arg(long, value_parser = ["text", "csv", "html"], default_value = "text")]
    format: String,
}

/// A calendar month as a window of event time, `[from, to)` in ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Month {
    /// `2026-11`.
    pub label: String,
    pub from: i64,
    pub to: i64,
}

impl Month {
    /// `month` (YYYY-MM) in `zone`, and the `before` months preceding it,
    /// oldest first, this one last.
    pub fn with_earlier(month: &str, zone: &str, before: u32) -> anyhow::Result<Vec<Month>> {
        let tz = jiff::tz::TimeZone::get(zone).with_context(|| format!("time zone {zone:?}"))?;
        let first = jiff::civil::Date::strptime("%Y-%m-%d", format!("{month}-01"))
            .map_err(|_| anyhow!("--month {month:?} is not a month like 2026-11"))?;
        let mut months = Vec::new();
        for back in (0..=before).rev() {
            let start = first.checked_sub(jiff::Span::new().months(back))?;
            let end = start.checked_add(jiff::Span::new().months(1))?;
            months.push(Month {
                label: start.strftime("%Y-%m").to_string(),
                from: start.to_zoned(tz.clone())?.timestamp().as_millisecond(),
                to: end.to_zoned(tz.clone())?.timestamp().as_millisecond(),
            });
        }
        Ok(months)
    }

    fn contains(&self, at: &Option<prost_types::Timestamp>) -> bool {
        at.as_ref()
            .and_then(|t| baton_proto::convert::timestamp_from_proto("at", t).ok())
            .is_some_and(|t| (self.from..self.to).contains(&t.0))
    }

    fn bounds(&self) -> (prost_types::Timestamp, prost_types::Timestamp) {
        (
            crate::time::from_millis(self.from),
            crate::time::from_millis(self.to),
        )
    }
}

/// Which side of its hand-offs a department is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Supplier,
    Customer,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Supplier => "supplier",
            Role::Customer => "customer",
        }
    }
}

/// One promise's figures for the month, with its targets.
#[derive(Debug, Clone)]
pub struct PromiseRow {
    pub policy_id: String,
    /// `stat 10m, urgent 30m, routine 30m`.
    pub targets: String,
    pub figures: v1::Compliance,
}

/// A month's kept and broken promises and ratings, for the trend.
#[derive(Debug, Clone)]
pub struct TrendPoint {
    pub month: String,
    pub met: u64,
    pub breached: u64,
    pub ratings: u64,
    pub rating_sum: u64,
}

impl TrendPoint {
    pub fn kept(&self) -> String {
        let decided = self.met + self.breached;
        share_kept(self.met as f64 / decided.max(1) as f64, decided)
    }

    pub fn rating(&self) -> String {
        match self.ratings {
            0 => "-".to_owned(),
            n => format!("{:.1}", self.rating_sum as f64 / n as f64),
        }
    }
}

/// The department's month on one side of its hand-offs.
#[derive(Debug, Clone)]
pub struct Side {
    pub role: Role,
    /// One cell per counterpart department.
    pub pairs: Vec<v1::MatrixCell>,
    pub promises: Vec<PromiseRow>,
    /// The breaches of the month that overran most, worst first.
    pub worst: Vec<v1::Breach>,
    /// Oldest month first, the reported one last.
    pub trend: Vec<TrendPoint>,
}

/// Every supplier x customer pair of a month beside the month before.
#[derive(Debug, Clone)]
pub struct Summary {
    pub month: Month,
    pub before: Month,
    pub time_zone: String,
    /// (this month, the month before) per pair, least kept first; pairs
    /// with nothing decided this month last.
    pub pairs: Vec<(Option<v1::MatrixCell>, Option<v1::MatrixCell>)>,
}

/// The whole report card.
#[derive(Debug, Clone)]
pub struct Report {
    pub department: String,
    pub month: Month,
    pub time_zone: String,
    pub sides: [Side; 2],
    /// The supplier's disruptions that started in the month.
    pub disruptions: Vec<v1::Disruption>,
}

pub async fn run(url: &str, args: Args) -> anyhow::Result<()> {
    let page = match &args.department {
        Some(department) => render::Page::of_report(&report(url, &args, department).await?),
        None => render::Page::of_summary(&summary(url, &args).await?),
    };
    let page = match args.format.as_str() {
        "csv" => render::csv(&page),
        "html" => render::html(&page),
        _ => render::text(&page),
    };
    crate::output::line(page.trim_end());
    Ok(())
}

async fn summary(url: &str, args: &Args) -> anyhow::Result<Summary> {
    let months = Month::with_earlier(&args.month, &args.time_zone, 1)?;
    let mut client = super::query(url).await?;
    let cells = matrices(&mut client, &months).await?;
    let [before_cells, month_cells]: [Vec<v1::MatrixCell>; 2] = cells
        .try_into()
        .map_err(|_| anyhow!("two months expected"))?;
    let mut pairs: std::collections::BTreeMap<
        (String, String),
        (Option<v1::MatrixCell>, Option<v1::MatrixCell>),
    > = std::collections::BTreeMap::new();
    for cell in month_cells {
        let pair = (cell.supplier.clone(), cell.customer.clone());
        pairs.entry(pair).or_default().0 = Some(cell);
    }
    for cell in before_cells {
        let pair = (cell.supplier.clone(), cell.customer.clone());
        pairs.entry(pair).or_default().1 = Some(cell);
    }
    let mut pairs: Vec<_> = pairs.into_values().collect();
    // Least kept first; nothing decided (no figure) last.
    let rank = |c: &Option<v1::MatrixCell>| match c {
        Some(c) if c.met + c.breached > 0 => c.compliance,
        _ => f64::INFINITY,
    };
    pairs.sort_by(|a, b| rank(&a.0).total_cmp(&rank(&b.0)));
    let [before, month]: [Month; 2] = months
        .try_into()
        .map_err(|_| anyhow!("two months expected"))?;
    Ok(Summary {
        month,
        before,
        time_zone: args.time_zone.clone(),
        pairs,
    })
}

async fn report(url: &str, args: &Args, department: &str) -> anyhow::Result<Report> {
    let text = std::fs::read_to_string(&args.catalog)
        .with_context(|| format!("reading the catalog {}", args.catalog.display()))?;
    let catalog = Catalog::from_json(&text)
        .with_context(|| format!("{} is not a valid catalog", args.catalog.display()))?;
    let id = baton_proto::convert::token("--department", department)?;
    if !catalog.has_department(&id) {
        anyhow::bail!(
            "--department {department}: not a department of the catalog {}",
            args.catalog.display()
        );
    }
    let months = Month::with_earlier(&args.month, &args.time_zone, args.trend_months)?;
    let mut client = super::query(url).await?;
    gather(&mut client, &catalog, args, department, months).await
}

async fn gather(
    client: &mut QueryClient<Channel>,
    catalog: &Catalog,
    args: &Args,
    department: &str,
    months: Vec<Month>,
) -> anyhow::Result<Report> {
    let cells_by_month = matrices(client, &months).await?;
    let month = months.last().cloned().ok_or_else(|| anyhow!("no month"))?;
    let mut sides = Vec::with_capacity(2);
    for role in [Role::Supplier, Role::Customer] {
        let of = |cell: &v1::MatrixCell| match role {
            Role::Supplier => cell.supplier == department,
            Role::Customer => cell.customer == department,
        };
        let trend = months
            .iter()
            .zip(&cells_by_month)
            .map(|(m, cells)| trend_point(m, cells.iter().filter(|c| of(c))))
            .collect();
        let pairs = cells_by_month
            .last()
            .map(|cells| cells.iter().filter(|c| of(c)).cloned().collect())
            .unwrap_or_default();
        sides.push(Side {
            role,
            pairs,
            promises: promises(client, catalog, department, role, &month).await?,
            worst: worst(client, department, role, &month, args.worst).await?,
            trend,
        });
    }
    let disruptions = client
        .list_disruptions(v1::ListDisruptionsRequest {
            supplier: department.to_owned(),
            active_only: false,
        })
        .await
        .map_err(super::status)?
        .into_inner()
        .disruptions
        .into_iter()
        .filter(|d| month.contains(&d.started_at))
        .collect();
    let [supplier, customer]: [Side; 2] = sides
        .try_into()
        .map_err(|_| anyhow!("two sides expected"))?;
    Ok(Report {
        department: department.to_owned(),
        month,
        time_zone: args.time_zone.clone(),
        sides: [supplier, customer],
        disruptions,
    })
}

/// Every pair's figures of each of `months`, in their order.
async fn matrices(
    client: &mut QueryClient<Channel>,
    months: &[Month],
) -> anyhow::Result<Vec<Vec<v1::MatrixCell>>> {
    let mut cells = Vec::with_capacity(months.len());
    for month in months {
        let (from, to) = month.bounds();
        let answer = client
            .get_matrix(v1::GetMatrixRequest {
                from: Some(from),
                to: Some(to),
            })
            .await
            .map_err(super::status)?
            .into_inner();
        cells.push(answer.cells);
    }
    Ok(cells)
}

fn trend_point<'a>(month: &Month, cells: impl Iterator<Item = &'a v1::MatrixCell>) -> TrendPoint {
    let mut point = TrendPoint {
        month: month.label.clone(),
        met: 0,
        breached: 0,
        ratings: 0,
        rating_sum: 0,
    };
    for c in cells {
        point.met += c.met;
        point.breached += c.breached;
        point.ratings += c.ratings;
        point.rating_sum += c.rating_sum;
    }
    point
}

/// Each promise of the catalog with a clock of the department's (on `role`'s
/// side) in the month.
async fn promises(
    client: &mut QueryClient<Channel>,
    catalog: &Catalog,
    department: &str,
    role: Role,
    month: &Month,
) -> anyhow::Result<Vec<PromiseRow>> {
    let mut rows = Vec::new();
    for policy in &catalog.promises {
        let (from, to) = month.bounds();
        let figures = client
            .get_compliance(v1::GetComplianceRequest {
                policy_id: policy.id.to_string(),
                supplier: (role == Role::Supplier).then(|| department.to_owned()),
                customer: (role == Role::Customer).then(|| department.to_owned()),
                from: Some(from),
                to: Some(to),
                bucket: v1::Bucket::Unspecified as i32,
                time_zone: String::new(),
            })
            .await
            .map_err(super::status)?
            .into_inner()
            .compliance;
        let Some(figures) = figures.filter(|c| c.total + c.cancelled + c.reset > 0) else {
            continue;
        };
        let targets = [Priority::Stat, Priority::Urgent, Priority::Routine]
            .iter()
            .filter_map(|p| {
                let target = policy.targets.get(p)?;
                Some(format!(
                    "{p} {}",
                    baton_domain::time::format_duration(*target)
                ))
            })
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(PromiseRow {
            policy_id: policy.id.to_string(),
            targets,
            figures,
        });
    }
    Ok(rows)
}

/// The `count` breaches of the month (by deadline) that overran most.
async fn worst(
    client: &mut QueryClient<Channel>,
    department: &str,
    role: Role,
    month: &Month,
    count: usize,
) -> anyhow::Result<Vec<v1::Breach>> {
    let mut breaches = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_breaches(v1::ListBreachesRequest {
                policy_id: String::new(),
                supplier: match role {
                    Role::Supplier => department.to_owned(),
                    Role::Customer => String::new(),
                },
                customer: match role {
                    Role::Customer => department.to_owned(),
                    Role::Supplier => String::new(),
                },
                open_only: false,
                page_size: 1_000,
                page_token,
            })
            .await
            .map_err(super::status)?
            .into_inner();
        breaches.extend(
            page.breaches
                .into_iter()
                .filter(|b| month.contains(&b.deadline)),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let overrun = |b: &v1::Breach| b.overrun.as_ref().map_or(0, |d| d.seconds);
    breaches.sort_by_key(|b| std::cmp::Reverse(overrun(b)));
    breaches.truncate(count);
    Ok(breaches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_is_its_calendar_days_in_the_zone() {
        let months = Month::with_earlier("2026-03", "Europe/Amsterdam", 2).expect("months");
        let labels: Vec<&str> = months.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(labels, ["2026-01", "2026-02", "2026-03"]);
        // 1 March 2026 00:00 in Amsterdam is 28 February 23:00 UTC; the
        // month ends as April starts, after the change to summer time.
        assert_eq!(months[2].from, 1_772_319_600_000);
        assert_eq!(months[2].to, 1_774_994_400_000);
        assert_eq!(months[1].to, months[2].from, "months meet");
        assert!(Month::with_earlier("2026-13", "UTC", 0).is_err());
        assert!(Month::with_earlier("march", "UTC", 0).is_err());
    }
}

//! Asking a [`Source`] for a month's figures and putting them in the shape
//! of a report card or a summary.

use std::collections::BTreeMap;
use std::str::FromStr;

use baton_domain::{Catalog, Priority, Token};
use baton_proto::v1;

use crate::{Month, PromiseRow, Report, ReportError, Role, Side, Source, Summary, TrendPoint};

/// What a report covers besides its department and month.
#[derive(Debug, Clone)]
pub struct Options {
    /// IANA time zone whose calendar month is reported.
    pub time_zone: String,
    /// How many months before the reported one the trend shows.
    pub trend_months: u32,
    /// How many of the worst breaches to list, per side.
    pub worst: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            time_zone: "UTC".to_owned(),
            trend_months: 2,
            worst: 5,
        }
    }
}

/// The order of the summary's pairs. Pairs with nothing decided in the
/// compared month always come last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SummaryOrder {
    /// Least kept this month first.
    #[default]
    Kept,
    /// Least kept the month before first.
    Before,
    /// The largest fall from the month before first.
    Change,
    /// Most hand-offs this month first.
    Handoffs,
    /// By supplier, then customer.
    Supplier,
    /// By customer, then supplier.
    Customer,
}

impl SummaryOrder {
    pub const NAMES: [&'static str; 6] = [
        "kept", "before", "change", "handoffs", "supplier", "customer",
    ];

    /// How the summary's table says its order.
    pub fn describe(self) -> &'static str {
        match self {
            SummaryOrder::Kept => "least kept first",
            SummaryOrder::Before => "least kept the month before first",
            SummaryOrder::Change => "largest fall from the month before first",
            SummaryOrder::Handoffs => "most hand-offs first",
            SummaryOrder::Supplier => "by supplier",
            SummaryOrder::Customer => "by customer",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SummaryOrder::Kept => "kept",
            SummaryOrder::Before => "before",
            SummaryOrder::Change => "change",
            SummaryOrder::Handoffs => "handoffs",
            SummaryOrder::Supplier => "supplier",
            SummaryOrder::Customer => "customer",
        }
    }
}

impl FromStr for SummaryOrder {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            SummaryOrder::Kept,
            SummaryOrder::Before,
            SummaryOrder::Change,
            SummaryOrder::Handoffs,
            SummaryOrder::Supplier,
            SummaryOrder::Customer,
        ]
        .into_iter()
        .find(|o| o.name() == s)
        .ok_or_else(|| format!("no order {s:?}; one of {}", SummaryOrder::NAMES.join(", ")))
    }
}

type PairMonths = (Option<v1::MatrixCell>, Option<v1::MatrixCell>);

/// Every pair's month beside the month before, in `order`.
pub async fn summary(
    source: &mut impl Source,
    month: &str,
    options: &Options,
    order: SummaryOrder,
) -> Result<Summary, ReportError> {
    let months = Month::with_earlier(month, &options.time_zone, 1)?;
    let mut cells = matrices(source, &months).await?;
    let month_cells = cells.pop().unwrap_or_default();
    let before_cells = cells.pop().unwrap_or_default();
    let mut pairs: BTreeMap<(String, String), PairMonths> = BTreeMap::new();
    for cell in month_cells {
        let pair = (cell.supplier.clone(), cell.customer.clone());
        pairs.entry(pair).or_default().0 = Some(cell);
    }
    for cell in before_cells {
        let pair = (cell.supplier.clone(), cell.customer.clone());
        pairs.entry(pair).or_default().1 = Some(cell);
    }
    let mut pairs: Vec<PairMonths> = pairs.into_values().collect();
    sort(&mut pairs, order);
    let [before, month] =
        <[Month; 2]>::try_from(months).map_err(|_| ReportError::Month(month.to_owned()))?;
    Ok(Summary {
        month,
        before,
        time_zone: options.time_zone.clone(),
        order,
        pairs,
    })
}

/// Sorts pairs in `order`; stable, so pairs that tie keep the supplier,
/// customer order they came in.
fn sort(pairs: &mut [PairMonths], order: SummaryOrder) {
    // A share kept, or None when nothing was decided.
    let kept = |c: &Option<v1::MatrixCell>| match c {
        Some(c) if c.met + c.breached > 0 => Some(c.compliance),
        _ => None,
    };
    let last = |k: Option<f64>| k.unwrap_or(f64::INFINITY);
    let names = |p: &PairMonths| {
        p.0.as_ref()
            .or(p.1.as_ref())
            .map(|c| (c.supplier.clone(), c.customer.clone()))
            .unwrap_or_default()
    };
    match order {
        SummaryOrder::Kept => pairs.sort_by(|a, b| last(kept(&a.0)).total_cmp(&last(kept(&b.0)))),
        SummaryOrder::Before => pairs.sort_by(|a, b| last(kept(&a.1)).total_cmp(&last(kept(&b.1)))),
        SummaryOrder::Change => {
            let change = |p: &PairMonths| match (kept(&p.0), kept(&p.1)) {
                (Some(now), Some(before)) => now - before,
                _ => f64::INFINITY,
            };
            pairs.sort_by(|a, b| change(a).total_cmp(&change(b)))
        }
        SummaryOrder::Handoffs => {
            pairs.sort_by_key(|p| std::cmp::Reverse(p.0.as_ref().map_or(0, |c| c.handoffs)))
        }
        SummaryOrder::Supplier => pairs.sort_by_key(names),
        SummaryOrder::Customer => pairs.sort_by_key(|p| {
            let (supplier, customer) = names(p);
            (customer, supplier)
        }),
    }
}

/// `department`'s report card for `month`, as supplier and as customer.
pub async fn report(
    source: &mut impl Source,
    catalog: &Catalog,
    department: &str,
    month: &str,
    options: &Options,
) -> Result<Report, ReportError> {
    let id = Token::parse(department).map_err(|source| ReportError::BadDepartment {
        department: department.to_owned(),
        source,
    })?;
    let Some(name) = catalog.departments.iter().find(|d| d.id == id) else {
        return Err(ReportError::UnknownDepartment(department.to_owned()));
    };
    let department_name = name.name.clone();
    let months = Month::with_earlier(month, &options.time_zone, options.trend_months)?;
    let cells_by_month = matrices(source, &months).await?;
    let month = months
        .last()
        .cloned()
        .ok_or_else(|| ReportError::Month(month.to_owned()))?;
    let supplier = side(
        source,
        catalog,
        department,
        Role::Supplier,
        &months,
        &cells_by_month,
        options,
    )
    .await?;
    let customer = side(
        source,
        catalog,
        department,
        Role::Customer,
        &months,
        &cells_by_month,
        options,
    )
    .await?;
    let disruptions = source
        .list_disruptions(v1::ListDisruptionsRequest {
            supplier: department.to_owned(),
            active_only: false,
        })
        .await
        .map_err(ReportError::query("ListDisruptions"))?
        .disruptions
        .into_iter()
        .filter(|d| month.contains(&d.started_at))
        .collect();
    Ok(Report {
        department: department.to_owned(),
        department_name,
        month,
        time_zone: options.time_zone.clone(),
        sides: [supplier, customer],
        disruptions,
    })
}

/// The department's month on `role`'s side; `months` oldest first, the
/// reported one last, with each month's matrix beside it.
async fn side(
    source: &mut impl Source,
    catalog: &Catalog,
    department: &str,
    role: Role,
    months: &[Month],
    cells_by_month: &[Vec<v1::MatrixCell>],
    options: &Options,
) -> Result<Side, ReportError> {
    let of = |cell: &&v1::MatrixCell| match role {
        Role::Supplier => cell.supplier == department,
        Role::Customer => cell.customer == department,
    };
    let trend = months
        .iter()
        .zip(cells_by_month)
        .map(|(m, cells)| trend_point(m, cells.iter().filter(of)))
        .collect();
    let pairs = cells_by_month
        .last()
        .map(|cells| cells.iter().filter(of).cloned().collect())
        .unwrap_or_default();
    let Some(month) = months.last() else {
        return Err(ReportError::Month(String::new()));
    };
    Ok(Side {
        role,
        pairs,
        promises: promises(source, catalog, department, role, month).await?,
        worst: worst(source, department, role, month, options.worst).await?,
        trend,
    })
}

/// Every pair's figures of each of `months`, in their order.
async fn matrices(
    source: &mut impl Source,
    months: &[Month],
) -> Result<Vec<Vec<v1::MatrixCell>>, ReportError> {
    let mut cells = Vec::with_capacity(months.len());
    for month in months {
        let (from, to) = month.bounds();
        let answer = source
            .get_matrix(v1::GetMatrixRequest {
                from: Some(from),
                to: Some(to),
            })
            .await
            .map_err(ReportError::query("GetMatrix"))?;
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
    source: &mut impl Source,
    catalog: &Catalog,
    department: &str,
    role: Role,
    month: &Month,
) -> Result<Vec<PromiseRow>, ReportError> {
    let mut rows = Vec::new();
    for policy in &catalog.promises {
        let (from, to) = month.bounds();
        let figures = source
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
            .map_err(ReportError::query("GetCompliance"))?
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
    source: &mut impl Source,
    department: &str,
    role: Role,
    month: &Month,
    count: usize,
) -> Result<Vec<v1::Breach>, ReportError> {
    let mut breaches = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = source
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
            .map_err(ReportError::query("ListBreaches"))?;
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

    fn cell(
        supplier: &str,
        customer: &str,
        met: u64,
        breached: u64,
        handoffs: u64,
    ) -> v1::MatrixCell {
        v1::MatrixCell {
            supplier: supplier.to_owned(),
            customer: customer.to_owned(),
            met,
            breached,
            handoffs,
            compliance: if met + breached == 0 {
                1.0
            } else {
                met as f64 / (met + breached) as f64
            },
            ..Default::default()
        }
    }

    fn order(pairs: &[PairMonths]) -> Vec<String> {
        pairs
            .iter()
            .map(|p| {
                let c = p.0.as_ref().or(p.1.as_ref()).expect("a cell");
                format!("{}>{}", c.supplier, c.customer)
            })
            .collect()
    }

    #[test]
    fn each_order_sorts_the_summary_and_nothing_decided_comes_last() {
        let pairs = vec![
            // 50% now, 100% before: fell by half.
            (
                Some(cell("lab", "icu", 1, 1, 4)),
                Some(cell("lab", "icu", 2, 0, 2)),
            ),
            // nothing decided now (shows "-", not 100%), 0% before.
            (
                Some(cell("lab", "er", 0, 0, 9)),
                Some(cell("lab", "er", 0, 3, 3)),
            ),
            // 75% now, 50% before: rose.
            (
                Some(cell("pharmacy", "er", 3, 1, 5)),
                Some(cell("pharmacy", "er", 1, 1, 2)),
            ),
            // only the month before, 100%.
            (None, Some(cell("porters", "icu", 1, 0, 1))),
        ];
        let sorted = |o: SummaryOrder| {
            let mut p = pairs.clone();
            sort(&mut p, o);
            order(&p)
        };
        assert_eq!(
            sorted(SummaryOrder::Kept),
            ["lab>icu", "pharmacy>er", "lab>er", "porters>icu"]
        );
        assert_eq!(
            sorted(SummaryOrder::Before),
            ["lab>er", "pharmacy>er", "lab>icu", "porters>icu"]
        );
        assert_eq!(
            sorted(SummaryOrder::Change),
            ["lab>icu", "pharmacy>er", "lab>er", "porters>icu"]
        );
        assert_eq!(
            sorted(SummaryOrder::Handoffs),
            ["lab>er", "pharmacy>er", "lab>icu", "porters>icu"]
        );
        assert_eq!(
            sorted(SummaryOrder::Supplier),
            ["lab>er", "lab>icu", "pharmacy>er", "porters>icu"]
        );
        assert_eq!(
            sorted(SummaryOrder::Customer),
            ["lab>er", "pharmacy>er", "lab>icu", "porters>icu"]
        );
    }

    #[test]
    fn an_order_is_named_by_its_word() {
        for name in SummaryOrder::NAMES {
            assert_eq!(name.parse::<SummaryOrder>().expect(name).name(), name);
        }
        assert!("worst".parse::<SummaryOrder>().is_err());
    }
}

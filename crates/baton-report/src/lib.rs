//! A department's monthly report card, and the hospital-wide summary of
//! every pair's month, for the meeting where departments review the service
//! they give each other.
//!
//! Every figure is the query API's for the month's window (`GetMatrix`,
//! `GetCompliance`, `ListBreaches`, `ListDisruptions`), asked through a
//! [`Source`]: batonctl asks over gRPC, the board asks the projector's query
//! service in its own process. This crate computes nothing but the month's
//! bounds and the order of rows, so a report always agrees with the query
//! API for the same window; it must never read the views or the log itself,
//! and never keep anything between reports.

mod error;
mod gather;
mod month;
pub mod render;
mod source;

pub use error::ReportError;
pub use gather::{report, summary, Options, SummaryOrder};
pub use month::Month;
pub use source::Source;

use baton_proto::v1;

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

    /// The department on the other side of the hand-off.
    pub fn counterpart(self) -> &'static str {
        match self {
            Role::Supplier => "customer",
            Role::Customer => "supplier",
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
        render::share_kept(self.met as f64 / decided.max(1) as f64, decided)
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
    pub order: SummaryOrder,
    /// (this month, the month before) per pair, in `order`.
    pub pairs: Vec<(Option<v1::MatrixCell>, Option<v1::MatrixCell>)>,
}

/// The whole report card.
#[derive(Debug, Clone)]
pub struct Report {
    /// The department's catalog id.
    pub department: String,
    /// Its name in the catalog.
    pub department_name: String,
    pub month: Month,
    pub time_zone: String,
    pub sides: [Side; 2],
    /// The supplier's disruptions that started in the month.
    pub disruptions: Vec<v1::Disruption>,
}

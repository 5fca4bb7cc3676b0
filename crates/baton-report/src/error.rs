//! What can stop a report being made.

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("month {0:?} is not a month like 2026-11")]
    Month(String),
    #[error("time zone {zone:?}: {source}")]
    TimeZone {
        zone: String,
        #[source]
        source: jiff::Error,
    },
    #[error("month {month}: {source}")]
    Calendar {
        month: String,
        #[source]
        source: jiff::Error,
    },
    #[error("department {0}: not a department of the catalog")]
    UnknownDepartment(String),
    #[error("department {department:?}: {source}")]
    BadDepartment {
        department: String,
        #[source]
        source: baton_domain::id::TokenError,
    },
    /// The query API refused or failed; its status is kept whole.
    #[error("{rpc}: {}: {}", .status.code(), .status.message())]
    Query {
        rpc: &'static str,
        #[source]
        status: tonic::Status,
    },
}

impl ReportError {
    pub(crate) fn query(rpc: &'static str) -> impl FnOnce(tonic::Status) -> ReportError {
        move |status| ReportError::Query { rpc, status }
    }
}

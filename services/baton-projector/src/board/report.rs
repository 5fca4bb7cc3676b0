//! The report pages: `/report/<month>`, every pair's month beside the month
//! before (`?sort=` one of baton-report's orders), and
//! `/report/<department>/<month>`, a department's report card. Each is one
//! page to print, or CSV with `?format=csv`. The figures are asked of the
//! projector's own query service, so they are `GetMatrix`'s and
//! `GetCompliance`'s for the same month, and `batonctl report` prints the
//! same page.

use std::sync::Arc;

use axum::{
    extract::{Path, RawQuery, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use baton_proto::v1::{self, query_server::Query};
use baton_report::{render, Month, Options, ReportError, Source, SummaryOrder};

use super::{page, BoardError, BoardState};
use crate::query::QueryService;

/// `/report/<month>`: the hospital-wide summary.
pub(super) async fn summary(
    State(state): State<Arc<BoardState>>,
    Path(month): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, BoardError> {
    let asked = Asked::parse(query.as_deref())?;
    if let Some(notice) = state.rebuilding("report", baton_runtime::now()) {
        return Ok(notice);
    }
    let order = asked.sort;
    let summary = baton_report::summary(&mut state.source(), &month, &state.options(), order)
        .await
        .map_err(not_found)?;
    let page = render::Page::of_summary(&summary);
    let mut links = state.links(&format!("/report/{month}"), &summary.month.label);
    links.extend(
        SummaryOrder::NAMES
            .iter()
            .filter(|o| **o != order.name())
            .map(|o| {
                (
                    format!("sort: {o}"),
                    format!("/report/{}?sort={o}", summary.month.label),
                )
            }),
    );
    Ok(asked.answer(&page, &links, "all"))
}

/// `/report/<department>/<month>`: a department's report card.
pub(super) async fn card(
    State(state): State<Arc<BoardState>>,
    Path((department, month)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, BoardError> {
    let asked = Asked::parse(query.as_deref())?;
    if let Some(notice) = state.rebuilding("report", baton_runtime::now()) {
        return Ok(notice);
    }
    let catalog = state.shared.catalog.clone();
    let report = baton_report::report(
        &mut state.source(),
        &catalog,
        &department,
        &month,
        &state.options(),
    )
    .await
    .map_err(not_found)?;
    let page = render::Page::of_report(&report);
    let mut links = state.links(
        &format!("/report/{department}/{month}"),
        &report.month.label,
    );
    links.push((
        "the department's screen".to_owned(),
        format!("/department/{department}"),
    ));
    Ok(asked.answer(&page, &links, &department))
}

/// What the address asked for besides the report: its format and, for the
/// summary, its order.
struct Asked {
    csv: bool,
    sort: SummaryOrder,
}

impl Asked {
    fn parse(query: Option<&str>) -> Result<Asked, BoardError> {
        let mut asked = Asked {
            csv: false,
            sort: SummaryOrder::default(),
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=').unwrap_or((pair, "")) {
                ("format", "csv") => asked.csv = true,
                ("format", "html") => asked.csv = false,
                ("sort", order) => asked.sort = order.parse().map_err(BoardError::NotFound)?,
                _ => {
                    return Err(BoardError::NotFound(format!(
                        "{pair:?}: a report takes format=html|csv and sort=<order>"
                    )))
                }
            }
        }
        Ok(asked)
    }

    fn answer(&self, report: &render::Page, links: &[(String, String)], who: &str) -> Response {
        if !self.csv {
            return page(StatusCode::OK, render::html_with_links(report, links));
        }
        let file = format!(
            "attachment; filename=\"baton-report-{who}-{}.csv\"",
            report.month
        );
        let disposition =
            HeaderValue::from_str(&file).unwrap_or_else(|_| HeaderValue::from_static("attachment"));
        (
            StatusCode::OK,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/csv; charset=utf-8"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                (header::CONTENT_DISPOSITION, disposition),
            ],
            render::csv(report),
        )
            .into_response()
    }
}

/// A month, department or order that does not exist is a page that does
/// not; the query service failing is the board's failure.
fn not_found(e: ReportError) -> BoardError {
    match e {
        ReportError::Query { .. } => BoardError::Report(e),
        _ => BoardError::NotFound(e.to_string()),
    }
}

impl BoardState {
    fn source(&self) -> InProcess {
        InProcess(QueryService::new(
            self.shared.clone(),
            self.client.clone(),
            self.shutdown.clone(),
        ))
    }

    fn options(&self) -> Options {
        Options {
            time_zone: self
                .config
                .time_zone
                .iana_name()
                .unwrap_or("UTC")
                .to_owned(),
            ..Options::default()
        }
    }

    /// The board, this page as CSV, and the months either side of `month`.
    fn links(&self, here: &str, month: &str) -> Vec<(String, String)> {
        let mut links = vec![
            ("the board".to_owned(), "/".to_owned()),
            ("CSV".to_owned(), format!("{here}?format=csv")),
        ];
        let base = here.rsplit_once('/').map_or("/report", |(base, _)| base);
        if let Ok(months) = Month::with_earlier(month, "UTC", 1) {
            if let Some(before) = months.first() {
                links.push((
                    format!("month before ({})", before.label),
                    format!("{base}/{}", before.label),
                ));
            }
        }
        if !self.shared.partition.is_whole() {
            links.push((
                format!(
                    "partition {} of {} only",
                    self.shared.partition.index, self.shared.partition.count
                ),
                "/".to_owned(),
            ));
        }
        links
    }
}

/// The projector's own query service, asked in process.
struct InProcess(QueryService);

impl Source for InProcess {
    async fn get_matrix(
        &mut self,
        request: v1::GetMatrixRequest,
    ) -> Result<v1::GetMatrixResponse, tonic::Status> {
        Ok(self
            .0
            .get_matrix(tonic::Request::new(request))
            .await?
            .into_inner())
    }

    async fn get_compliance(
        &mut self,
        request: v1::GetComplianceRequest,
    ) -> Result<v1::GetComplianceResponse, tonic::Status> {
        Ok(self
            .0
            .get_compliance(tonic::Request::new(request))
            .await?
            .into_inner())
    }

    async fn list_breaches(
        &mut self,
        request: v1::ListBreachesRequest,
    ) -> Result<v1::ListBreachesResponse, tonic::Status> {
        Ok(self
            .0
            .list_breaches(tonic::Request::new(request))
            .await?
            .into_inner())
    }

    async fn list_disruptions(
        &mut self,
        request: v1::ListDisruptionsRequest,
    ) -> Result<v1::ListDisruptionsResponse, tonic::Status> {
        Ok(self
            .0
            .list_disruptions(tonic::Request::new(request))
            .await?
            .into_inner())
    }
}

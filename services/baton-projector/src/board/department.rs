//! The routes of a department's own screen: `/department/<id>`, and
//! `/department/<id>/live`, its sections again for the board's script to
//! swap in when something happened.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use baton_domain::{Timestamp, Token};
use baton_views::{BreachFilter, ComplianceScope, HandoffFilter};
use jiff::tz::TimeZone;

use super::{page, pages, token, BoardError, BoardState, ROWS};

pub(super) async fn department(
    State(state): State<Arc<BoardState>>,
    Path(id): Path<String>,
) -> Result<Response, BoardError> {
    let (title, body, now) = match render(&state, &id).await? {
        Rendered::Page { title, body, now } => (title, body, now),
        Rendered::Notice(notice) => return Ok(notice),
    };
    Ok(page(
        StatusCode::OK,
        state.shell(&title, "department", now).wrap(&body),
    ))
}

pub(super) async fn department_live(
    State(state): State<Arc<BoardState>>,
    Path(id): Path<String>,
) -> Result<Response, BoardError> {
    match render(&state, &id).await? {
        Rendered::Page { body, .. } => Ok(page(StatusCode::OK, body)),
        Rendered::Notice(notice) => Ok(notice),
    }
}

enum Rendered {
    Page {
        title: String,
        body: String,
        now: Timestamp,
    },
    Notice(Response),
}

async fn render(state: &Arc<BoardState>, id: &str) -> Result<Rendered, BoardError> {
    let id = token("department", id)?;
    if !state.shared.catalog.has_department(&id) {
        return Err(BoardError::NotFound(format!(
            "no department {id} in the catalog"
        )));
    }
    let now = baton_runtime::now();
    let title = state.names().plain(id.as_str());
    if let Some(notice) = state.rebuilding(&title, now) {
        return Ok(Rendered::Notice(notice));
    }
    let (department, names) = state.read(move |s| s.department(id, now)).await?;
    let body = pages::department(&department, &names, now, &state.config.time_zone);
    Ok(Rendered::Page { title, body, now })
}

impl BoardState {
    fn department(
        &self,
        id: Token,
        now: Timestamp,
    ) -> Result<(pages::Department, pages::Names), BoardError> {
        let views = &self.shared.views;
        let mut names = pages::Names::of(&self.shared.catalog);
        let mut open = |filter: HandoffFilter| -> Result<Vec<pages::ClockRow>, BoardError> {
            let open = views.open_clocks(&filter, ROWS)?;
            Ok(self.clock_rows(open, &mut names))
        };
        let owes = open(HandoffFilter {
            supplier: Some(id.clone()),
            ..HandoffFilter::default()
        })?;
        let awaits = open(HandoffFilter {
            customer: Some(id.clone()),
            ..HandoffFilter::default()
        })?;
        let starts = Starts::of(now, &self.config.time_zone)?;
        let mut breaches_today = views
            .list_breaches(
                &BreachFilter {
                    supplier: Some(id.clone()),
                    ..BreachFilter::default()
                },
                None,
                10 * ROWS,
            )?
            .items;
        breaches_today.retain(|b| b.deadline >= starts.today && b.announce);
        pages::order_breaches(&mut breaches_today);
        breaches_today.truncate(ROWS);
        self.remember_requests(breaches_today.iter(), &mut names)?;
        let tallies = |supplier: Option<Token>, customer: Option<Token>, from: Timestamp| {
            views.compliance(&ComplianceScope {
                supplier,
                customer,
                from: Some(from),
                ..ComplianceScope::default()
            })
        };
        let mut standings = Vec::new();
        for (label, from) in [("this week", starts.week), ("this month", starts.month)] {
            standings.push(pages::Standing {
                label,
                as_supplier: tallies(Some(id.clone()), None, from)?,
                as_customer: tallies(None, Some(id.clone()), from)?,
            });
        }
        let department = pages::Department {
            id,
            owes,
            awaits,
            breaches_today,
            standings,
        };
        Ok((department, names))
    }
}

/// Where today, this week (from Monday) and this month begin, in the
/// board's time zone.
struct Starts {
    today: Timestamp,
    week: Timestamp,
    month: Timestamp,
}

impl Starts {
    fn of(now: Timestamp, tz: &TimeZone) -> Result<Starts, BoardError> {
        let time = BoardError::Calendar;
        let zoned = jiff::Timestamp::from_millisecond(now.0)
            .map_err(time)?
            .to_zoned(tz.clone());
        let today = zoned.start_of_day().map_err(time)?;
        let back = i64::from(today.weekday().to_monday_zero_offset());
        let week = today
            .checked_sub(jiff::Span::new().days(back))
            .and_then(|d| d.start_of_day())
            .map_err(time)?;
        let month = zoned
            .first_of_month()
            .and_then(|d| d.start_of_day())
            .map_err(time)?;
        let ms = |z: &jiff::Zoned| Timestamp(z.timestamp().as_millisecond());
        Ok(Starts {
            today: ms(&today),
            week: ms(&week),
            month: ms(&month),
        })
    }
}

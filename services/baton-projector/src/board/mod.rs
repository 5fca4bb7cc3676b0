//! The live SLA board: server-rendered pages on the projector's HTTP side
//! port, read from the same views as the `Query` service, and a
//! server-sent-event stream of breaches, warnings, corrections and
//! disruptions as they are announced on NATS.
//!
//! | path | what |
//! |---|---|
//! | `/` | the wall-screen board: open breaches, running clocks by time left (the warned ones in amber), active disruptions, the supplier x customer matrix |
//! | `/board/live`, `/board/overview` | the board's sections again, for its script to swap in after an event |
//! | `/department/<id>` | a department's own screen: what it owes, what it waits for, its breaches today, its standing this week and month |
//! | `/report/<month>`, `/report/<department>/<month>` | every pair's month beside the month before (`?sort=`), a department's report card; a page to print, or `?format=csv` |
//! | `/pair/<supplier>/<customer>` | a pair's daily compliance and its worst hand-offs |
//! | `/handoff/<id>` | a hand-off's events, clocks, pauses and breach point on one timeline |
//! | `/events` | `text/event-stream`: `hello`, `breach`, `correction`, `warning`, `disruption`, `changed` |
//! | `/static/board.css`, `/static/board.js` | style and the small script (countdowns, live updates) |
//!
//! The pages work without JavaScript; the script only ticks countdowns and
//! applies live updates. Until the views are current (a rebuild) the pages
//! say so instead of showing figures. The board never writes to the views.

mod department;
pub mod html;
pub mod live;
pub mod pages;
mod report;

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{Path, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use baton_domain::{Timestamp, Token};
use baton_views::{projection::clocks_of, Bucketing, ComplianceScope, HandoffFilter};
use jiff::tz::TimeZone;
use tokio_util::sync::CancellationToken;

use crate::Shared;
use html::{Escaped, Shell};

/// Rows of running clocks and of open breaches shown at most.
const ROWS: usize = 50;
/// Breaches read at most to find the open or worst ones.
const BREACH_SCAN: usize = 5_000;
/// Worst hand-offs listed on a pair page.
const WORST: usize = 15;
/// Breaches from loaded history shown apart, below the live ones.
const HISTORY_ROWS: usize = 5;

/// The board's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct BoardConfig {
    /// Time zone the board shows times and days in (IANA name, e.g. Europe/Amsterdam).
    #[arg(
        long = "board-time-zone",
        env = "BATON_BOARD_TIME_ZONE",
        default_value = "UTC",
        value_parser = time_zone
    )]
    pub time_zone: TimeZone,

    /// Days of history in the board's matrix and a pair's trend.
    #[arg(long = "board-days", env = "BATON_BOARD_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=366))]
    pub days: u32,
}

impl Default for BoardConfig {
    fn default() -> Self {
        BoardConfig {
            time_zone: TimeZone::UTC,
            days: 30,
        }
    }
}

fn time_zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|e| format!("{name:?} is not a known IANA time zone: {e}"))
}

/// What the board's handlers share.
#[derive(Debug)]
pub struct BoardState {
    pub shared: Arc<Shared>,
    pub client: async_nats::Client,
    /// Ends open event streams, so a graceful shutdown does not wait on them.
    pub shutdown: CancellationToken,
    pub config: BoardConfig,
}

/// The board's routes, to merge into the HTTP side port.
pub fn router(state: BoardState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/board/live", get(live_sections))
        .route("/board/overview", get(overview_sections))
        .route("/pair/{supplier}/{customer}", get(pair))
        .route("/handoff/{id}", get(handoff))
        .route("/department/{id}", get(department::department))
        .route("/department/{id}/live", get(department::department_live))
        .route("/report/{month}", get(report::summary))
        .route("/report/{department}/{month}", get(report::card))
        .route("/events", get(live::events))
        .route("/static/board.css", get(css))
        .route("/static/board.js", get(js))
        .with_state(Arc::new(state))
}

/// Why a page could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("{0}")]
    NotFound(String),
    #[error(
        "the views cannot be read ({0}); restart the projector to rebuild them from the stream"
    )]
    Views(#[from] baton_views::ViewsError),
    /// Days could not be counted in the board's time zone.
    #[error("calendar arithmetic: {0}")]
    Calendar(#[source] jiff::Error),
    /// The query service could not answer a report's question.
    #[error("the report could not be made: {0}")]
    Report(baton_report::ReportError),
    /// The page's task failed, not the views: nothing to rebuild.
    #[error("the page could not be made: {0}")]
    Task(#[from] crate::TaskGone),
    /// A retired hand-off's page needs the log, which could not be read.
    #[error("this hand-off's view was retired and its events are read from the log: {0}")]
    Retired(#[from] crate::timeline::TimelineError),
}

impl IntoResponse for BoardError {
    fn into_response(self) -> Response {
        let status = match &self {
            BoardError::NotFound(_) => StatusCode::NOT_FOUND,
            BoardError::Retired(_) => StatusCode::SERVICE_UNAVAILABLE,
            BoardError::Views(_)
            | BoardError::Calendar(_)
            | BoardError::Task(_)
            | BoardError::Report(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::warn!(error = %self, "board page failed");
        }
        let body = format!(
            "<section><h1>{}</h1><p>{}</p></section>",
            status,
            Escaped(&self.to_string())
        );
        let shell = Shell {
            title: "error",
            now: baton_runtime::now(),
            current: true,
            page: "error",
            tz: "UTC",
            subject: None,
            partition: None,
        };
        page(status, shell.wrap(&body))
    }
}

/// An HTML response that is never cached and may load only its own script.
fn page(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
                ),
            ),
        ],
        body,
    )
        .into_response()
}

impl BoardState {
    /// The catalog's department names (a few dozen: read per page).
    fn names(&self) -> Arc<pages::Names> {
        Arc::new(pages::Names::of(&self.shared.catalog))
    }

    /// Board rows of running clocks, remembering what each request said.
    fn clock_rows(
        &self,
        open: Vec<baton_views::OpenClock>,
        names: &mut pages::Names,
    ) -> Vec<pages::ClockRow> {
        for o in &open {
            names.remember_request(&self.shared.catalog, &o.handoff);
        }
        pages::clock_rows(open)
    }

    /// Remembers what the requests of `breaches`' hand-offs said (a read of
    /// each hand-off's view: the rows shown, no more).
    fn remember_requests<'b>(
        &self,
        breaches: impl Iterator<Item = &'b baton_views::BreachRecord>,
        names: &mut pages::Names,
    ) -> Result<(), BoardError> {
        for breach in breaches {
            if let Some(view) = self.shared.views.handoff(&breach.handoff_id)? {
                names.remember_request(&self.shared.catalog, &view.handoff);
            }
        }
        Ok(())
    }

    fn shell<'a>(&'a self, title: &'a str, page: &'a str, now: Timestamp) -> Shell<'a> {
        Shell {
            title,
            now,
            current: self.shared.is_current(),
            page,
            tz: self.config.time_zone.iana_name().unwrap_or("UTC"),
            subject: None,
            partition: (!self.shared.partition.is_whole())
                .then_some((self.shared.partition.index, self.shared.partition.count)),
        }
    }

    /// The rebuilding notice, while the views are incomplete.
    fn rebuilding(&self, title: &str, now: Timestamp) -> Option<Response> {
        if self.shared.is_current() {
            return None;
        }
        let body = html::rebuilding(self.shared.applied());
        let shell = self.shell(title, "rebuilding", now);
        Some(page(StatusCode::SERVICE_UNAVAILABLE, shell.wrap(&body)))
    }

    /// Runs a read of the views off the async threads.
    async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&BoardState) -> Result<T, BoardError> + Send + 'static,
    ) -> Result<T, BoardError> {
        let state = self.clone();
        let result = tokio::task::spawn_blocking(move || read(&state))
            .await
            .map_err(crate::task_gone("board page"))?;
        if let Err(BoardError::Views(e)) = &result {
            // The views are in doubt: end the process so they are checked.
            self.shared.storage_error(e);
        }
        result
    }

    /// What the board shows (only `parts` of it), as of `now`.
    fn board(&self, now: Timestamp, parts: Parts) -> Result<pages::Board, BoardError> {
        let views = &self.shared.views;
        let mut names = pages::Names::of(&self.shared.catalog);
        let mut board = if parts.clocks {
            self.board_clocks(&mut names)?
        } else {
            pages::Board::default()
        };
        board.names = Arc::new(names);
        if parts.overview {
            let days = i64::from(self.config.days);
            let from = Timestamp(now.0.saturating_sub(days * 86_400_000));
            board.disruptions = views.disruptions(None, Some(now))?;
            board.matrix = views.matrix(Some(from), None)?;
            board.matrix_days = self.config.days;
        }
        Ok(board)
    }

    /// Running clocks and open breaches.
    fn board_clocks(&self, names: &mut pages::Names) -> Result<pages::Board, BoardError> {
        let views = &self.shared.views;
        let open = views.open_clocks(&HandoffFilter::default(), ROWS)?;
        let clocks = self.clock_rows(open, names);
        // From the open-breach index, newest first: what was announced, and
        // apart from it what history loaded without paging anyone.
        let (breaches, breaches_total) = views.open_breaches(true, ROWS)?;
        let (history, history_total) = views.open_breaches(false, HISTORY_ROWS)?;
        self.remember_requests(breaches.iter().chain(&history), names)?;
        Ok(pages::Board {
            clocks,
            breaches,
            breaches_total,
            history,
            history_total,
            ..pages::Board::default()
        })
    }
}

async fn index(State(state): State<Arc<BoardState>>) -> Result<Response, BoardError> {
    let now = baton_runtime::now();
    if let Some(notice) = state.rebuilding("duty board", now) {
        return Ok(notice);
    }
    let board = state.read(move |s| s.board(now, Parts::ALL)).await?;
    let body = pages::board(&board, now, &state.config.time_zone);
    Ok(page(
        StatusCode::OK,
        state.shell("duty board", "board", now).wrap(&body),
    ))
}

async fn live_sections(State(state): State<Arc<BoardState>>) -> Result<Response, BoardError> {
    section(state, Parts::CLOCKS, pages::live).await
}

async fn overview_sections(State(state): State<Arc<BoardState>>) -> Result<Response, BoardError> {
    section(state, Parts::OVERVIEW, pages::overview).await
}

/// Which parts of the board to read: the matrix is the expensive one, read
/// only when a breach, correction or disruption may have changed it.
#[derive(Debug, Clone, Copy)]
struct Parts {
    clocks: bool,
    overview: bool,
}

impl Parts {
    const ALL: Parts = Parts {
        clocks: true,
        overview: true,
    };
    const CLOCKS: Parts = Parts {
        clocks: true,
        overview: false,
    };
    const OVERVIEW: Parts = Parts {
        clocks: false,
        overview: true,
    };
}

/// One of the board's sections, bare, for its script to swap in.
async fn section(
    state: Arc<BoardState>,
    parts: Parts,
    render: fn(&pages::Board, Timestamp, &TimeZone) -> String,
) -> Result<Response, BoardError> {
    let now = baton_runtime::now();
    if !state.shared.is_current() {
        return Ok(page(
            StatusCode::SERVICE_UNAVAILABLE,
            html::rebuilding(state.shared.applied()),
        ));
    }
    let board = state.read(move |s| s.board(now, parts)).await?;
    Ok(page(
        StatusCode::OK,
        render(&board, now, &state.config.time_zone),
    ))
}

fn token(what: &str, value: &str) -> Result<Token, BoardError> {
    Token::parse(value).map_err(|e| BoardError::NotFound(format!("no such {what}: {e}")))
}

async fn pair(
    State(state): State<Arc<BoardState>>,
    Path((supplier, customer)): Path<(String, String)>,
) -> Result<Response, BoardError> {
    let supplier = token("supplier", &supplier)?;
    let customer = token("customer", &customer)?;
    let now = baton_runtime::now();
    let title = format!("{supplier} to {customer}");
    if let Some(notice) = state.rebuilding(&title, now) {
        return Ok(notice);
    }
    let pair = {
        let (supplier, customer) = (supplier.clone(), customer.clone());
        state.read(move |s| s.pair(supplier, customer, now)).await?
    };
    let body = pages::pair(&pair, &state.names(), now, &state.config.time_zone);
    Ok(page(
        StatusCode::OK,
        state.shell(&title, "pair", now).wrap(&body),
    ))
}

impl BoardState {
    fn pair(
        &self,
        supplier: Token,
        customer: Token,
        now: Timestamp,
    ) -> Result<pages::Pair, BoardError> {
        let views = &self.shared.views;
        let tz = &self.config.time_zone;
        let starts = day_starts(now, self.config.days, tz)?;
        let from = starts.first().copied();
        let scope = ComplianceScope {
            supplier: Some(supplier.clone()),
            customer: Some(customer.clone()),
            from,
            ..ComplianceScope::default()
        };
        let series: std::collections::BTreeMap<Timestamp, _> = views
            .compliance_series(&scope, &Bucketing::Day(tz.clone()), starts.len() + 1)?
            .unwrap_or_default()
            .into_iter()
            .collect();
        let days = starts
            .iter()
            .map(|start| (*start, series.get(start).cloned().unwrap_or_default()))
            .collect();
        // The pair's breaches in the window, from its own index: those
        // announced, and apart from them history loaded without paging.
        let worst_of = |announced| -> Result<Vec<_>, BoardError> {
            let mut worst =
                views.pair_breaches(&supplier, &customer, announced, from, BREACH_SCAN)?;
            worst.sort_by(|a, b| {
                (b.overrun(now), &a.handoff_id).cmp(&(a.overrun(now), &b.handoff_id))
            });
            worst.truncate(WORST);
            Ok(worst)
        };
        let worst = worst_of(true)?;
        let history = worst_of(false)?;
        let cell = views
            .matrix(from, None)?
            .remove(&(supplier.to_string(), customer.to_string()))
            .unwrap_or_default();
        Ok(pages::Pair {
            supplier,
            customer,
            days,
            worst,
            history,
            cell,
        })
    }
}

/// The start of each of the last `days` calendar days in `tz`, oldest first.
fn day_starts(now: Timestamp, days: u32, tz: &TimeZone) -> Result<Vec<Timestamp>, BoardError> {
    let time = BoardError::Calendar;
    let today = jiff::Timestamp::from_millisecond(now.0)
        .map_err(time)?
        .to_zoned(tz.clone())
        .start_of_day()
        .map_err(time)?;
    let mut day = today
        .checked_sub(jiff::Span::new().days(i64::from(days.max(1) - 1)))
        .map_err(time)?;
    let mut starts = Vec::with_capacity(days as usize);
    while day <= today {
        starts.push(Timestamp(day.timestamp().as_millisecond()));
        // Start of the next day, even across a DST change.
        day = day
            .checked_add(jiff::Span::new().days(1))
            .and_then(|d| d.start_of_day())
            .map_err(time)?;
    }
    Ok(starts)
}

async fn handoff(
    State(state): State<Arc<BoardState>>,
    Path(id): Path<String>,
) -> Result<Response, BoardError> {
    let id = token("hand-off", &id)?;
    let now = baton_runtime::now();
    let title = format!("hand-off {id}");
    if let Some(notice) = state.rebuilding(&title, now) {
        return Ok(notice);
    }
    let stored = {
        let id = id.clone();
        state
            .read(move |s| {
                Ok((
                    s.shared.views.handoff(&id)?,
                    s.shared.views.is_retired(&id)?,
                ))
            })
            .await?
    };
    let catalog = &state.shared.catalog;
    let (view, events, unread) = match stored {
        (Some(view), _) => match crate::timeline::events(&state.client, &view).await {
            Ok(events) => (view, events, None),
            Err(e) => {
                tracing::warn!(handoff = %id, error = %e, "hand-off page without the log's events");
                (view, Vec::new(), Some(e.to_string()))
            }
        },
        (None, true) => {
            let (view, events) = crate::timeline::retired(&state.client, catalog, &id).await?;
            (view, events, None)
        }
        (None, false) => {
            return Err(BoardError::NotFound(format!(
                "no hand-off {id} in the views"
            )))
        }
    };
    let clocks = clocks_of(catalog, &view.handoff, &view.events, now);
    let story = match &unread {
        None => pages::Story::FromLog(&events),
        Some(why) => pages::Story::AsClocksRead { why },
    };
    let body = pages::handoff(&view, story, &clocks, catalog, now, &state.config.time_zone);
    let mut shell = state.shell(&title, "handoff", now);
    shell.subject = Some(id.as_str());
    Ok(page(StatusCode::OK, shell.wrap(&body)))
}

/// Static assets change only with the binary: cached for an hour.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", include_str!("board.css"))
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("board.js"))
}

/// How long the event stream waits before telling a browser the views
/// changed again: bursts of batches become one refresh.
pub const CHANGE_COALESCE: Duration = Duration::from_millis(250);

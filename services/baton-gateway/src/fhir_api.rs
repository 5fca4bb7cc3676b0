//! The FHIR routes on the gateway's HTTP side port: `POST /fhir/Task`,
//! `PUT /fhir/Task/{id}`, `GET /fhir/Task/{id}`, and `POST /fhir/notification`
//! for topic-based subscription notifications (R4B/R5 `SubscriptionStatus`,
//! or the R4 backport's `Parameters`) with full-resource payloads, or
//! id-only ones whose Tasks are fetched from `--fhir-server`. A gap in
//! a subscription's event numbers means Tasks were lost on the way: it is
//! counted, logged and holds `/readyz` not ready until the gateway restarts.

use std::{collections::HashMap, sync::Arc};

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use baton_proto::v1::{self, query_client::QueryClient};
use serde_json::{json, Value};
use tonic::transport::Channel;

use crate::{
    fhir::{self, Refused, Task},
    handle::{Failure, Handler, INGEST_FAULT},
};

/// What the FHIR routes share.
#[derive(Debug, Clone)]
pub struct FhirApi {
    pub handler: Handler,
    pub query: QueryClient<Channel>,
    /// The last event number seen per subscription.
    pub seen: Arc<std::sync::Mutex<HashMap<String, u64>>>,
    /// Where the Tasks of id-only notifications are fetched from.
    pub source: Option<crate::fhir_fetch::TaskSource>,
}

/// The routes, to merge into the side port.
pub fn router(api: FhirApi) -> Router {
    Router::new()
        .route("/fhir/Task", post(create))
        .route("/fhir/Task/{id}", get(read).put(update))
        .route("/fhir/notification", post(notification))
        .with_state(Arc::new(api))
}

fn fhir_json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/fhir+json"),
        )],
        body.to_string(),
    )
        .into_response()
}

fn refused(r: &Refused) -> Response {
    let status = StatusCode::from_u16(r.http).unwrap_or(StatusCode::BAD_REQUEST);
    fhir_json(status, &r.outcome())
}

fn parse_task(body: &[u8]) -> Result<Task, Refused> {
    serde_json::from_slice(body).map_err(|e| Refused {
        http: 400,
        expression: "Task".to_owned(),
        diagnostics: format!("not a Task: {e}"),
    })
}

async fn create(State(api): State<Arc<FhirApi>>, body: Bytes) -> Response {
    match parse_task(&body) {
        Ok(task) => api.apply(&task, None).await,
        Err(r) => refused(&r),
    }
}

async fn update(State(api): State<Arc<FhirApi>>, Path(id): Path<String>, body: Bytes) -> Response {
    match parse_task(&body) {
        Ok(task) => api.apply(&task, Some(&id)).await,
        Err(r) => refused(&r),
    }
}

async fn read(State(api): State<Arc<FhirApi>>, Path(id): Path<String>) -> Response {
    match api.handoff(&id).await {
        Ok(Some(h)) => fhir_json(StatusCode::OK, &fhir::task_of(&h)),
        Ok(None) => fhir_json(
            StatusCode::NOT_FOUND,
            &fhir::outcome(
                "error",
                "not-found",
                &format!("no Task {id} in Baton"),
                None,
            ),
        ),
        Err(status) => unavailable(&format!("the views cannot be read: {}", status.message())),
    }
}

fn unavailable(why: &str) -> Response {
    fhir_json(
        StatusCode::SERVICE_UNAVAILABLE,
        &fhir::outcome("error", "transient", why, None),
    )
}

impl FhirApi {
    async fn handoff(&self, id: &str) -> Result<Option<v1::Handoff>, tonic::Status> {
        let mut query = self.query.clone();
        match query
            .get_handoff(v1::GetHandoffRequest {
                handoff_id: id.to_owned(),
            })
            .await
        {
            Ok(r) => Ok(r.into_inner().handoff),
            Err(s)
                if s.code() == tonic::Code::NotFound
                    || s.code() == tonic::Code::InvalidArgument =>
            {
                Ok(None)
            }
            Err(s) => Err(s),
        }
    }

    /// Brings the Task's hand-off to what `task` says; `path_id` is the id a
    /// PUT named, which must be the Task's own.
    async fn apply(&self, task: &Task, path_id: Option<&str>) -> Response {
        let id = match fhir::handoff_id(task, &self.handler.ids) {
            Ok(id) => id,
            Err(r) => return refused(&r),
        };
        if let Some(path) = path_id.filter(|p| *p != id) {
            return refused(&Refused {
                http: 400,
                expression: "Task.identifier".to_owned(),
                diagnostics: format!("the Task's identifier makes it {id}, not {path}"),
            });
        }
        let known = match self.handoff(&id).await {
            Ok(h) => h.as_ref().map(fhir::known),
            Err(s) => return unavailable(&format!("the views cannot be read: {}", s.message())),
        };
        let now = jiff::Timestamp::now().as_millisecond();
        let events = match fhir::plan(
            task,
            known.as_ref(),
            &self.handler.mapping,
            &self.handler.ids,
            now,
        ) {
            Ok(events) => events,
            Err(r) => return refused(&r),
        };
        for event in events {
            match self.handler.append(event).await {
                Ok(()) => {}
                Err(Failure::Refused(status)) => {
                    return refused(&Refused {
                        http: 422,
                        expression: "Task".to_owned(),
                        diagnostics: status.message().to_owned(),
                    })
                }
                Err(Failure::Unavailable(reason)) => {
                    self.handler.readiness.fault(
                        INGEST_FAULT,
                        format!("ingest cannot store events: {reason}"),
                    );
                    return unavailable(&format!("not stored, send again: {reason}"));
                }
            }
        }
        self.handler.readiness.clear(INGEST_FAULT);
        let status = if known.is_none() {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let mut response = fhir_json(
            status,
            &json!({"resourceType": "Task", "id": id, "status": task.status, "intent": "order"}),
        );
        if let Ok(location) = HeaderValue::from_str(&format!("/fhir/Task/{id}")) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        response
    }
}

async fn notification(State(api): State<Arc<FhirApi>>, body: Bytes) -> Response {
    let bundle: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return fhir_json(
                StatusCode::BAD_REQUEST,
                &fhir::outcome(
                    "error",
                    "invalid",
                    &format!("not JSON: {e}"),
                    Some("Bundle"),
                ),
            )
        }
    };
    let notice = match crate::fhir_notice::read(&bundle) {
        Ok(n) => n,
        Err(r) => return refused(&r),
    };
    api.check_gap(&notice);
    let tasks = if notice.tasks.is_empty() && !notice.focus.is_empty() {
        match api.fetch_focus(&notice.focus).await {
            Ok(tasks) => tasks,
            Err(answer) => return answer,
        }
    } else {
        notice.tasks
    };
    for task in &tasks {
        let answer = api.apply(task, None).await;
        if !answer.status().is_success() {
            return answer;
        }
    }
    fhir_json(
        StatusCode::OK,
        &fhir::outcome(
            "information",
            "informational",
            &format!("{} Tasks taken", tasks.len()),
            None,
        ),
    )
}

impl FhirApi {
    /// The Tasks an id-only notification names, fetched from the FHIR
    /// server; or the answer that refuses the notification.
    async fn fetch_focus(&self, focus: &[String]) -> Result<Vec<Task>, Response> {
        let Some(source) = &self.source else {
            return Err(refused(&Refused {
                http: 422,
                expression: "Bundle.entry".to_owned(),
                diagnostics: "an id-only notification, and no --fhir-server to fetch its Tasks from: subscribe with full-resource content".to_owned(),
            }));
        };
        let mut tasks = Vec::with_capacity(focus.len());
        for reference in focus {
            match source.fetch(reference).await {
                Ok(task) => tasks.push(task),
                Err(crate::fhir_fetch::FetchError::Refused(r)) => return Err(refused(&r)),
                Err(e @ crate::fhir_fetch::FetchError::Unavailable { .. }) => {
                    tracing::warn!(error = %e, "a notification's Task could not be fetched; it is to be sent again");
                    self.handler.metrics.fhir_fetch_failed();
                    return Err(unavailable(&format!("not taken, send again: {e}")));
                }
            }
        }
        Ok(tasks)
    }
}

impl FhirApi {
    /// Counts and reports event numbers the subscription skipped.
    fn check_gap(&self, notice: &crate::fhir_notice::Notice) {
        // A heartbeat carries no events, only how many there have been.
        let (lowest, highest) = match (notice.numbers.iter().min(), notice.numbers.iter().max()) {
            (Some(&lo), Some(&hi)) => (lo, hi),
            _ => match notice.since_start {
                Some(n) => (n + 1, n),
                None => return,
            },
        };
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let last = seen.get(&notice.subscription).copied();
        if let Some(last) = last {
            if lowest > last + 1 {
                let missed = lowest - last - 1;
                tracing::error!(subscription = %notice.subscription, from = last + 1, to = lowest - 1, "FHIR subscription skipped events: Tasks were lost on the way");
                self.handler.metrics.fhir_gap(missed);
                self.handler.readiness.fault(
                    format!("fhir-gap:{}", notice.subscription),
                    format!(
                        "FHIR subscription {} skipped events {}..{}: Tasks may be missing; resynchronise and restart the gateway",
                        notice.subscription,
                        last + 1,
                        lowest - 1
                    ),
                );
            }
        }
        seen.insert(notice.subscription.clone(), highest.max(last.unwrap_or(0)));
    }
}

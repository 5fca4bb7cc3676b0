//! Fetching the Tasks an id-only subscription notification names, from the
//! one FHIR server the operator configured (`--fhir-server`). A focus that
//! points anywhere else is refused, never fetched: a notification must not
//! be able to make the gateway call a server of its choosing.

use std::time::Duration;

use baton_runtime::http_client::{Client, ClientError, RequestError};
use bytes::Bytes;
use http_body_util::Full;

use crate::fhir::{Refused, Task};

/// Largest Task read from the server, in bytes.
const MAX_TASK_BYTES: usize = 1 << 20;

/// Where Tasks are fetched from.
#[derive(Debug, Clone)]
pub struct TaskSource {
    /// The server's base URL, without a trailing slash.
    base: String,
    client: Client,
    token: Option<String>,
    timeout: Duration,
}

/// Why a Task could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The notification is at fault (a focus elsewhere, a Task that does not
    /// exist or is not one): answered with this refusal.
    #[error(transparent)]
    Refused(Refused),
    /// The server could not answer now: the notification is to be sent again.
    #[error("the FHIR server {base}: {reason}")]
    Unavailable { base: String, reason: String },
}

/// Why the source cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("--fhir-server {url:?} is not an http(s) URL")]
    Url { url: String },
    #[error(
        "--fhir-server {url:?} is https: give --fhir-server-ca, the CA that signs its certificate"
    )]
    NoCa { url: String },
    #[error("--fhir-server-ca: {0}")]
    Client(#[from] ClientError),
}

impl TaskSource {
    pub fn new(
        base: &str,
        ca: Option<&std::path::Path>,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<TaskSource, SourceError> {
        let base = base.trim_end_matches('/').to_owned();
        let uri: http::Uri = base
            .parse()
            .map_err(|_| SourceError::Url { url: base.clone() })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(SourceError::Url { url: base });
        }
        let client = match Client::for_url(&uri, ca) {
            Err(ClientError::NoCa) => return Err(SourceError::NoCa { url: base }),
            other => other?,
        };
        Ok(TaskSource {
            client,
            base,
            token,
            timeout,
        })
    }

    /// The URL of the Task `reference` names, if it is one of this server's:
    /// `Task/{id}`, or `{base}/Task/{id}`, with a FHIR id (1-64 of
    /// `A-Za-z0-9-.`), optionally `/_history/{version}`.
    pub fn url_of(&self, reference: &str) -> Result<String, Refused> {
        let refused = |why: &str| Refused {
            http: 422,
            expression: "SubscriptionStatus.notificationEvent.focus".to_owned(),
            diagnostics: format!("{why}: {reference:?}"),
        };
        let relative = match reference.strip_prefix(&self.base) {
            Some(rest) => rest
                .strip_prefix('/')
                .ok_or_else(|| refused("not a Task of the configured FHIR server"))?,
            None if reference.contains("://") => {
                return Err(refused("not a Task of the configured FHIR server"))
            }
            None => reference,
        };
        let mut parts = relative.split('/');
        let (Some("Task"), Some(id)) = (parts.next(), parts.next()) else {
            return Err(refused("not a Task reference"));
        };
        let is_fhir_id = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !is_fhir_id {
            return Err(refused("not a FHIR id"));
        }
        match (parts.next(), parts.next(), parts.next()) {
            (None, ..) => Ok(format!("{}/Task/{id}", self.base)),
            (Some("_history"), Some(v), None) if v.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                Ok(format!("{}/Task/{id}/_history/{v}", self.base))
            }
            _ => Err(refused("not a Task reference")),
        }
    }

    /// The Task `reference` names, as the server holds it now.
    pub async fn fetch(&self, reference: &str) -> Result<Task, FetchError> {
        let url = self.url_of(reference).map_err(FetchError::Refused)?;
        let unavailable = |reason: String| FetchError::Unavailable {
            base: self.base.clone(),
            reason,
        };
        let mut request =
            http::Request::get(&url).header(http::header::ACCEPT, "application/fhir+json");
        if let Some(token) = &self.token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| unavailable(e.to_string()))?;
        let answer = self
            .client
            .send(request, MAX_TASK_BYTES, self.timeout)
            .await
            .map_err(|e: RequestError| unavailable(e.to_string()))?;
        let status = answer.status();
        if status == http::StatusCode::NOT_FOUND || status == http::StatusCode::GONE {
            return Err(FetchError::Refused(Refused {
                http: 422,
                expression: "SubscriptionStatus.notificationEvent.focus".to_owned(),
                diagnostics: format!("the FHIR server has no {reference} ({status})"),
            }));
        }
        if !status.is_success() {
            return Err(unavailable(format!("GET {url} answered {status}")));
        }
        let task: Task = serde_json::from_slice(answer.body()).map_err(|e| {
            FetchError::Refused(Refused {
                http: 422,
                expression: "Task".to_owned(),
                diagnostics: format!("{reference} as the FHIR server sent it is not a Task: {e}"),
            })
        })?;
        if task.resource_type != "Task" {
            return Err(FetchError::Refused(Refused {
                http: 422,
                expression: "Task".to_owned(),
                diagnostics: format!("{reference} is a {}, not a Task", task.resource_type),
            }));
        }
        Ok(task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> TaskSource {
        TaskSource::new(
            "http://ehr.example:8080/fhir/",
            None,
            None,
            Duration::from_secs(1),
        )
        .expect("a source")
    }

    #[test]
    fn only_tasks_of_the_configured_server_are_fetched() {
        let s = source();
        assert_eq!(
            s.url_of("Task/t-1").as_deref(),
            Ok("http://ehr.example:8080/fhir/Task/t-1")
        );
        assert_eq!(
            s.url_of("http://ehr.example:8080/fhir/Task/t-1/_history/3")
                .as_deref(),
            Ok("http://ehr.example:8080/fhir/Task/t-1/_history/3")
        );
        for elsewhere in [
            "http://attacker.example/fhir/Task/t-1",
            "http://ehr.example:8080/fhirx/Task/t-1",
            "http://ehr.example:8080/fhir/../admin",
            "Task/../../admin",
            "Task/t 1",
            "Task/",
            "Patient/p-1",
            "Task/t-1/$everything",
            "Task/t-1/_history/3/x",
            "//attacker.example/Task/t-1",
        ] {
            let refused = s.url_of(elsewhere).expect_err(elsewhere);
            assert_eq!(refused.http, 422, "{elsewhere}");
            assert!(refused.diagnostics.contains(elsewhere), "{refused}");
        }
    }

    #[test]
    fn the_server_must_be_an_http_url() {
        for bad in ["ehr.example/fhir", "ftp://ehr.example/fhir", "http://"] {
            assert!(
                TaskSource::new(bad, None, None, Duration::from_secs(1)).is_err(),
                "{bad}"
            );
        }
        let no_ca = TaskSource::new(
            "https://ehr.example/fhir",
            None,
            None,
            Duration::from_secs(1),
        )
        .expect_err("https without a CA");
        assert!(matches!(no_ca, SourceError::NoCa { .. }));
        assert!(no_ca.to_string().contains("--fhir-server-ca"), "{no_ca}");
    }
}

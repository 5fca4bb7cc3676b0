//! (8) Notify: `baton-notify`, in this process, delivering breaches to a
//! webhook receiver the bench runs on loopback. The delay a person waits
//! is from the deadline (computed from the events the bench sent, as the
//! breach delay is) to the webhook's arrival; the rate is how many breaches
//! a second reach the receiver when a burst of them runs out at once.

use std::{
    net::SocketAddr,
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream;
use baton_proto::v1::{self, Priority};
use tokio_util::sync::CancellationToken;

use crate::{
    load,
    stats::{Report, Samples},
    traffic::{self, now_millis, timestamp},
};

/// A breach as the receiver got it.
#[derive(Debug, Clone)]
struct Arrival {
    handoff: String,
    deadline_ms: i64,
    arrived_ms: i64,
}

type Arrivals = Arc<Mutex<Vec<Arrival>>>;

/// Notify running against the bench's nats-server, and its receiver.
pub struct Notify {
    stop: CancellationToken,
    got: Arrivals,
    _dir: tempfile::TempDir,
}

impl Drop for Notify {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The webhook: records each breach's hand-off, deadline and arrival, and
/// answers 200.
async fn receiver(got: Arrivals) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let got = got.clone();
            async move {
                let arrived_ms = now_millis();
                if let Ok(notice) = serde_json::from_slice::<serde_json::Value>(&body) {
                    let deadline = notice["deadline"]
                        .as_str()
                        .and_then(|d| d.parse::<jiff::Timestamp>().ok());
                    if let (Some(handoff), Some(deadline)) = (notice["handoff"].as_str(), deadline)
                    {
                        got.lock().unwrap_or_else(|p| p.into_inner()).push(Arrival {
                            handoff: handoff.to_owned(),
                            deadline_ms: deadline.as_millisecond(),
                            arrived_ms,
                        });
                    }
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

impl Notify {
    /// Starts the receiver and notify (one route: every repair-response
    /// breach to the webhook) and waits for notify's consumer.
    pub async fn start(nats_url: &str, js: &jetstream::Context) -> anyhow::Result<Notify> {
        let got = Arrivals::default();
        let hook = receiver(got.clone()).await?;
        let dir = tempfile::tempdir()?;
        let routes = write_routes(dir.path(), hook)?;
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let config = baton_notify::Config {
            nats_url: nats_url.to_owned(),
            http_listen: http.local_addr()?,
            routes,
            routes_check: Duration::from_secs(3_600),
            board_url: "http://127.0.0.1:9452".to_owned(),
            attempts: 3,
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            ack_key: None,
            ack_url: None,
            ack_link_lifetime: Duration::from_secs(3_600),
            ingest_url: "http://127.0.0.1:50051".to_owned(),
            ingest_ca: None,
            ingest_cert: None,
            ingest_key: None,
            tls: Default::default(),
            http: Default::default(),
            nats: Default::default(),
            otlp: Default::default(),
        };
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            if let Err(e) = baton_notify::run(config, http, stopped).await {
                eprintln!("baton-bench: notify stopped: {e}");
            }
        });
        let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let ready = match js.get_stream(baton_log::subject::SLA_STREAM).await {
                Ok(stream) => stream
                    .consumer_info(baton_notify::deliver::CONSUMER)
                    .await
                    .is_ok(),
                Err(_) => false,
            };
            if ready {
                break;
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < give_up,
                "notify's consumer did not appear"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Notify {
            stop,
            got,
            _dir: dir,
        })
    }

    /// Waits (up to `give_up`) for `count` breaches of hand-offs starting
    /// with `prefix`; their delays from the deadline, and how many never came.
    async fn delays(&self, prefix: &str, count: usize, give_up: Duration) -> (Vec<Arrival>, usize) {
        let until = tokio::time::Instant::now() + give_up;
        loop {
            let got: Vec<Arrival> = self
                .got
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter(|a| a.handoff.starts_with(prefix))
                .cloned()
                .collect();
            if got.len() >= count || tokio::time::Instant::now() > until {
                let missing = count.saturating_sub(got.len());
                return (got, missing);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The breach clocks `load::breach_delay` set with `tag` have run out:
    /// how long after each deadline its webhook arrived.
    pub async fn report_delay(&self, report: &mut Report, tag: &str, count: usize, label: &str) {
        let (arrivals, missing) = self
            .delays(&format!("brk-{tag}-"), count, Duration::from_secs(30))
            .await;
        let mut delays = Samples::with_capacity(arrivals.len());
        for a in &arrivals {
            delays.push_micros(((a.arrived_ms - a.deadline_ms).max(0) as u64) * 1000);
        }
        report.add(
            "8",
            &format!("breach to webhook p50 with {label} open"),
            delays.quantile_ms(0.5),
            "ms",
            &format!("{} breaches, deadline to arrival", arrivals.len()),
        );
        report.add(
            "8",
            &format!("breach to webhook p99 with {label} open"),
            delays.quantile_ms(0.99),
            "ms",
            "target < 1 s at 10^5 clocks",
        );
        if missing > 0 {
            report.add(
                "8",
                &format!("breaches never delivered with {label} open"),
                missing as f64,
                "breaches",
                "",
            );
        }
    }

    /// A burst: `count` STAT repairs whose 10-minute promise ran out a
    /// second ago, published at once; breaches a second from the first
    /// event published to the last webhook's arrival (the projector's
    /// announcing included).
    pub async fn report_burst(
        &self,
        report: &mut Report,
        js: &jetstream::Context,
        count: usize,
    ) -> anyhow::Result<()> {
        let prefix = "burst-";
        let started = now_millis();
        let deadline = started - 1_000;
        let events = (0..count).map(|i| {
            let id = format!("{prefix}h{}", traffic::serial(i));
            let event = v1::HandoffEvent {
                event_id: "e0".into(),
                handoff_id: id.clone(),
                r#type: v1::EventType::Requested as i32,
                occurred_at: Some(timestamp(deadline - 10 * 60_000)),
                kind: "repair".into(),
                supplier: "engineering".into(),
                customer: "icu".into(),
                priority: Priority::Stat as i32,
                actor: "bench-burst".into(),
                version: 1,
                recorded_at: Some(timestamp(started)),
                ..Default::default()
            };
            (format!("baton.handoff.{id}.repair.engineering.icu"), event)
        });
        load::publish_recorded(js, events, 256).await?;
        let (arrivals, missing) = self.delays(prefix, count, Duration::from_secs(60)).await;
        let last = arrivals
            .iter()
            .map(|a| a.arrived_ms)
            .max()
            .unwrap_or(started);
        let seconds = ((last - started).max(1)) as f64 / 1_000.0;
        report.add(
            "8",
            &format!("breaches delivered to a webhook, burst of {count}"),
            arrivals.len() as f64 / seconds,
            "breaches/s",
            "publish to last arrival; the projector's announcing included",
        );
        if missing > 0 {
            report.add(
                "8",
                "burst breaches never delivered",
                missing as f64,
                "breaches",
                "",
            );
        }
        Ok(())
    }
}

fn write_routes(dir: &Path, hook: SocketAddr) -> anyhow::Result<std::path::PathBuf> {
    let secret = dir.join("hook.key");
    std::fs::write(&secret, "bench-webhook-key-00000001")?;
    let routes = dir.join("routes.json");
    let text = serde_json::json!({
        "channels": {"hook": {"webhook": {"url": format!("http://{hook}/hook"), "secret_file": secret, "timeout": "5s"}}},
        "routes": [{"name": "breaches", "match": {"signals": ["breach"], "policy": ["repair-response"]}, "deliver": ["hook"]}]
    });
    std::fs::write(&routes, text.to_string())?;
    Ok(routes)
}

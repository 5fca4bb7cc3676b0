//! Webhook receivers for notify's tests: real HTTP servers on free ports
//! that record each request (headers, body, arrival) and answer as told.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{eventually, Baton};

/// What a receiver got: each request's headers (lower-cased names), body
/// and arrival.
#[derive(Debug, Clone)]
pub struct Request {
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub at: Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// How a receiver answers.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// 500 to the first n requests, then 200.
    FailFirst(usize),
    /// Reads the request and never answers.
    Hang,
}

/// A webhook receiver on a free port.
pub async fn receiver(behaviour: Behaviour) -> (SocketAddr, Arc<Mutex<Vec<Request>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let got: Arc<Mutex<Vec<Request>>> = Arc::default();
    let record = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let record = record.clone();
            tokio::spawn(async move {
                let Some(request) = read_request(&mut stream).await else {
                    return;
                };
                let n = {
                    let mut got = record.lock().expect("lock");
                    got.push(request);
                    got.len()
                };
                let status = match behaviour {
                    Behaviour::FailFirst(k) if n <= k => "500 Internal Server Error",
                    Behaviour::FailFirst(_) => "200 OK",
                    Behaviour::Hang => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                };
                let answer =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (addr, got)
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Request> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&data[..end]).into_owned();
        let headers: Vec<(String, String)> = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        if data.len() >= end + 4 + length {
            let body = String::from_utf8_lossy(&data[end + 4..end + 4 + length]).into_owned();
            return Some(Request {
                headers,
                body,
                at: Instant::now(),
            });
        }
    }
}

/// Waits until notify's durable consumer of breaches, warnings,
/// escalations and corrections exists: it takes only signals announced
/// after that.
pub async fn consumer_ready(baton: &Baton) {
    consumer_ready_on(baton, "BATON_SLA", "baton-notify").await;
}

/// Waits until notify's durable consumer of disruptions exists.
pub async fn disruptions_consumer_ready(baton: &Baton) {
    consumer_ready_on(baton, "BATON_HANDOFFS", "baton-notify-disruptions").await;
}

async fn consumer_ready_on(baton: &Baton, stream: &str, consumer: &str) {
    let js = async_nats::jetstream::new(baton.nats_client().await);
    eventually(&format!("notify's consumer {consumer} on {stream}"), || {
        let js = js.clone();
        async move {
            let stream = js.get_stream(stream).await.ok()?;
            stream.consumer_info(consumer).await.ok().map(|_| ())
        }
    })
    .await;
}

//! (2h) HL7 v2 orders through the gateway: the same number of clients as
//! (2) each holding one MLLP connection and sending lab orders one at a
//! time, each waiting for its ACK (AA only once ingest stored the event),
//! against unary Append with ingest alone (2) in the same run.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use anyhow::Context;
use baton_gateway::mllp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Setup;
use crate::{
    cpu,
    services::{self, Running},
    stats::{rate, Report, Samples},
};

/// Runs (2h) against the ingest at `ingest`; `unary_alone` is (2)'s rate.
pub async fn hl7_orders(
    setup: &Setup<'_>,
    report: &mut Report,
    ingest: SocketAddr,
    unary_alone: f64,
) -> anyhow::Result<()> {
    let gateway = services::start_gateway(ingest).await?;
    let clock = cpu::CpuClock::start(setup.nats.pid());
    let messages = setup.args.events;
    let (sent, refused, elapsed, latency) =
        send_orders(gateway.addr, messages, setup.args.clients).await?;
    let cpu = clock.and_then(|c| c.per_event(sent));
    stop(gateway).await?;
    let per_sec = rate(sent, elapsed);
    report.add(
        "2h",
        "HL7 orders through the gateway (MLLP, ACK after ingest)",
        per_sec,
        "msgs/s",
        &format!("{} connections", setup.args.clients),
    );
    if refused > 0 {
        report.add("2h", "HL7 orders not accepted (AA)", refused as f64, "", "");
    }
    report.add(
        "2h",
        "HL7 order to ACK p99",
        latency.quantile_ms(0.99),
        "ms",
        "",
    );
    report.ratio(
        "2h",
        "HL7 through the gateway / unary Append alone (2)",
        per_sec,
        unary_alone,
        "target >= 70%",
    );
    super::rows::report_cpu_of(report, "2h", "HL7 through the gateway", cpu);
    Ok(())
}

async fn stop(gateway: Running) -> anyhow::Result<()> {
    gateway.stop().await
}

/// `clients` connections sending `messages` orders in all; (accepted,
/// not accepted, elapsed, order-to-ACK latency).
async fn send_orders(
    gateway: SocketAddr,
    messages: usize,
    clients: usize,
) -> anyhow::Result<(usize, usize, Duration, Samples)> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = tokio::time::Instant::now();
    let ordered = (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(4))
        .strftime("%Y%m%d%H%M%S+0000")
        .to_string();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (next, ordered) = (next.clone(), ordered.clone());
        tasks.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(gateway).await?;
            stream.set_nodelay(true)?;
            let mut latency = Samples::default();
            let (mut accepted, mut refused) = (0, 0);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= messages {
                    break;
                }
                let message = order(i, &ordered);
                let from = tokio::time::Instant::now();
                stream.write_all(&mllp::frame(message.as_bytes())).await?;
                let ack = read_ack(&mut stream).await?;
                latency.push(from.elapsed());
                if ack.windows(7).any(|w| w == b"MSA|AA|") {
                    accepted += 1;
                } else {
                    refused += 1;
                }
            }
            anyhow::Ok((accepted, refused, latency))
        }));
    }
    let (mut accepted, mut refused, mut latency) = (0, 0, Samples::default());
    for task in tasks {
        let (a, r, l) = task.await.context("an MLLP client")??;
        accepted += a;
        refused += r;
        latency.extend(l);
    }
    Ok((accepted, refused, started.elapsed(), latency))
}

/// A routine blood count for ward 5, its order number unique to `i`. The
/// numbers carry a letter every six digits: the control id goes into no
/// id, but the placer number is hashed, and both stay plain text here.
fn order(i: usize, at: &str) -> String {
    let n = baton_domain::privacy::id_number(i as u64);
    format!(
        "MSH|^~\\&|OE|BENCH|LIS|BENCH|{at}||ORM^O01|B{n}|P|2.5\rORC|NW|BP{n}^OE|||SC||^^^^^R||{at}||||WARD5\rOBR|1|BP{n}^OE||CBC^Blood count\r"
    )
}

async fn read_ack(stream: &mut tokio::net::TcpStream) -> anyhow::Result<Vec<u8>> {
    let mut deframer = mllp::Deframer::new(64 * 1024);
    let mut buf = [0u8; 1024];
    loop {
        if let Some(frame) = deframer.next_frame()? {
            return Ok(frame);
        }
        let n = stream.read(&mut buf).await?;
        anyhow::ensure!(n > 0, "the gateway closed the connection without an ACK");
        deframer.push(&buf[..n]);
    }
}

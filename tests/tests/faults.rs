//! Faults under load, against real processes: nats-server killed with
//! SIGKILL and restarted while clients keep appending, and the projector's
//! sled data dir damaged or deleted.

use baton_e2e::{load::*, *};
use baton_proto::v1::{self, query_client::QueryClient};

/// Clients appending at once.
const CLIENTS: usize = 4;
/// Events acknowledged between faults.
const BETWEEN_FAULTS: u64 = 150;
/// SIGKILLs of nats-server.
const FAULTS: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_under_load_loses_and_doubles_nothing() {
    let started = std::time::Instant::now();
    let mut baton = Baton::start().await;
    let ingest_addr = baton.ingest.as_ref().expect("ingest").addr;
    let load = Load::start(&[ingest_addr], CLIENTS, "nk");

    let mut unavailable_seen = 0;
    for _ in 0..FAULTS {
        load.wait_acknowledged(load.acknowledged() + BETWEEN_FAULTS)
            .await;
        baton.nats.kill();
        // While NATS is gone, ingest answers (UNAVAILABLE), it does not hang.
        unavailable_seen = load.wait_unavailable_beyond(unavailable_seen).await;
        let acknowledged_while_down = load.acknowledged();
        baton.nats.restart();
        load.wait_acknowledged(acknowledged_while_down + BETWEEN_FAULTS)
            .await;
    }
    let finished = load.finish().await;
    let tally = finished.tally.clone();

    let nats = baton.nats_client().await;
    let stream = read_stream(&nats).await;
    let audit = audit(&finished.acked, &stream);
    let projected = projected_exactly(&baton.query().await, &finished).await;

    // Every promise in the script is met: the figures count each hand-off once.
    let mut query = baton.query().await;
    let labs = finished
        .handoffs
        .iter()
        .filter(|(_, i, _)| is_lab(*i))
        .count() as u64;
    let repairs = finished.handoffs.len() as u64 - labs;
    let repair = compliance(&mut query, "repair-response").await;
    let lab = compliance(&mut query, "lab-turnaround").await;

    println!(
        "nats faults: {FAULTS} SIGKILLs of nats-server under load from {CLIENTS} clients; \
         {} events acknowledged ({} hand-offs), {} in the stream, {} projected, \
         {} lost, {} duplicated, {} misplaced; {} UNAVAILABLE answers, {} other retries, \
         {} resends answered as duplicates, {} hung appends; codes {:?}; {:.1}s",
        audit.acknowledged,
        finished.handoffs.len(),
        audit.in_stream,
        projected,
        audit.lost,
        audit.duplicated,
        audit.misplaced,
        Tally::get(&tally.unavailable),
        Tally::get(&tally.other_transient),
        Tally::get(&tally.duplicates_answered),
        Tally::get(&tally.hung),
        tally.codes(),
        started.elapsed().as_secs_f64(),
    );
    assert!(Tally::get(&tally.unavailable) >= FAULTS as u64);
    assert_eq!(Tally::get(&tally.hung), 0, "ingest answered every append");
    assert_eq!(audit.lost, 0, "acknowledged events missing from the stream");
    assert_eq!(audit.duplicated, 0, "events in the stream more than once");
    assert_eq!(
        audit.misplaced, 0,
        "acknowledged at a sequence that holds another event"
    );
    assert_eq!(audit.in_stream, audit.acknowledged);
    assert_eq!(projected, audit.acknowledged);
    assert_eq!((repair.total, repair.met), (repairs, repairs), "{repair:?}");
    assert_eq!((lab.total, lab.met), (labs, labs), "{lab:?}");
}

/// What the projector serves, for comparing before and after damage: every
/// hand-off of the load (all closed, so nothing moves with the wall clock),
/// each promise's figures and the breaches.
#[derive(Debug, PartialEq)]
struct Figures {
    handoffs: Vec<v1::Handoff>,
    compliance: Vec<v1::Compliance>,
    breaches: Vec<v1::Breach>,
}

async fn figures(addr: std::net::SocketAddr, ids: &[String]) -> Result<Figures, tonic::Status> {
    let mut query = QueryClient::new(channel(addr).await);
    let mut handoffs = Vec::new();
    for id in ids {
        let request = v1::GetHandoffRequest {
            handoff_id: id.clone(),
        };
        let handoff = query.get_handoff(request).await?.into_inner().handoff;
        handoffs.push(handoff.ok_or_else(|| tonic::Status::internal("no hand-off in the answer"))?);
    }
    let mut compliance = Vec::new();
    for policy in ["repair-response", "lab-turnaround", "consult-routine"] {
        let request = v1::GetComplianceRequest {
            policy_id: policy.into(),
            ..Default::default()
        };
        let figures = query.get_compliance(request).await?.into_inner().compliance;
        compliance
            .push(figures.ok_or_else(|| tonic::Status::internal("no figures in the answer"))?);
    }
    let breaches = query
        .list_breaches(v1::ListBreachesRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await?
        .into_inner()
        .breaches;
    Ok(Figures {
        handoffs,
        compliance,
        breaches,
    })
}

/// Waits until the projector at `addr` serves `expected`; fails with what it
/// served instead if it never does.
async fn wait_for_figures(
    what: &str,
    addr: std::net::SocketAddr,
    ids: &[String],
    expected: &Figures,
) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let served = figures(addr, ids).await;
        if served.as_ref().is_ok_and(|f| f == expected) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let summary = served.map(|f| {
                let totals: Vec<_> = f
                    .compliance
                    .iter()
                    .map(|c| (c.total, c.met, c.breached))
                    .collect();
                format!(
                    "{} hand-offs, compliance {totals:?}, {} breaches",
                    f.handoffs.len(),
                    f.breaches.len()
                )
            });
            panic!(
                "{what}: the projector serves other figures than before the damage: {summary:?}"
            );
        }
        // Polling a condition the projector reaches by itself (its rebuild).
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// How the projector met a damaged data dir.
#[derive(Debug)]
enum Met {
    /// It started and served (having rebuilt, or found nothing wrong).
    Served(Running),
    /// It refused to start, with this error.
    Refused(String),
}

/// Starts the projector on `data_dir`, and tells whether it serves or refuses.
async fn start_or_refuse(baton: &Baton) -> Met {
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let http = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = grpc.local_addr().expect("bound");
    let config = baton_projector::Config {
        nats_url: baton.nats.url(),
        listen: addr,
        http_listen: http.local_addr().expect("bound"),
        data_dir: baton.data_dir(),
        catalog: baton.catalog_path(),
        consumer: "baton-projector".into(),
        batch_size: 500,
        linger_ms: baton_projector::config::DEFAULT_LINGER_MS,
        partitions: 1,
        partition: 0,
        query_partitions: Vec::new(),
        query_tls: Default::default(),
        views_cache_mb: 64,
        announce_horizon: std::time::Duration::from_secs(3600),
        views_retention: std::time::Duration::ZERO,
        max_recorded_skew: std::time::Duration::from_secs(60),
        stall_after: std::time::Duration::from_secs(60),
        failpoints: Vec::new(),
        stream_replicas: 1,
        board: Default::default(),
        tls: Default::default(),
        grpc: Default::default(),
        http: Default::default(),
        nats: Default::default(),
        otlp: Default::default(),
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let mut task = tokio::spawn(baton_projector::run(config, grpc, http, stop.clone()));
    // Serving means the views opened: the health check answers SERVING.
    tokio::select! {
        ended = &mut task => match ended {
            Ok(Ok(())) => panic!("the projector stopped by itself"),
            Ok(Err(e)) => Met::Refused(e.to_string()),
            Err(e) => Met::Refused(format!("panicked: {e}")),
        },
        () = wait_serving(addr, "baton.v1.Query") => {
            Met::Served(Running::new(addr, stop, tokio::spawn(async move {
                if let Ok(Err(e)) = task.await {
                    panic!("projector failed: {e}");
                }
            })))
        }
    }
}

fn dump(dir: &std::path::Path) -> Vec<baton_views::store::Entry> {
    let version = baton_domain::Catalog::from_json(TEST_CATALOG)
        .expect("catalog")
        .version()
        .to_owned();
    let (views, _) = baton_views::Views::open(dir, &version).expect("open the views");
    views.dump().expect("dump")
}

/// Ways a data dir gets damaged. Each returns what it did.
fn damage(kind: &str, dir: &std::path::Path) -> String {
    use std::io::{Seek, SeekFrom, Write};
    let db = dir.join("db");
    let len = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    match kind {
        "deleted" => {
            std::fs::remove_dir_all(dir).expect("delete the data dir");
            "data dir deleted".into()
        }
        "emptied db" => {
            std::fs::write(&db, b"").expect("truncate");
            format!("db truncated from {len} bytes to 0")
        }
        "half db" => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&db)
                .expect("open db");
            file.set_len(len / 2).expect("truncate");
            format!("db truncated from {len} to {} bytes", len / 2)
        }
        "garbage db" => {
            let mut seed: u64 = 0x0bad_5eed;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (seed >> 56) as u8
                })
                .collect();
            std::fs::write(&db, bytes).expect("overwrite");
            format!("db's {len} bytes replaced with noise")
        }
        "flipped bytes" => {
            // Every 512th byte inverted: data pages and their checksums alike.
            let mut bytes = std::fs::read(&db).expect("read db");
            for b in bytes.iter_mut().step_by(512) {
                *b = !*b;
            }
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .open(&db)
                .expect("open db");
            file.seek(SeekFrom::Start(0)).expect("seek");
            file.write_all(&bytes).expect("write");
            format!("every 512th byte of db's {len} inverted")
        }
        "garbage conf" => {
            std::fs::write(dir.join("conf"), b"\xffnot a sled config\x00").expect("conf");
            "conf overwritten".into()
        }
        "snapshot deleted" => {
            let mut removed = 0;
            for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
                if entry.file_name().to_string_lossy().starts_with("snap.") {
                    std::fs::remove_file(entry.path()).expect("remove snapshot");
                    removed += 1;
                }
            }
            format!("{removed} snapshot files deleted")
        }
        other => panic!("no damage called {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_or_deleted_views_are_never_served_and_are_rebuilt() {
    let started = std::time::Instant::now();
    let mut baton = Baton::start().await;
    let ingest_addr = baton.ingest.as_ref().expect("ingest").addr;
    // A breached repair among them, so the breach list is not empty.
    let mut ingest = baton.ingest().await;
    let t0 = now_millis() - 120 * 60_000;
    ingest
        .append(append(requested(
            "late-lift",
            "repair",
            "engineering",
            "ed",
            v1::Priority::Routine,
            t0,
        )))
        .await
        .expect("requested");
    ingest
        .append(append(later(
            "late-lift",
            v1::EventType::Completed,
            t0 + 60 * 60_000,
        )))
        .await
        .expect("completed an hour later");
    let load = Load::start(&[ingest_addr], 2, "vd");
    load.wait_acknowledged(300).await;
    let finished = load.finish().await;
    let mut ids: Vec<String> = finished
        .handoffs
        .iter()
        .map(|(id, _, _)| id.clone())
        .collect();
    ids.push("late-lift".into());
    projected_exactly(&baton.query().await, &finished).await;
    let mut query = baton.query().await;
    projected(&mut query, "late-lift", 2).await;

    let before = figures(baton.projector.as_ref().expect("projector").addr, &ids)
        .await
        .expect("figures before the damage");
    assert_eq!(before.breaches.len(), 1, "{:?}", before.breaches);
    let nats = baton.nats_client().await;
    let announced = count_messages(&nats, "BATON_SLA", "baton.sla.>").await;
    baton.projector.take().expect("projector").stop().await;
    let clean = dump(&baton.data_dir());

    let mut outcomes = Vec::new();
    for kind in [
        "deleted",
        "emptied db",
        "half db",
        "garbage db",
        "flipped bytes",
        "garbage conf",
        "snapshot deleted",
    ] {
        let what = damage(kind, &baton.data_dir());
        let outcome = match start_or_refuse(&baton).await {
            Met::Served(projector) => {
                wait_for_figures(kind, projector.addr, &ids, &before).await;
                projector.stop().await;
                "served the same figures".to_owned()
            }
            // A damaged store is the views' own business: discard and
            // rebuild, never make an operator clear it by hand.
            Met::Refused(error) => panic!("{kind}: refused to start ({error})"),
        };
        assert!(
            dump(&baton.data_dir()) == clean,
            "{kind}: the views differ from before the damage"
        );
        println!("views damage: {what}: {outcome}");
        outcomes.push(outcome);
    }
    let after = count_messages(&nats, "BATON_SLA", "baton.sla.>").await;
    assert_eq!(after, announced, "no breach was announced twice");
    println!(
        "views damage: {} kinds of damage, {} hand-offs and {} events compared, {:.1}s",
        outcomes.len(),
        ids.len(),
        finished.acked.len() + 2,
        started.elapsed().as_secs_f64()
    );
}

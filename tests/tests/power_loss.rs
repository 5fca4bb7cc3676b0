//! Power cuts under load: what Baton's configurations keep of what they
//! acknowledged when the power goes out.
//!
//! nats-server and the projector keep their stores on a lossy FUSE
//! filesystem (`baton_lossyfs`): at a power cut every process on the machine
//! is SIGKILLed and everything no fsync covered is gone, as it would be from
//! a page cache. Scenarios 1 and 3 run nats-server's default `sync_interval`
//! and must lose acknowledged events (else the filesystem is not doing its
//! job); 2, 4 and 5 run the `sync_interval: always` Baton ships and must
//! lose, double and misplace none; 6 holds every client's OK against the
//! stream after those. Each scenario prints one line of figures, and the run
//! ends with them as a table (docs/reliability-power-loss.md is copied from
//! it), with the cost of `always` measured beside.
//!
//! Its own runner (`harness = false`): the binary also runs as ingest or
//! the projector when started with `child-ingest` or `child-projector`.
//! Arguments as for a test binary: names to filter on, `--exact`, `--list`.
//! `BATON_POWER_SEED` repeats an earlier run's draws of where writes tear
//! (which write was the last one still depends on timing).

use std::{
    collections::BTreeMap,
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
    process::ExitCode,
    time::{Duration, Instant},
};

use baton_e2e::{
    connect_cluster,
    power::{
        announcements, child_main, read_events, resend_all, resend_lost, until, Census, Figures,
        Machine, PowerLoad, Service, WITHIN,
    },
    TEST_CATALOG,
};
use baton_lossyfs::Outage;
use baton_proto::v1;
use baton_testkit::{ClusterStorage, NatsCluster, NatsServer, Storage};
use futures::StreamExt;

/// Every scenario must end within this, two cores or not.
const LIMIT: Duration = Duration::from_secs(60);
/// Clients appending at once.
const CLIENTS: usize = 4;
/// Events acknowledged between power cuts.
const BETWEEN_CUTS: usize = 250;

/// What the scenarios with `sync_interval: always` saw of the clients'
/// answers, for scenario 6.
#[derive(Debug, Clone, Copy, Default)]
struct Truth {
    runs: usize,
    acknowledged: usize,
    found: usize,
    exact: bool,
    retried: usize,
    retried_once: usize,
    duplicate_after_retry: usize,
}

impl Truth {
    fn of(census: &Census, acks: &[baton_e2e::power::Ack], runs: usize) -> Truth {
        Truth {
            runs,
            acknowledged: census.acknowledged,
            found: census.found,
            exact: census.is_exact(),
            retried: census.retried,
            retried_once: census.retried_once,
            duplicate_after_retry: acks.iter().filter(|a| a.retries > 0 && a.duplicate).count(),
        }
    }
}

#[derive(Debug)]
struct Outcome {
    figures: Figures,
    truth: Option<Truth>,
}

fn seed() -> u64 {
    std::env::var("BATON_POWER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

fn catalog() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("catalog.json");
    std::fs::write(&path, TEST_CATALOG).expect("write the catalog");
    (dir, path)
}

fn lost_bytes(outages: &[Outage]) -> u64 {
    outages.iter().map(Outage::unsynced_bytes).sum()
}

fn torn(outages: &[Outage]) -> usize {
    outages
        .iter()
        .filter(|o| {
            o.torn
                .as_ref()
                .is_some_and(|t| t.kept > 0 && t.kept < t.len)
        })
        .count()
}

/// One machine: nats-server, ingest and the projector, the store and the
/// views on its disk. Fields drop in order: the processes, then the disk.
struct Single {
    ingest: Service,
    projector: Service,
    nats: NatsServer,
    _catalog: tempfile::TempDir,
    catalog: PathBuf,
    machine: Machine,
}

impl Single {
    async fn start(name: &str, sync_always: bool, seed: u64) -> Single {
        let machine = Machine::new(name, seed);
        let nats = NatsServer::start_stored(&Storage {
            dir: Some(machine.path("nats")),
            sync_always,
        });
        let (catalog_dir, catalog) = catalog();
        let ingest = Service::ingest(&nats.url(), &catalog, 1).await;
        let projector = Service::projector(&nats.url(), &catalog, &machine.path("views"), 1).await;
        Single {
            ingest,
            projector,
            nats,
            _catalog: catalog_dir,
            catalog,
            machine,
        }
    }

    fn victims(&self) -> Vec<u32> {
        [self.nats.pid(), self.ingest.pid(), self.projector.pid()]
            .into_iter()
            .flatten()
            .collect()
    }

    /// The machine loses power; everything on it starts again.
    async fn cut_and_restart(&mut self) -> Outage {
        let outage = self
            .machine
            .fs
            .cut_power(&self.victims())
            .expect("the power cut");
        self.restart().await;
        outage
    }

    async fn restart(&mut self) {
        self.nats.restart();
        self.ingest.restart().await;
        self.projector.restart().await;
    }

    async fn nats_client(&self) -> async_nats::Client {
        async_nats::connect(self.nats.url())
            .await
            .expect("connect to nats")
    }
}

async fn status(projector: &Service) -> v1::GetStatusResponse {
    projector
        .query_client()
        .await
        .get_status(v1::GetStatusRequest::default())
        .await
        .expect("the projector's status")
        .into_inner()
}

/// Scenario 1: one nats-server on its default `sync_interval` loses
/// acknowledged events. The control: no loss here, no loss anywhere.
async fn scenario_1(seed: u64) -> Outcome {
    let started = Instant::now();
    let mut s = Single::start("s1", false, seed).await;
    // The stream was created a while ago: the kernel's writeback has put it
    // on the disk (it does within about 30 s). Only the load is at risk.
    s.machine.fs.sync_all().expect("sync");
    let load = PowerLoad::start(s.ingest.addr, CLIENTS, "p1");
    load.wait_acknowledged(BETWEEN_CUTS).await;
    let outage = s.machine.fs.cut_power(&s.victims()).expect("the power cut");
    // What was acknowledged may be gone: a retry could wait forever.
    let acks = load.abandon().await;
    s.restart().await;
    let nats = s.nats_client().await;
    let stream = read_events(&nats).await;
    let census = Census::of(&acks, &stream);
    let status = status(&s.projector).await;
    // Ingest died with the machine: its cache is gone, the stream is all it knows.
    let resent = resend_lost(s.ingest.addr, &acks, &stream).await;
    let figures = Figures {
        scenario: "power-loss scenario 1 (one nats-server, default sync_interval)".into(),
        acknowledged: census.acknowledged,
        found: census.found,
        lost: census.lost,
        duplicated: census.duplicated,
        runs: 1,
        seconds: started.elapsed().as_secs_f64(),
        note: format!(
            "stream after restart: {} messages, last sequence {}; {} bytes unsynced at the cut; \
             projector views at sequence {} against the stream's {}; the lost events sent \
             again: {} answered as already stored, {} appended again, {} refused",
            stream.messages.len(),
            stream.last_sequence,
            outage.unsynced_bytes(),
            status.position,
            status.stream_last_sequence,
            resent.claimed_stored,
            resent.appended_again,
            resent.refused
        ),
    };
    println!("{}", figures.line());
    assert!(
        census.lost > 0,
        "the control lost nothing: the lossy filesystem kept what nats-server never fsynced"
    );
    Outcome {
        figures,
        truth: None,
    }
}

/// Scenario 2: one nats-server with `sync_interval: always`: five power cuts under
/// load, nothing acknowledged lost, doubled or misplaced.
async fn scenario_2(seed: u64) -> Outcome {
    let started = Instant::now();
    let mut s = Single::start("s2", true, seed).await;
    let load = PowerLoad::start(s.ingest.addr, CLIENTS, "p2");
    let mut outages = Vec::new();
    for _ in 0..5 {
        load.wait_acknowledged(load.acknowledged() + BETWEEN_CUTS)
            .await;
        outages.push(s.cut_and_restart().await);
    }
    load.wait_acknowledged(load.acknowledged() + BETWEEN_CUTS)
        .await;
    let answers = load.answers().clone();
    let acks = load.finish().await;
    let nats = s.nats_client().await;
    let stream = read_events(&nats).await;
    let census = Census::of(&acks, &stream);
    let (resent, wrong) = resend_all(s.ingest.addr, &acks).await;
    let figures = Figures {
        scenario: "power-loss scenario 2 (one nats-server, sync_interval: always)".into(),
        acknowledged: census.acknowledged,
        found: census.found,
        lost: census.lost,
        duplicated: census.duplicated,
        runs: outages.len(),
        seconds: started.elapsed().as_secs_f64(),
        note: format!(
            "misplaced {}, unacknowledged in the stream {}, sequence gaps {}; {} resends \
             answered as duplicates; {} events retried after a transient answer; {} bytes \
             unsynced at the cuts, {} writes torn",
            census.misplaced,
            census.unacknowledged,
            census.gaps,
            resent,
            census.retried,
            lost_bytes(&outages),
            torn(&outages)
        ),
    };
    println!("{}", figures.line());
    assert!(census.is_exact(), "{census:?}");
    assert_eq!(answers.refused(), Vec::<String>::new(), "nothing refused");
    assert_eq!(
        resent,
        acks.len(),
        "resends not answered as duplicates: {wrong:?}"
    );
    Outcome {
        truth: Some(Truth::of(&census, &acks, figures.runs)),
        figures,
    }
}

/// Three machines, one node of an R3 cluster each; ingest and the projector
/// on a fourth that keeps its power. Fields drop in order.
struct Cluster {
    ingest: Service,
    projector: Service,
    cluster: NatsCluster,
    _app: tempfile::TempDir,
    machines: Vec<Machine>,
}

impl Cluster {
    async fn start(name: &str, sync_always: bool, seed: u64) -> Cluster {
        let machines: Vec<Machine> = (1..=3)
            .map(|i| Machine::new(&format!("{name}-n{i}"), seed.wrapping_add(i)))
            .collect();
        let cluster = NatsCluster::start_stored(
            3,
            &ClusterStorage {
                dirs: machines.iter().map(|m| m.path("nats")).collect(),
                sync_always,
            },
        );
        let (app, catalog) = catalog();
        let urls = cluster.urls();
        let ingest = Service::ingest(&urls, &catalog, 3).await;
        let projector = Service::projector(&urls, &catalog, &app.path().join("views"), 3).await;
        Cluster {
            ingest,
            projector,
            cluster,
            _app: app,
            machines,
        }
    }

    /// Cuts the power of the machines `which` at the same instant, and
    /// starts their nodes again.
    fn cut_and_restart(&mut self, which: &[usize]) -> Vec<Outage> {
        let filesystems: Vec<&baton_lossyfs::LossyFs> =
            which.iter().map(|i| &self.machines[*i].fs).collect();
        let victims: Vec<u32> = which.iter().filter_map(|i| self.cluster.pid(*i)).collect();
        let outages = baton_lossyfs::cut_power(&filesystems, &victims).expect("the power cut");
        for i in which {
            self.cluster.start_node(*i);
        }
        outages
    }

    async fn leader(&self, js: &async_nats::jetstream::Context) -> String {
        until("the events stream to have a leader", || {
            let js = js.clone();
            async move {
                let mut stream = js
                    .get_stream(baton_log::subject::EVENTS_STREAM)
                    .await
                    .ok()?;
                stream.info().await.ok()?.cluster.clone()?.leader
            }
        })
        .await
    }

    /// Waits until every replica of the events stream is current.
    async fn all_current(&self, js: &async_nats::jetstream::Context) {
        until("every replica of the events stream current", || {
            let js = js.clone();
            async move {
                let mut stream = js
                    .get_stream(baton_log::subject::EVENTS_STREAM)
                    .await
                    .ok()?;
                let cluster = stream.info().await.ok()?.cluster.clone()?;
                (cluster.leader.is_some()
                    && cluster.replicas.len() == 2
                    && cluster.replicas.iter().all(|r| r.current && !r.offline))
                .then_some(())
            }
        })
        .await
    }
}

/// Scenario 3: an R3 cluster on nats-server's default `sync_interval`, all
/// three nodes losing power together: the published finding, reproduced.
async fn scenario_3(seed: u64) -> Outcome {
    let started = Instant::now();
    let mut c = Cluster::start("s3", false, seed).await;
    for m in &c.machines {
        m.fs.sync_all().expect("sync");
    }
    let load = PowerLoad::start(c.ingest.addr, CLIENTS, "p3");
    load.wait_acknowledged(BETWEEN_CUTS).await;
    let outages = c.cut_and_restart(&[0, 1, 2]);
    let acks = load.abandon().await;
    let nats = connect_cluster(&c.cluster.urls()).await;
    let stream = read_events(&nats).await;
    let census = Census::of(&acks, &stream);
    // The projector kept its power and its views, which now hold more than
    // the stream: in doubt, it stops, marks them, and a restart rebuilds.
    let stopped = c.projector.wait_exit(Duration::from_secs(30)).await;
    assert!(
        stopped.is_some_and(|status| !status.success()),
        "a projector whose views are ahead of the stream must stop ({stopped:?})"
    );
    c.projector.restart().await;
    let status = status(&c.projector).await;
    // Ingest kept its power and its cache: what does it say of what was lost?
    let resent = resend_lost(c.ingest.addr, &acks, &stream).await;
    // Rebuilt, the projector sees what comes next.
    let (appended, seen) = appended_and_seen(&c.ingest, &c.projector, "after3").await;
    let after = self::status(&c.projector).await;
    assert_eq!(
        seen,
        appended.len(),
        "the rebuilt views see the new hand-offs"
    );
    assert_eq!(
        resent.claimed_stored, 0,
        "ingest must not vouch from its cache for events the stream lost"
    );
    let figures = Figures {
        scenario: "power-loss scenario 3 (three-node R3 cluster, default sync_interval, all \
                   three at once)"
            .into(),
        acknowledged: census.acknowledged,
        found: census.found,
        lost: census.lost,
        duplicated: census.duplicated,
        runs: 1,
        seconds: started.elapsed().as_secs_f64(),
        note: format!(
            "stream after restart: {} messages, last sequence {}; {} bytes unsynced at the cut; \
             projector (kept its power) stopped, its views ahead of the stream, and \
             restarted rebuilt at sequence {} against the stream's {}; the lost \
             events sent again: {} answered as already stored, {} appended again, {} refused; \
             {} new hand-offs appended at sequences {:?}: {} in the projector's views within \
             {:?}, which then said current {} at sequence {} against the stream's {}",
            stream.messages.len(),
            stream.last_sequence,
            lost_bytes(&outages),
            status.position,
            status.stream_last_sequence,
            resent.claimed_stored,
            resent.appended_again,
            resent.refused,
            appended.len(),
            appended,
            seen,
            SEEN_WITHIN,
            after.current,
            after.position,
            after.stream_last_sequence
        ),
    };
    println!("{}", figures.line());
    assert!(
        census.lost > 0,
        "the control lost nothing: the lossy filesystem kept what the cluster never fsynced"
    );
    Outcome {
        figures,
        truth: None,
    }
}

/// How long new events may take to show in the projector's views.
const SEEN_WITHIN: Duration = Duration::from_secs(2);

/// Appends five new hand-offs and counts how many the projector's views
/// show within [`SEEN_WITHIN`]: their stream sequences, and that count.
async fn appended_and_seen(
    ingest: &Service,
    projector: &Service,
    prefix: &str,
) -> (Vec<u64>, usize) {
    let mut client = ingest.ingest_client().await;
    let mut appended = Vec::new();
    for i in 0..5 {
        let event = baton_e2e::requested(
            &format!("{prefix}-{i}"),
            "repair",
            "engineering",
            "ward-5",
            v1::Priority::Routine,
            baton_e2e::now_millis(),
        );
        let answer = client
            .append(baton_e2e::append(event))
            .await
            .expect("a new hand-off appended")
            .into_inner();
        appended.push(answer.stream_sequence);
    }
    let query = projector.query_client().await;
    let deadline = tokio::time::Instant::now() + SEEN_WITHIN;
    loop {
        let mut seen = 0;
        for i in 0..5 {
            let request = v1::GetHandoffRequest {
                handoff_id: format!("{prefix}-{i}"),
            };
            if query.clone().get_handoff(request).await.is_ok() {
                seen += 1;
            }
        }
        if seen == 5 || tokio::time::Instant::now() > deadline {
            return (appended, seen);
        }
        // Polling the projector's views, up to the deadline.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Scenario 4a: the shipped cluster (`sync_interval: always`), all three
/// nodes losing power together under load, twice.
async fn scenario_4_together(seed: u64) -> Outcome {
    let started = Instant::now();
    let mut c = Cluster::start("s4a", true, seed).await;
    let load = PowerLoad::start(c.ingest.addr, CLIENTS, "p4a");
    let mut outages = Vec::new();
    for _ in 0..2 {
        load.wait_acknowledged(load.acknowledged() + BETWEEN_CUTS)
            .await;
        outages.extend(c.cut_and_restart(&[0, 1, 2]));
    }
    load.wait_acknowledged(load.acknowledged() + BETWEEN_CUTS)
        .await;
    let answers = load.answers().clone();
    let acks = load.finish().await;
    cluster_outcome(
        "power-loss scenario 4a (three-node R3 cluster, sync_interval: always, all three at once)",
        &c,
        acks,
        &answers,
        outages,
        2,
        started,
    )
    .await
}

/// Scenario 4b: the shipped cluster, one node at a time losing power as
/// the events stream's leader steps down: three cuts, each of the node
/// that led.
async fn scenario_4_one_at_a_time(seed: u64) -> Outcome {
    let started = Instant::now();
    let mut c = Cluster::start("s4b", true, seed).await;
    let nats = connect_cluster(&c.cluster.urls()).await;
    // Short API timeouts: right after a cut a request may go to a node
    // that is gone, and the next poll should not wait the default 5 s.
    let mut js = async_nats::jetstream::new(nats.clone());
    js.set_timeout(Duration::from_millis(500));
    let load = PowerLoad::start(c.ingest.addr, CLIENTS, "p4b");
    let mut outages = Vec::new();
    let mut leaders = Vec::new();
    for _ in 0..3 {
        load.wait_acknowledged(load.acknowledged() + BETWEEN_CUTS)
            .await;
        let leader = c.leader(&js).await;
        let i = c.cluster.index_of(&leader).expect("the leader is a node");
        // Ask the leader to step down, and cut its power while the
        // cluster is handing the stream over.
        let stepdown = tokio::spawn({
            let nats = nats.clone();
            async move {
                let subject = format!(
                    "$JS.API.STREAM.LEADER.STEPDOWN.{}",
                    baton_log::subject::EVENTS_STREAM
                );
                nats.request(subject, Vec::<u8>::new().into()).await
            }
        });
        outages.extend(c.cut_and_restart(&[i]));
        // Its answer, if any, died with the node.
        stepdown.abort();
        leaders.push(leader);
        c.all_current(&js).await;
    }
    load.wait_acknowledged(load.acknowledged() + BETWEEN_CUTS)
        .await;
    let answers = load.answers().clone();
    let acks = load.finish().await;
    let mut outcome = cluster_outcome(
        "power-loss scenario 4b (three-node R3 cluster, sync_interval: always, the leader \
         alone, as it steps down)",
        &c,
        acks,
        &answers,
        outages,
        3,
        started,
    )
    .await;
    outcome.figures.note = format!("cut leaders {leaders:?}; {}", outcome.figures.note);
    println!("  {}", outcome.figures.note);
    outcome
}

async fn cluster_outcome(
    scenario: &str,
    c: &Cluster,
    acks: Vec<baton_e2e::power::Ack>,
    answers: &baton_e2e::power::Answers,
    outages: Vec<Outage>,
    runs: usize,
    started: Instant,
) -> Outcome {
    let nats = connect_cluster(&c.cluster.urls()).await;
    let stream = read_events(&nats).await;
    let census = Census::of(&acks, &stream);
    let (resent, wrong) = resend_all(c.ingest.addr, &acks).await;
    let figures = Figures {
        scenario: scenario.into(),
        acknowledged: census.acknowledged,
        found: census.found,
        lost: census.lost,
        duplicated: census.duplicated,
        runs,
        seconds: started.elapsed().as_secs_f64(),
        note: format!(
            "misplaced {}, unacknowledged in the stream {}, sequence gaps {}; {} resends \
             answered as duplicates; {} events retried after a transient answer; {} bytes \
             unsynced at the cuts, {} writes torn",
            census.misplaced,
            census.unacknowledged,
            census.gaps,
            resent,
            census.retried,
            lost_bytes(&outages),
            torn(&outages)
        ),
    };
    println!("{}", figures.line());
    assert!(census.is_exact(), "{census:?}");
    assert_eq!(answers.refused(), Vec::<String>::new(), "nothing refused");
    assert_eq!(
        resent,
        acks.len(),
        "resends not answered as duplicates: {wrong:?}"
    );
    Outcome {
        truth: Some(Truth::of(&census, &acks, figures.runs)),
        figures,
    }
}

/// Hand-offs whose promise broke ten minutes ago, to be announced at once.
const BREACHES: usize = 200;

fn dump(dir: &Path) -> Vec<baton_views::store::Entry> {
    let version = baton_domain::Catalog::from_json(TEST_CATALOG)
        .expect("catalog")
        .version()
        .to_owned();
    let (views, _) = baton_views::Views::open(dir, &version).expect("open the views");
    views.dump().expect("dump the views")
}

/// Waits until the projector has applied the whole stream.
async fn caught_up(projector: &Service) {
    let query = projector.query_client().await;
    until("the projector to apply the whole stream", || {
        let mut query = query.clone();
        async move {
            let s = query
                .get_status(v1::GetStatusRequest::default())
                .await
                .ok()?
                .into_inner();
            (s.current && s.stream_last_sequence > 0 && s.position == s.stream_last_sequence)
                .then_some(())
        }
    })
    .await;
}

/// Appends `BREACHES` repairs requested 40 minutes ago (their 30-minute
/// promise broke 10 minutes ago: announced as soon as applied), as hand-offs
/// `<prefix>-<n>`.
async fn append_breaches(ingest: &Service, prefix: &str) {
    let t0 = baton_e2e::now_millis() - 40 * 60_000;
    let requests: Vec<v1::AppendRequest> = (0..BREACHES)
        .map(|i| {
            baton_e2e::append(baton_e2e::requested(
                &format!("{prefix}-{i}"),
                "repair",
                "engineering",
                "ward-5",
                v1::Priority::Routine,
                t0,
            ))
        })
        .collect();
    let mut client = ingest.ingest_client().await;
    for chunk in requests.chunks(100) {
        let results = client
            .append_batch(v1::AppendBatchRequest {
                requests: chunk.to_vec(),
            })
            .await
            .expect("append the breached hand-offs")
            .into_inner()
            .results;
        assert!(
            results
                .iter()
                .all(|r| matches!(r.outcome, Some(v1::append_result::Outcome::Ok(_)))),
            "every breached hand-off appended"
        );
    }
}

/// Outbox entries (`x/...`) whose breach is not on the SLA stream: one
/// left in the views must have been announced already (a restart announces
/// it again, and JetStream answers that it was).
fn unannounced(
    entries: &[baton_views::store::Entry],
    breaches: &BTreeMap<String, usize>,
) -> Vec<String> {
    entries
        .iter()
        .filter(|(k, _)| k.starts_with(b"x/"))
        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
        .filter(|key| {
            let parts: Vec<&str> = key.split('/').collect();
            let [_, "b", policy, handoff, cycle] = parts.as_slice() else {
                return true;
            };
            let tail = match cycle.parse::<u32>() {
                Ok(c) if c > 1 => format!(".{handoff}:{c}"),
                _ => format!(".{handoff}"),
            };
            let head = format!("baton.sla.breached.{policy}.");
            !breaches
                .keys()
                .any(|subject| subject.starts_with(&head) && subject.ends_with(&tail))
        })
        .collect()
}

/// Scenario 5: the projector's views on the lossy disk (with nats-server,
/// `always`): power cuts while it applies events and while it announces
/// breaches. After them its views equal a clean rebuild, and every breach
/// is on the SLA stream exactly once.
async fn scenario_5(seed: u64) -> Outcome {
    let started = Instant::now();
    let mut s = Single::start("s5", true, seed).await;
    let load = PowerLoad::start(s.ingest.addr, CLIENTS, "p5");
    let mut outages = Vec::new();
    // While applying: events keep arriving, the projector keeps applying.
    for _ in 0..3 {
        load.wait_acknowledged(load.acknowledged() + BETWEEN_CUTS)
            .await;
        outages.push(s.cut_and_restart().await);
    }
    // While announcing: a burst of broken promises, the power cut as the
    // first announcements land; twice.
    let mut before_cuts = Vec::new();
    for burst in 0..2 {
        let nats = s.nats_client().await;
        let mut seen = nats
            .subscribe(baton_log::subject::ALL_BREACHES)
            .await
            .expect("subscribe to breaches");
        append_breaches(&s.ingest, &format!("late{burst}")).await;
        tokio::time::timeout(WITHIN, seen.next())
            .await
            .expect("a first breach announced")
            .expect("the subscription is open");
        let outage = s.machine.fs.cut_power(&s.victims()).expect("the power cut");
        // What reached this subscriber before the cut (the server is gone:
        // the subscription ends, or goes quiet).
        let mut before_cut = 1;
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(100), seen.next()).await
        {
            before_cut += 1;
        }
        before_cuts.push(before_cut);
        outages.push(outage);
        s.restart().await;
    }
    let nats = s.nats_client().await;
    let breaches = until(
        &format!("{} breaches on the SLA stream", 2 * BREACHES),
        || {
            let nats = nats.clone();
            async move {
                let counts = announcements(&nats, baton_log::subject::ALL_BREACHES).await;
                (counts.len() >= 2 * BREACHES).then_some(counts)
            }
        },
    )
    .await;
    let announced_twice: Vec<_> = breaches.iter().filter(|(_, n)| **n > 1).collect();
    let load_answers = load.answers().clone();
    let acks = load.finish().await;
    let stream = read_events(&nats).await;
    let mut census = Census::of(&acks, &stream);
    // The broken promises were appended in batches, not by the load.
    census.unacknowledged = census.unacknowledged.saturating_sub(2 * BREACHES);

    // The views after the cuts against a clean rebuild of the same stream.
    caught_up(&s.projector).await;
    s.projector.terminate();
    let rebuilt = tempfile::tempdir().expect("tempdir");
    let mut clean = Service::projector(&s.nats.url(), &s.catalog, rebuilt.path(), 1).await;
    caught_up(&clean).await;
    clean.terminate();
    let crashed = dump(&s.machine.path("views"));
    let clean = dump(rebuilt.path());
    let unannounced: Vec<String> = unannounced(&crashed, &breaches)
        .into_iter()
        .chain(unannounced(&clean, &breaches))
        .collect();
    let views = |entries: Vec<baton_views::store::Entry>| -> Vec<baton_views::store::Entry> {
        entries
            .into_iter()
            .filter(|(k, _)| !k.starts_with(b"x/"))
            .collect()
    };
    let (crashed, clean) = (views(crashed), views(clean));
    let figures = Figures {
        scenario: "power-loss scenario 5 (the projector's views and nats-server on one disk, \
                   sync_interval: always)"
            .into(),
        acknowledged: census.acknowledged,
        found: census.found,
        lost: census.lost,
        duplicated: census.duplicated,
        runs: outages.len(),
        seconds: started.elapsed().as_secs_f64(),
        note: format!(
            "3 cuts while applying, 2 while announcing (after {before_cuts:?} of {BREACHES} \
             breaches had reached a subscriber); {} breaches on the SLA stream, {} of them \
             more than once; views {} entries, {} a clean rebuild; {} bytes unsynced at the \
             cuts, {} writes torn",
            breaches.len(),
            announced_twice.len(),
            crashed.len(),
            if crashed == clean {
                "equal to"
            } else {
                "DIFFERENT from"
            },
            lost_bytes(&outages),
            torn(&outages)
        ),
    };
    println!("{}", figures.line());
    assert!(census.is_exact(), "{census:?}");
    assert_eq!(
        load_answers.refused(),
        Vec::<String>::new(),
        "nothing refused"
    );
    assert!(
        before_cuts.iter().all(|n| *n < BREACHES),
        "the power went after every breach was announced: not a cut while announcing"
    );
    assert_eq!(breaches.len(), 2 * BREACHES, "one subject per breach");
    assert!(announced_twice.is_empty(), "{announced_twice:?}");
    assert_eq!(
        unannounced,
        Vec::<String>::new(),
        "outbox entries never announced"
    );
    assert!(
        crashed == clean,
        "the views after the power cuts differ from a clean rebuild"
    );
    Outcome {
        truth: Some(Truth::of(&census, &acks, figures.runs)),
        figures,
    }
}

/// Scenario 6: ingest's answers against the stream, after every scenario
/// that ran with `sync_interval: always`.
fn scenario_6(truths: &[(String, Truth)]) -> Outcome {
    let started = Instant::now();
    let sum = |f: fn(&Truth) -> usize| truths.iter().map(|(_, t)| f(t)).sum::<usize>();
    let acknowledged = sum(|t| t.acknowledged);
    let found = sum(|t| t.found);
    let retried = sum(|t| t.retried);
    let retried_once = sum(|t| t.retried_once);
    let duplicate_after_retry = sum(|t| t.duplicate_after_retry);
    let figures = Figures {
        scenario: "power-loss scenario 6 (every OK ingest gave, over the scenarios with \
                   sync_interval: always)"
            .into(),
        acknowledged,
        found,
        lost: acknowledged - found,
        duplicated: 0,
        runs: sum(|t| t.runs),
        seconds: started.elapsed().as_secs_f64(),
        note: format!(
            "over {}: {retried} events were acknowledged only after an UNAVAILABLE or no \
             answer, {retried_once} of them in the stream exactly once; \
             {duplicate_after_retry} of those answered as duplicates (the first try had been \
             stored)",
            truths
                .iter()
                .map(|(name, _)| name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    println!("{}", figures.line());
    assert!(
        truths.iter().all(|(_, t)| t.exact),
        "a scenario's stream was not exact"
    );
    assert!(
        retried > 0,
        "no client had to retry: the power cuts missed the appends"
    );
    assert_eq!(
        retried_once, retried,
        "a retried event is not in the stream exactly once"
    );
    Outcome {
        figures,
        truth: None,
    }
}

/// What `sync_interval: always` costs: unary appends acknowledged per
/// second through ingest, with each sync setting, on the machine's disk and
/// on the lossy filesystem. Each setting is measured twice, in turns with
/// the other, so that whatever else the machine is doing weighs on both.
async fn cost() -> Outcome {
    const WINDOW: Duration = Duration::from_millis(2500);
    const COST_CLIENTS: usize = 16;
    let started = Instant::now();
    let (_catalog_dir, catalog) = catalog();
    // [disk][sync] → the rates of its windows.
    let mut rates = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    for (d, lossy) in [false, true].into_iter().enumerate() {
        let disk = tempfile::tempdir().expect("tempdir");
        let machine = lossy.then(|| Machine::new("cost", 1));
        let mut servers = Vec::new();
        for sync_always in [false, true] {
            let name = if sync_always { "always" } else { "default" };
            let dir = match &machine {
                Some(m) => m.path(name),
                None => disk.path().join(name),
            };
            let nats = NatsServer::start_stored(&Storage {
                dir: Some(dir),
                sync_always,
            });
            let ingest = Service::ingest(&nats.url(), &catalog, 1).await;
            servers.push((nats, ingest));
        }
        for turn in 0..4 {
            let sync = turn % 2;
            let load = PowerLoad::start(servers[sync].1.addr, COST_CLIENTS, &format!("cost{turn}"));
            load.wait_acknowledged(200).await;
            let (n0, t0) = (load.acknowledged(), Instant::now());
            // The measurement window itself.
            tokio::time::sleep(WINDOW).await;
            let (n1, t1) = (load.acknowledged(), Instant::now());
            load.abandon().await;
            rates[d][sync].push((n1 - n0) as f64 / (t1 - t0).as_secs_f64());
        }
        drop(servers);
        drop(machine);
    }
    let mean = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let show = |v: &Vec<f64>| {
        v.iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(" and ")
    };
    let side = |what: &str, r: &[Vec<f64>; 2]| {
        format!(
            "{what}: default {:.0}/s ({}), always {:.0}/s ({}), always at {:.0}% of default",
            mean(&r[0]),
            show(&r[0]),
            mean(&r[1]),
            show(&r[1]),
            100.0 * mean(&r[1]) / mean(&r[0]).max(1.0)
        )
    };
    let note = format!(
        "unary appends acknowledged per second through ingest ({COST_CLIENTS} clients, two \
         {:.1} s windows each, test build); {}; {}",
        WINDOW.as_secs_f64(),
        side("the machine's disk", &rates[0]),
        side("the lossy filesystem", &rates[1]),
    );
    let figures = Figures {
        scenario: "power-loss cost".into(),
        acknowledged: 0,
        found: 0,
        lost: 0,
        duplicated: 0,
        runs: 0,
        seconds: started.elapsed().as_secs_f64(),
        note,
    };
    println!("power-loss cost: {}", figures.note);
    Outcome {
        figures,
        truth: None,
    }
}

type Scenario = fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome>>>;

fn scenarios() -> Vec<(&'static str, Scenario)> {
    vec![
        (
            "scenario_1_one_node_default_sync_loses_acknowledged_events",
            |s| Box::pin(scenario_1(s)),
        ),
        ("scenario_2_one_node_sync_always_loses_nothing", |s| {
            Box::pin(scenario_2(s))
        }),
        (
            "scenario_3_cluster_default_sync_all_at_once_loses_acknowledged_events",
            |s| Box::pin(scenario_3(s)),
        ),
        (
            "scenario_4a_cluster_sync_always_all_at_once_loses_nothing",
            |s| Box::pin(scenario_4_together(s)),
        ),
        (
            "scenario_4b_cluster_sync_always_leader_at_a_time_loses_nothing",
            |s| Box::pin(scenario_4_one_at_a_time(s)),
        ),
        ("scenario_5_projector_views_survive_power_cuts", |s| {
            Box::pin(scenario_5(s))
        }),
        ("cost_of_sync_always", |_| Box::pin(cost())),
    ]
}

const SCENARIO_6: &str = "scenario_6_ingest_answers_are_the_truth";

/// `scenario_4a_...` → `4a`.
fn short_name(name: &str) -> String {
    name.trim_start_matches("scenario_")
        .split('_')
        .next()
        .unwrap_or(name)
        .to_owned()
}

fn main() -> ExitCode {
    if let Some(code) = child_main() {
        return code;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let exact = args.iter().any(|a| a == "--exact");
    let filters: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    let mut names: Vec<&str> = scenarios().iter().map(|(n, _)| *n).collect();
    names.push(SCENARIO_6);
    if args.iter().any(|a| a == "--list") {
        for name in &names {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let selected = |name: &str| {
        filters.is_empty()
            || filters
                .iter()
                .any(|f| if exact { name == *f } else { name.contains(f) })
    };
    if args.iter().any(|a| a == "--ignored") {
        println!("power-loss: 0 passed, 0 failed");
        return ExitCode::SUCCESS;
    }
    let seed = seed();
    println!("power-loss: seed {seed} (BATON_POWER_SEED={seed} draws the same tears again)");
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut truths: Vec<(String, Truth)> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    let mut passed = 0;
    for (name, scenario) in scenarios() {
        if !selected(name) {
            continue;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let ran = std::panic::catch_unwind(AssertUnwindSafe(|| {
            runtime.block_on(async { tokio::time::timeout(LIMIT, scenario(seed)).await })
        }));
        drop(runtime);
        match ran {
            Ok(Ok(outcome)) => {
                println!("test {name} ... ok");
                passed += 1;
                if let Some(truth) = outcome.truth {
                    truths.push((short_name(name), truth));
                }
                outcomes.push(outcome);
            }
            Ok(Err(_)) => {
                println!("test {name} ... FAILED: took longer than {LIMIT:?}");
                failed.push(name.to_owned());
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(name.to_owned());
            }
        }
    }
    if selected(SCENARIO_6) && !truths.is_empty() {
        match std::panic::catch_unwind(|| scenario_6(&truths)) {
            Ok(outcome) => {
                println!("test {SCENARIO_6} ... ok");
                passed += 1;
                outcomes.push(outcome);
            }
            Err(_) => {
                println!("test {SCENARIO_6} ... FAILED");
                failed.push(SCENARIO_6.to_owned());
            }
        }
    }
    if !outcomes.is_empty() {
        println!();
        println!(
            "| scenario | acknowledged | found after restart | lost | duplicated | runs | time |"
        );
        println!("|---|---|---|---|---|---|---|");
        for o in &outcomes {
            let f = &o.figures;
            if f.runs == 0 {
                continue;
            }
            println!(
                "| {} | {} | {} | {} | {} | {} | {:.1} s |",
                f.scenario, f.acknowledged, f.found, f.lost, f.duplicated, f.runs, f.seconds
            );
        }
        println!();
    }
    println!("power-loss: {passed} passed, {} failed", failed.len());
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("failed: {failed:?}");
        ExitCode::FAILURE
    }
}

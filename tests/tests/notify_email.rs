//! Notify's e-mail channel end to end: real nats-server, ingest, projector
//! and notify, and real SMTP relays: Python's aiosmtpd
//! (`deploy/install-aiosmtpd.sh`), started by this test on free ports.
//!
//! The hospital's relay offers STARTTLS with a certificate signed by the
//! test CA, refuses MAIL before STARTTLS and before AUTH, and turns the
//! first message away with a 451: the breach arrives on the second attempt,
//! once, to the envelope's mailboxes, inside TLS, after AUTH PLAIN, under
//! the same Message-ID and X-Baton-Delivery as the first attempt, with the
//! notice's fields and nothing more. A relay whose certificate is signed by
//! a CA nobody trusts, and one that offers no STARTTLS, are never sent the
//! message: the delivery is parked after its last attempt, with the reason.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use baton_e2e::{
    append, eventually, http, now_millis, requested, secure::Pki, start_notify, Baton, PATIENCE,
    TEST_CATALOG,
};
use baton_proto::v1::Priority;
use tokio::io::AsyncBufReadExt;

/// The relay: aiosmtpd on a socket it binds itself (port 0), so no port
/// is raced for; it prints `READY <port>`, and appends one JSON line per
/// DATA it is sent to its log: the envelope, whether the session was inside
/// TLS, who logged in, the raw message, and whether it took it.
const RELAY: &str = r#"
import asyncio, json, socket, ssl, sys
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

log_path, cert, key, fail_first, user, password = sys.argv[1:7]
fail_first = int(fail_first)


class Handler:
    def __init__(self):
        self.data = 0

    async def handle_DATA(self, server, session, envelope):
        self.data += 1
        accepted = self.data > fail_first
        auth = session.auth_data
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "login": auth.login.decode() if isinstance(auth, LoginPassword) else None,
            "content": envelope.original_content.decode("utf-8", "replace"),
            "accepted": accepted,
        }
        with open(log_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        return "250 2.0.0 OK" if accepted else "451 4.3.0 try again later"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        mechanism == "PLAIN"
        and isinstance(auth_data, LoginPassword)
        and auth_data.login == user.encode()
        and auth_data.password == password.encode()
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


def main():
    handler = Handler()
    options = {}
    if cert != "-":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        options.update(tls_context=context, require_starttls=True)
    if user != "-":
        options.update(auth_required=True, auth_require_tls=True, authenticator=authenticator)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    loop.run_until_complete(
        loop.create_server(lambda: SMTP(handler, loop=loop, **options), sock=sock)
    )
    print("READY", sock.getsockname()[1], flush=True)
    loop.run_forever()


main()
"#;

/// A running relay; killed when dropped.
#[derive(Debug)]
struct Relay {
    _child: tokio::process::Child,
    port: u16,
    log: PathBuf,
}

impl Relay {
    /// What it was sent with DATA, in order.
    fn messages(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

/// How a relay is set up.
#[derive(Debug, Clone, Copy)]
struct Setup<'a> {
    /// Certificate and key for STARTTLS (required then); `None`: no STARTTLS.
    tls: Option<(&'a Path, &'a Path)>,
    /// AUTH required, as this user and password.
    login: Option<(&'a str, &'a str)>,
    /// Answers 451 to the first n messages.
    fail_first: usize,
}

async fn relay(dir: &Path, name: &str, setup: Setup<'_>) -> Relay {
    let script = dir.join("relay.py");
    if !script.exists() {
        std::fs::write(&script, RELAY).expect("write the relay");
    }
    let log = dir.join(format!("{name}.jsonl"));
    let errors = std::fs::File::create(dir.join(format!("{name}.stderr"))).expect("stderr file");
    let path = |p: Option<&Path>| p.map_or("-".to_owned(), |p| p.display().to_string());
    let mut child = tokio::process::Command::new("python3")
        .arg(&script)
        .arg(&log)
        .arg(path(setup.tls.map(|t| t.0)))
        .arg(path(setup.tls.map(|t| t.1)))
        .arg(setup.fail_first.to_string())
        .arg(setup.login.map_or("-", |l| l.0))
        .arg(setup.login.map_or("-", |l| l.1))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(errors)
        .kill_on_drop(true)
        .spawn()
        .expect("run python3 (deploy/install-aiosmtpd.sh installs aiosmtpd)");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .expect("the relay starts in time")
        .expect("read the relay's stdout");
    let port = ready
        .as_deref()
        .and_then(|l| l.strip_prefix("READY "))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| {
            let why = std::fs::read_to_string(dir.join(format!("{name}.stderr")));
            panic!(
                "the relay {name} did not start (is aiosmtpd installed? deploy/install-aiosmtpd.sh): {ready:?} {why:?}"
            )
        });
    Relay {
        _child: child,
        port,
        log,
    }
}

/// A message's headers (names lower-cased, folded lines unfolded) and body.
fn parse(message: &str) -> (Vec<(String, String)>, String) {
    let (head, body) = message.split_once("\r\n\r\n").expect("headers and body");
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            let last = headers.last_mut().expect("a header to continue");
            last.1.push(' ');
            last.1.push_str(line.trim());
        } else {
            let (name, value) = line.split_once(':').expect("a header line");
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    (headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    let found: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(found.len(), 1, "one {name} header in {headers:?}");
    found[0]
}

/// Waits until notify's durable consumer exists: it takes only signals
/// announced after that.
async fn consumer_ready(baton: &Baton) {
    let js = async_nats::jetstream::new(baton.nats_client().await);
    eventually("notify's consumer on BATON_SLA", || {
        let js = js.clone();
        async move {
            let stream = js.get_stream("BATON_SLA").await.ok()?;
            stream.consumer_info("baton-notify").await.ok().map(|_| ())
        }
    })
    .await;
}

/// Appends a STAT repair for engineering requested 3 s ago: its 2 s
/// promise is broken at once.
async fn breach(baton: &Baton, handoff: &str) {
    let mut ingest = baton.ingest().await;
    let event = requested(
        handoff,
        "repair",
        "engineering",
        "ward-5",
        Priority::Stat,
        now_millis() - 3_000,
    );
    ingest.append(append(event)).await.expect("append");
}

/// The reason a delivery to `channel` was parked with.
async fn parked_reason(baton: &Baton, channel: &str) -> String {
    let js = async_nats::jetstream::new(baton.nats_client().await);
    let subject = format!("baton.notify.parked.repairs.{channel}");
    let parked = eventually(&format!("the {channel} delivery parked"), || {
        let js = js.clone();
        let subject = subject.clone();
        async move {
            let stream = js.get_stream("BATON_NOTIFY_PARKED").await.ok()?;
            stream.get_last_raw_message_by_subject(&subject).await.ok()
        }
    })
    .await;
    parked
        .headers
        .get("Baton-Reason")
        .map(|v| v.to_string())
        .unwrap_or_default()
}

const FROM: &str = "baton@hospital.test";
const TO: [&str; 2] = ["ward-5@hospital.test", "engineering@hospital.test"];
const PASSWORD: &str = "relay-password-0001";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breach_is_mailed_once_over_starttls_and_never_to_an_untrusted_or_plain_relay() {
    let started = Instant::now();
    let baton = Baton::start_with_catalog(TEST_CATALOG).await;
    let pki = Pki::new();
    pki.server_named("rogue", "rogue-server");
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key) = (pki.path("server.crt"), pki.path("server.key"));
    let hospital = relay(
        dir.path(),
        "hospital",
        Setup {
            tls: Some((&cert, &key)),
            login: Some(("baton", PASSWORD)),
            fail_first: 1,
        },
    )
    .await;
    let (rogue_cert, rogue_key) = (pki.path("rogue-server.crt"), pki.path("rogue-server.key"));
    let rogue = relay(
        dir.path(),
        "rogue",
        Setup {
            tls: Some((&rogue_cert, &rogue_key)),
            login: None,
            fail_first: 0,
        },
    )
    .await;
    let plain = relay(
        dir.path(),
        "plain",
        Setup {
            tls: None,
            login: None,
            fail_first: 0,
        },
    )
    .await;

    let password = dir.path().join("relay.password");
    std::fs::write(&password, format!("{PASSWORD}\n")).expect("password");
    let ca = pki.path("ca.crt");
    let routes = dir.path().join("routes.json");
    let text = serde_json::json!({
        "channels": {
            "ward": {"email": {
                "relay": format!("127.0.0.1:{}", hospital.port), "from": FROM, "to": TO,
                "ca_file": ca, "username": "baton", "password_file": password, "timeout": "5s",
            }},
            "rogue": {"email": {
                "relay": format!("localhost:{}", rogue.port), "from": FROM, "to": TO,
                "ca_file": ca, "timeout": "2s",
            }},
            "plain": {"email": {
                "relay": format!("127.0.0.1:{}", plain.port), "from": FROM, "to": TO,
                "ca_file": ca, "timeout": "2s",
            }}
        },
        "routes": [
            {"name": "repairs", "match": {"signals": ["breach"], "supplier": ["engineering"]},
             "deliver": ["ward", "rogue", "plain"]}
        ]
    });
    std::fs::write(&routes, text.to_string()).expect("routes");
    let notify = start_notify(&baton.nats.url(), &routes, 3, Duration::from_millis(100)).await;
    consumer_ready(&baton).await;

    breach(&baton, "pump-7").await;
    let got = eventually("the relay took the breach", || async {
        let got = hospital.messages();
        got.iter().any(|m| m["accepted"] == true).then_some(got)
    })
    .await;

    // The untrusted relay and the plaintext one: parked after three
    // attempts, and never sent a message.
    let reason = parked_reason(&baton, "rogue").await;
    assert!(
        reason.contains("3 attempts") && reason.contains("TLS") && reason.contains("UnknownIssuer"),
        "{reason}"
    );
    let reason = parked_reason(&baton, "plain").await;
    assert!(
        reason.contains("3 attempts") && reason.contains("does not offer STARTTLS"),
        "{reason}"
    );
    assert_eq!(rogue.messages(), Vec::<serde_json::Value>::new());
    assert_eq!(plain.messages(), Vec::<serde_json::Value>::new());
    // By now the hospital's relay would have any further attempt.
    assert_eq!(hospital.messages(), got, "no attempt after the one taken");

    // Two attempts: the first turned away (451), the second taken.
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[0]["accepted"], false);
    assert_eq!(got[1]["accepted"], true);
    let mut ids = Vec::new();
    for attempt in &got {
        assert_eq!(attempt["tls"], true, "inside STARTTLS: {attempt}");
        assert_eq!(attempt["login"], "baton", "after AUTH PLAIN: {attempt}");
        assert_eq!(attempt["mail_from"], FROM);
        assert_eq!(attempt["rcpt_tos"], serde_json::json!(TO));
        let (headers, _) = parse(attempt["content"].as_str().expect("content"));
        ids.push((
            header(&headers, "message-id").to_owned(),
            header(&headers, "x-baton-delivery").to_owned(),
        ));
    }
    assert_eq!(ids[0], ids[1], "a retry is the same message");
    let (message_id, delivery) = &ids[1];
    assert_eq!(delivery.len(), 32, "{delivery}");
    assert_eq!(message_id, &format!("<{delivery}@baton>"));

    let (headers, body) = parse(got[1]["content"].as_str().expect("content"));
    assert_eq!(header(&headers, "from"), format!("<{FROM}>"));
    assert_eq!(
        header(&headers, "to"),
        "<ward-5@hospital.test>, <engineering@hospital.test>"
    );
    assert_eq!(
        header(&headers, "subject"),
        "[Baton] breach: engineering -> ward-5, repair-response (stat)"
    );
    assert_eq!(
        header(&headers, "content-type"),
        "text/plain; charset=utf-8"
    );
    let date = header(&headers, "date");
    jiff::fmt::rfc2822::parse(date).unwrap_or_else(|e| panic!("Date {date:?}: {e}"));
    let names: BTreeSet<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "x-baton-delivery",
            "mime-version",
            "content-type",
            "content-transfer-encoding",
        ]),
        "no header beyond these"
    );

    // The body: the notice's fields, one a line, and nothing else.
    let fields: Vec<(&str, &str)> = body
        .lines()
        .map(|l| {
            l.split_once(": ")
                .unwrap_or_else(|| panic!("a field line: {l:?}"))
        })
        .collect();
    let keys: BTreeSet<&str> = fields.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "signal", "subject", "policy", "supplier", "customer", "priority", "handoff",
            "deadline", "board",
        ]),
        "only the notice's fields: {body}"
    );
    let field = |name: &str| fields.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    assert_eq!(field("signal"), Some("breach"));
    assert_eq!(field("handoff"), Some("pump-7"));
    assert_eq!(field("priority"), Some("stat"));
    assert_eq!(field("board"), Some("http://board.test/handoff/pump-7"));

    let web = notify.http.expect("side port");
    let metrics = http::get(web, "/metrics").await.body;
    for line in [
        r#"baton_notify_deliveries_total{route="repairs",channel="ward",result="delivered"} 1"#,
        r#"baton_notify_failed_attempts_total{route="repairs",channel="ward"} 1"#,
        r#"baton_notify_deliveries_total{route="repairs",channel="rogue",result="parked"} 1"#,
        r#"baton_notify_deliveries_total{route="repairs",channel="plain",result="parked"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    eprintln!(
        "notify_email: {:?} from start to the last check",
        started.elapsed()
    );
}

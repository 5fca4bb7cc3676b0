//! The HTTP side port protected like the gRPC port, end to end: TLS with the
//! services' certificate, screens logging in with their token for a session
//! cookie, scrapers reading /metrics with a bearer token, registered
//! callers reaching the board over mutual TLS, health left open.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use baton_domain::access::{TokenHolder, TokenRole};
use baton_e2e::{
    http::{exchange, Answer, Https},
    secure::{start_ingest_configured, start_projector_configured, Pki},
    TEST_CATALOG,
};
use baton_runtime::web_auth::{hex, token_sha256, SessionKey};
use baton_testkit::NatsServer;

const WALL_TOKEN: &str = "lab-wall-token-3f9a1c2e7b";
const SCRAPER_TOKEN: &str = "prometheus-token-8d2e6b1f0a";
const LOGIN_ATTEMPTS: u32 = 4;

fn callers() -> String {
    format!(
        r#"{{"callers": [
  {{"id": "ward-5-system", "role": "department", "departments": ["ward-5"]}},
  {{"id": "duty-desk", "role": "operator"}},
  {{"id": "history-import", "role": "importer"}},
  {{"id": "lab-wall", "role": "screen", "token_sha256": "{}"}},
  {{"id": "prometheus", "role": "scraper", "token_sha256": "{}"}}
]}}"#,
        hex(&token_sha256(WALL_TOKEN)),
        hex(&token_sha256(SCRAPER_TOKEN)),
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

fn cookie_of(answer: &Answer) -> String {
    let set = answer.header("set-cookie").expect("a Set-Cookie");
    set.split(';').next().expect("name=value").trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_side_port_needs_a_screen_a_scraper_or_a_registered_certificate() {
    let nats = NatsServer::start();
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog = dir.path().join("catalog.json");
    std::fs::write(&catalog, TEST_CATALOG).expect("catalog");
    let registry = dir.path().join("callers.json");
    std::fs::write(&registry, callers()).expect("callers");
    let key_file = dir.path().join("session.key");
    let key = [42u8; 32];
    std::fs::write(&key_file, key).expect("session key");
    let tls = pki.server_args(&registry);
    let projector = {
        let (tls, key_file) = (tls.clone(), key_file.clone());
        start_projector_configured(&nats.url(), &catalog, &dir.path().join("views"), |c| {
            c.tls = tls;
            c.http.http_session_key = Some(key_file);
            c.http.http_login_attempts = LOGIN_ATTEMPTS;
        })
        .await
    };
    let ingest = start_ingest_configured(&nats.url(), &catalog, |c| c.tls = tls).await;
    pki.wait_serving(projector.addr, "baton.v1.Query").await;
    pki.wait_serving(ingest.addr, "baton.v1.Ingest").await;
    let web = projector.http.expect("side port");
    let anonymous = Https::new(&pki.path("ca.crt"), None);
    let browser = ["Accept: text/html,application/xhtml+xml"];
    let mut cases = 0;

    // Health stays open, over TLS.
    for path in ["/healthz", "/readyz"] {
        assert_eq!(anonymous.get(web, path, &[]).await.status, 200, "{path}");
        cases += 1;
    }
    // Plain HTTP gets no answer from a TLS port.
    let plain = tokio::net::TcpStream::connect(web).await.expect("connect");
    let answer = exchange(plain, "GET", "/healthz", &[], "").await;
    assert!(
        answer.as_ref().map(|a| a.status != 200).unwrap_or(true),
        "plaintext answered: {answer:?}"
    );
    cases += 1;

    // Nobody: the board answers 401 with the login page, the rest 401.
    let refused = anonymous.get(web, "/", &browser).await;
    assert_eq!(refused.status, 401);
    assert!(refused
        .body
        .contains("<form method=\"post\" action=\"/login\""));
    assert!(refused.header("www-authenticate").is_some());
    for path in [
        "/events",
        "/metrics",
        "/handoff/r-1",
        "/pair/lab/ward-5",
        "/board/live",
    ] {
        let answer = anonymous.get(web, path, &[]).await;
        assert_eq!(answer.status, 401, "{path}: {}", answer.body);
        assert!(!answer.body.contains("duty board"), "{path}");
        cases += 1;
    }

    // A wrong token: 401, the login page again.
    let wrong = anonymous
        .request(
            web,
            "POST",
            "/login",
            &["Content-Type: application/x-www-form-urlencoded"],
            "token=not-the-token&next=%2F",
        )
        .await
        .expect("answer");
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("not a registered screen"));
    assert!(wrong.header("set-cookie").is_none());
    cases += 1;
    // A scraper's token does not log in to the board.
    let scraper_login = anonymous
        .request(
            web,
            "POST",
            "/login",
            &["Content-Type: application/x-www-form-urlencoded"],
            &format!("token={SCRAPER_TOKEN}"),
        )
        .await
        .expect("answer");
    assert_eq!(scraper_login.status, 401);
    cases += 1;

    // The screen's token: a session cookie, and back to where it was going.
    let login = anonymous
        .request(
            web,
            "POST",
            "/login",
            &["Content-Type: application/x-www-form-urlencoded"],
            &format!("token={WALL_TOKEN}&next=%2Fhandoff%2Fr-1"),
        )
        .await
        .expect("answer");
    assert_eq!(login.status, 303, "{}", login.body);
    assert_eq!(login.header("location"), Some("/handoff/r-1"));
    let set_cookie = login.header("set-cookie").expect("a cookie").to_owned();
    println!(
        "login: 303, Set-Cookie: baton_session=<v1.id.expiry.hmac>;{}",
        set_cookie
            .split_once(';')
            .map(|(_, a)| a)
            .unwrap_or_default()
    );
    for attribute in [
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=43200",
    ] {
        assert!(
            set_cookie.split(';').any(|a| a.trim() == attribute),
            "{attribute} in {set_cookie}"
        );
    }
    let cookie = cookie_of(&login);
    let value = cookie.strip_prefix("baton_session=").expect("our cookie");
    let expires: u64 = value
        .split('.')
        .nth(2)
        .expect("expiry")
        .parse()
        .expect("a number");
    assert!(
        expires.abs_diff(now() + 12 * 3600) <= 5,
        "expires in 12 h: {expires}"
    );
    cases += 1;
    let with_cookie = format!("Cookie: {cookie}");
    let board = anonymous.get(web, "/", &[&with_cookie]).await;
    assert_eq!(board.status, 200);
    assert!(board.body.contains("duty board"));
    let events = anonymous.get(web, "/board/live", &[&with_cookie]).await;
    assert_eq!(events.status, 200);
    // The screen may not read /metrics, nor write.
    assert_eq!(
        anonymous.get(web, "/metrics", &[&with_cookie]).await.status,
        403
    );
    let post = anonymous
        .request(web, "POST", "/handoff/r-1", &[&with_cookie], "")
        .await
        .expect("answer");
    assert_eq!(post.status, 405, "no write path over HTTP");
    cases += 3;

    // An expired cookie, signed with the right key: refused.
    let wall = TokenHolder {
        id: "lab-wall".into(),
        role: TokenRole::Screen,
        token_sha256: token_sha256(WALL_TOKEN),
    };
    let signer = SessionKey::from_bytes(&key).expect("key");
    let expired = format!("Cookie: baton_session={}", signer.issue(&wall, now() - 1));
    assert_eq!(anonymous.get(web, "/", &[&expired]).await.status, 401);
    // Tampered: a later expiry on a real cookie; another key's signature.
    let parts: Vec<&str> = value.split('.').collect();
    let extended = format!(
        "Cookie: baton_session={}.{}.{}.{}",
        parts[0],
        parts[1],
        expires + 86_400,
        parts[3]
    );
    assert_eq!(anonymous.get(web, "/", &[&extended]).await.status, 401);
    let forged = SessionKey::from_bytes(&[7u8; 32]).expect("key");
    let forged = format!(
        "Cookie: baton_session={}",
        forged.issue(&wall, now() + 3600)
    );
    assert_eq!(anonymous.get(web, "/", &[&forged]).await.status, 401);
    cases += 3;

    // The scraper: /metrics with its bearer token, nothing else.
    let bearer = format!("Authorization: Bearer {SCRAPER_TOKEN}");
    let metrics = anonymous.get(web, "/metrics", &[&bearer]).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("baton_connections_accepted_total"));
    assert_eq!(anonymous.get(web, "/", &[&bearer]).await.status, 403);
    assert_eq!(anonymous.get(web, "/events", &[&bearer]).await.status, 403);
    let wrong_bearer = anonymous
        .get(web, "/metrics", &["Authorization: Bearer guessed"])
        .await;
    assert_eq!(wrong_bearer.status, 401);
    cases += 4;
    // Ingest's side port too.
    let ingest_web = ingest.http.expect("ingest side port");
    assert_eq!(anonymous.get(ingest_web, "/metrics", &[]).await.status, 401);
    let ingest_metrics = anonymous.get(ingest_web, "/metrics", &[&bearer]).await;
    assert_eq!(ingest_metrics.status, 200);
    assert!(ingest_metrics
        .body
        .contains("baton_ingest_append_duration_seconds"));
    assert_eq!(anonymous.get(ingest_web, "/healthz", &[]).await.status, 200);
    cases += 2;

    // Client certificates: registered department and operator callers see
    // the board; an importer, an unregistered identity and a rogue CA do not.
    for (who, expected) in [
        ("ward-5-system", 200),
        ("duty-desk", 200),
        ("history-import", 403),
        ("stranger", 403),
    ] {
        let name = pki.client("ca", who, true);
        let client = Https::new(
            &pki.path("ca.crt"),
            Some((
                &pki.path(&format!("{name}.crt")),
                &pki.path(&format!("{name}.key")),
            )),
        );
        let answer = client.get(web, "/", &[]).await;
        assert_eq!(answer.status, expected, "{who}: {}", answer.body);
        if expected == 200 {
            assert!(answer.body.contains("duty board"));
        }
        // A certificate reaches no /metrics.
        assert_eq!(client.get(web, "/metrics", &[]).await.status, 403, "{who}");
        cases += 1;
    }
    let rogue = pki.client("rogue", "ward-5-system", true);
    let rogue = Https::new(
        &pki.path("ca.crt"),
        Some((
            &pki.path(&format!("{rogue}.crt")),
            &pki.path(&format!("{rogue}.key")),
        )),
    );
    let answer = rogue.request(web, "GET", "/", &[], "").await;
    assert!(
        answer.as_ref().map(|a| a.status != 200).unwrap_or(true),
        "a certificate from another CA: {answer:?}"
    );
    cases += 1;

    // Failed logins past the limit: 429, even for the right token.
    for _ in 0..LOGIN_ATTEMPTS {
        let _ = anonymous
            .request(web, "POST", "/login", &[], "token=guess")
            .await;
    }
    let limited = anonymous
        .request(web, "POST", "/login", &[], &format!("token={WALL_TOKEN}"))
        .await
        .expect("answer");
    assert_eq!(limited.status, 429);
    assert!(limited.header("retry-after").is_some());
    assert!(limited.header("set-cookie").is_none());
    cases += 1;
    let scrape = anonymous.get(web, "/metrics", &[&bearer]).await.body;
    let count = |series: &str| {
        scrape
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok())
            .unwrap_or(-1.0)
    };
    assert_eq!(count("baton_http_logins_total{result=\"ok\"}"), 1.0);
    assert_eq!(
        count("baton_http_logins_total{result=\"refused\"}"),
        2.0 + f64::from(LOGIN_ATTEMPTS)
    );
    assert_eq!(count("baton_http_logins_total{result=\"limited\"}"), 1.0);
    println!("side-port access cases: {cases}");

    tokio::time::sleep(Duration::from_millis(10)).await;
    ingest.stop().await;
    assert!(projector.stop().await);
}

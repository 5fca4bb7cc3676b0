//! The shipped configuration: production may not run without TLS and
//! caller authentication, and the caller registry fits the catalog.

use clap::Parser;

const INGEST_ENV: &str = include_str!("../../deploy/production/baton-ingest.env");
const PROJECTOR_ENV: &str = include_str!("../../deploy/production/baton-projector.env");
const INGEST_UNIT: &str = include_str!("../../deploy/production/baton-ingest.service");
const PROJECTOR_UNIT: &str = include_str!("../../deploy/production/baton-projector.service");

/// The value of `Key=` in a systemd unit (the last one, as systemd reads it).
fn unit_value<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
}

fn variables(env_file: &str) -> Vec<(String, String)> {
    env_file
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=value");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// The command line an env file amounts to: each variable as the flag
/// whose environment twin it is (without touching the process's
/// environment). BATON_LOG_FORMAT is read by every service's logging,
/// before its flags.
fn argv_of(command: &clap::Command, name: &str, vars: &[(String, String)]) -> Vec<String> {
    let mut argv = vec![name.to_owned()];
    for (key, value) in vars.iter().filter(|(k, _)| k != "BATON_LOG_FORMAT") {
        let flag = command
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == key.as_str()))
            .and_then(|a| a.get_long())
            .unwrap_or_else(|| panic!("{key} is no flag's environment twin"));
        argv.push(format!("--{flag}={value}"));
    }
    argv
}

/// One test, because it sets the process environment the flags read.
#[test]
fn production_sets_tls_authentication_and_nats_security_through_the_env_twins() {
    let security_variables = [
        "BATON_TLS_CERT",
        "BATON_TLS_KEY",
        "BATON_CLIENT_CA",
        "BATON_CALLERS",
        "NATS_USER",
        "NATS_CA",
        "NATS_CERT",
        "NATS_KEY",
        // The caps and deadlines, set where they size LimitNOFILE.
        "BATON_GRPC_MAX_CONNECTIONS",
        "BATON_GRPC_MAX_STREAMS",
        "BATON_GRPC_HANDSHAKE_TIMEOUT",
        "BATON_GRPC_IDLE_TIMEOUT",
        "BATON_GRPC_KEEPALIVE",
        "BATON_GRPC_KEEPALIVE_TIMEOUT",
        "BATON_HTTP_MAX_CONNECTIONS",
        "BATON_HTTP_HEADER_TIMEOUT",
        "BATON_HTTP_IDLE_TIMEOUT",
        "BATON_HTTP_WRITE_TIMEOUT",
        "BATON_HTTP_SEND_BUFFER",
        // Screens' sessions survive a restart.
        "BATON_HTTP_SESSION_KEY",
        "BATON_HTTP_SESSION_LIFETIME",
        "BATON_HTTP_LOGIN_ATTEMPTS",
    ];
    for (name, file) in [("ingest", INGEST_ENV), ("projector", PROJECTOR_ENV)] {
        let vars = variables(file);
        for key in security_variables {
            assert!(
                vars.iter().any(|(k, v)| k == key && !v.is_empty()),
                "deploy/production/baton-{name}.env does not set {key}"
            );
        }
        assert!(
            vars.iter()
                .any(|(k, v)| k == "NATS_URL" && v.split(',').all(|u| u.starts_with("tls://"))),
            "{name}: NATS_URL must be tls://"
        );
        assert!(
            !vars.iter().any(|(k, _)| k == "NATS_PASSWORD"),
            "{name}: the password belongs in the secret store"
        );
    }

    // The variables are the flags' environment twins: the services read them.
    for (k, v) in variables(INGEST_ENV) {
        std::env::set_var(k, v);
    }
    std::env::set_var("NATS_PASSWORD", "from-the-secret-store");
    let ingest = baton_ingest::Config::try_parse_from(["baton-ingest"]).expect("ingest flags");
    assert!(ingest.tls.tls_cert.is_some() && ingest.tls.tls_key.is_some());
    assert!(ingest.tls.client_ca.is_some() && ingest.tls.callers.is_some());
    assert_eq!(ingest.nats.nats_user.as_deref(), Some("baton-ingest"));
    assert!(ingest.nats.nats_ca.is_some() && ingest.nats.nats_cert.is_some());
    for (k, v) in variables(PROJECTOR_ENV) {
        std::env::set_var(k, v);
    }
    let projector =
        baton_projector::Config::try_parse_from(["baton-projector"]).expect("projector flags");
    assert!(projector.tls.client_ca.is_some() && projector.tls.callers.is_some());
    assert_eq!(projector.nats.nats_user.as_deref(), Some("baton-projector"));

    // The side port serves TLS (it takes the gRPC certificate) and, with the
    // registry, authenticates; it listens beyond loopback for the screens
    // and Prometheus, which only that makes safe.
    for (name, tls, http_listen) in [
        ("ingest", &ingest.tls, ingest.http_listen),
        ("projector", &projector.tls, projector.http_listen),
    ] {
        assert!(
            tls.tls_cert.is_some() && tls.tls_key.is_some(),
            "{name}: TLS on the HTTP port"
        );
        assert!(tls.callers.is_some(), "{name}: the side port authenticates");
        assert!(
            !http_listen.ip().is_loopback(),
            "{name}: the side port is for other machines"
        );
    }
    for (name, grpc, http) in [
        ("ingest", &ingest.grpc, &ingest.http),
        ("projector", &projector.grpc, &projector.http),
    ] {
        grpc.check().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            http.http_session_key.is_some(),
            "{name}: a session key file"
        );
        assert!(
            http.http_idle_timeout > std::time::Duration::from_secs(15),
            "{name}: the idle timeout outlasts the board's 15 s keep-alive"
        );
        assert!(
            http.http_write_timeout < http.http_idle_timeout,
            "{name}: a deaf reader is dropped before the idle bound"
        );
    }

    // Each unit file's open-file limit covers its caps plus everything
    // else, and runs the binary with that env file, stopped by SIGTERM.
    for (name, unit, grpc_cap, http_cap) in [
        (
            "ingest",
            INGEST_UNIT,
            ingest.grpc.grpc_max_connections,
            ingest.http.http_max_connections,
        ),
        (
            "projector",
            PROJECTOR_UNIT,
            projector.grpc.grpc_max_connections,
            projector.http.http_max_connections,
        ),
    ] {
        let limit: u64 = unit_value(unit, "LimitNOFILE")
            .unwrap_or_else(|| panic!("baton-{name}.service sets LimitNOFILE"))
            .parse()
            .expect("a number");
        let needed = grpc_cap as u64 + http_cap as u64 + baton_runtime::ports::OTHER_FILES;
        println!("baton-{name}.service: LimitNOFILE={limit}, caps {grpc_cap} + {http_cap} + {} = {needed}", baton_runtime::ports::OTHER_FILES);
        assert!(
            limit >= 2 * needed,
            "baton-{name}.service: LimitNOFILE={limit} is under twice the caps plus other files ({needed})"
        );
        assert_eq!(
            unit_value(unit, "EnvironmentFile"),
            Some(format!("/run/secrets/baton-{name}.env").as_str()),
            "the secrets come last"
        );
        assert!(unit.contains(&format!("EnvironmentFile=/etc/baton/baton-{name}.env")));
        assert_eq!(
            unit_value(unit, "ExecStart"),
            Some(format!("/usr/local/bin/baton-{name}").as_str())
        );
        assert_eq!(unit_value(unit, "KillSignal"), Some("SIGTERM"));
    }

    // A client CA without a registry (or the reverse) is refused at start.
    assert!(baton_ingest::Config::try_parse_from([
        "baton-ingest",
        "--tls-cert",
        "c",
        "--tls-key",
        "k",
        "--client-ca",
        "ca",
    ])
    .is_ok_and(|c| c.tls.callers.is_some()));
    for (k, _) in variables(PROJECTOR_ENV)
        .into_iter()
        .chain(variables(INGEST_ENV))
    {
        std::env::remove_var(k);
    }
    std::env::remove_var("NATS_PASSWORD");
    assert!(baton_ingest::Config::try_parse_from([
        "baton-ingest",
        "--tls-cert",
        "c",
        "--tls-key",
        "k",
        "--client-ca",
        "ca",
    ])
    .is_err());
    assert!(
        baton_ingest::Config::try_parse_from(["baton-ingest", "--nats-user", "u"]).is_err(),
        "a user without a password"
    );
    // Dev mode: no flags, no TLS.
    let dev = baton_ingest::Config::try_parse_from(["baton-ingest"]).expect("dev");
    assert!(dev.tls.tls_cert.is_none() && dev.tls.callers.is_none());
}

#[test]
fn the_shipped_caller_registry_fits_the_shipped_catalog() {
    let catalog = baton_domain::Catalog::from_json(include_str!("../../deploy/catalog.json"))
        .expect("catalog");
    let registry =
        baton_domain::access::Registry::from_json(include_str!("../../deploy/callers.json"), |d| {
            catalog.has_department(d)
        })
        .expect("deploy/callers.json");
    assert!(registry.identify(["ward-5-system"]).is_ok());
    assert!(registry.identify(["duty-coordinator"]).is_ok());
    // Screens and a scraper, by token hash. The shipped hashes are of tokens
    // nobody kept: a deployment replaces them (batonctl token new).
    use baton_domain::access::TokenRole;
    let holders: Vec<_> = registry.holders().collect();
    assert!(holders.iter().any(|h| h.role == TokenRole::Screen));
    assert!(holders.iter().any(|h| h.role == TokenRole::Scraper));
    for guessable in ["", "token", "secret", "changeme", "password", "prometheus"] {
        let hash = baton_runtime::web_auth::token_sha256(guessable);
        assert!(
            holders.iter().all(|h| h.token_sha256 != hash),
            "a shipped token hash is of {guessable:?}"
        );
    }
}

/// The gateway's production flags, read from its env file through each
/// flag's environment twin (by name, without touching the process's
/// environment, which the test above owns).
#[test]
fn the_gateway_runs_in_production_on_tls_as_its_own_caller() {
    use clap::CommandFactory;
    let vars = variables(include_str!("../../deploy/production/baton-gateway.env"));
    let mut argv = argv_of(&baton_gateway::Config::command(), "baton-gateway", &vars);
    assert!(
        !vars.iter().any(|(k, _)| k == "BATON_GATEWAY_ID_SALT"),
        "the id salt belongs in the secret store"
    );
    argv.push("--id-salt=from-the-secret-store".to_owned());
    let config = baton_gateway::Config::try_parse_from(&argv).expect("gateway flags");
    assert!(
        config.tls.tls_cert.is_some() && config.tls.callers.is_some(),
        "MLLP and the side port on TLS"
    );
    assert!(config.ingest_url.starts_with("https://") && config.query_url.starts_with("https://"));
    assert!(
        config.ingest_cert.is_some() && config.ingest_key.is_some(),
        "its own certificate"
    );
    assert!(
        !config.listen.ip().is_loopback(),
        "the senders are other machines"
    );
    assert!(
        config
            .fhir_server
            .as_deref()
            .is_some_and(|s| s.starts_with("https://"))
            && config.fhir_server_ca.is_some()
            && config.fhir_server_token.is_none(),
        "Tasks fetched over TLS, the token from the secret store"
    );
    let unit = include_str!("../../deploy/production/baton-gateway.service");
    let limit: u64 = unit_value(unit, "LimitNOFILE")
        .expect("LimitNOFILE")
        .parse()
        .expect("a number");
    let needed = (config.max_connections + config.http.http_max_connections) as u64
        + baton_runtime::ports::OTHER_FILES;
    assert!(
        limit >= 2 * needed,
        "LimitNOFILE={limit} under twice {needed}"
    );
    assert_eq!(
        unit_value(unit, "EnvironmentFile"),
        Some("/run/secrets/baton-gateway.env")
    );
    assert_eq!(
        unit_value(unit, "ExecStart"),
        Some("/usr/local/bin/baton-gateway")
    );
}

/// Notify's production flags, read from its env file through each flag's
/// environment twin, like the gateway's.
#[test]
fn notify_runs_in_production_on_tls_as_its_own_nats_user() {
    use clap::CommandFactory;
    let vars = variables(include_str!("../../deploy/production/baton-notify.env"));
    let mut argv = argv_of(&baton_notify::Config::command(), "baton-notify", &vars);
    assert!(
        !vars.iter().any(|(k, _)| k == "NATS_PASSWORD"),
        "the password belongs in the secret store"
    );
    argv.push("--nats-password=from-the-secret-store".to_owned());
    let config = baton_notify::Config::try_parse_from(&argv).expect("notify flags");
    assert_eq!(config.nats.nats_user.as_deref(), Some("baton-notify"));
    assert!(
        config.nats_url.split(',').all(|u| u.starts_with("tls://"))
            && config.nats.nats_ca.is_some()
            && config.nats.nats_cert.is_some(),
        "NATS over TLS with its own certificate"
    );
    assert!(
        config.tls.tls_cert.is_some() && config.tls.callers.is_some(),
        "the side port on TLS, authenticated"
    );
    assert!(config.board_url.starts_with("https://"));
    assert!(
        config.ack_key.is_some()
            && config
                .ack_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
            && config.ingest_url.starts_with("https://")
            && config.ingest_cert.is_some(),
        "acknowledgement links over TLS, appended as notify's own caller"
    );
    let catalog = baton_domain::Catalog::from_json(include_str!("../../deploy/catalog.json"))
        .expect("catalog");
    let registry =
        baton_domain::access::Registry::from_json(include_str!("../../deploy/callers.json"), |d| {
            catalog.has_department(d)
        })
        .expect("deploy/callers.json");
    let notify = registry
        .identify(["baton-notify"])
        .expect("notify is a caller");
    assert_eq!(
        notify.role,
        baton_domain::access::Role::Operator,
        "it acknowledges escalations"
    );
    assert!(config.routes.is_absolute(), "{:?}", config.routes);
    // Its NATS user exists in the shipped users.
    assert!(include_str!("../../deploy/nats/auth.conf").contains("user: baton-notify"));

    let unit = include_str!("../../deploy/production/baton-notify.service");
    let limit: u64 = unit_value(unit, "LimitNOFILE")
        .expect("LimitNOFILE")
        .parse()
        .expect("a number");
    let needed = config.http.http_max_connections as u64
        + baton_notify::deliver::MAX_ATTEMPTS_AT_ONCE as u64
        + baton_runtime::ports::OTHER_FILES;
    assert!(
        limit >= 2 * needed,
        "LimitNOFILE={limit} under twice {needed}"
    );
    assert_eq!(
        unit_value(unit, "EnvironmentFile"),
        Some("/run/secrets/baton-notify.env")
    );
    assert_eq!(
        unit_value(unit, "ExecStart"),
        Some("/usr/local/bin/baton-notify")
    );
    assert_eq!(
        unit_value(unit, "ExecReload"),
        Some("/bin/kill -HUP $MAINPID"),
        "systemctl reload reads the routes again"
    );
}

#[test]
fn the_gateway_may_append_for_exactly_the_departments_its_mapping_names() {
    let catalog = baton_domain::Catalog::from_json(include_str!("../../deploy/catalog.json"))
        .expect("catalog");
    let registry =
        baton_domain::access::Registry::from_json(include_str!("../../deploy/callers.json"), |d| {
            catalog.has_department(d)
        })
        .expect("deploy/callers.json");
    let mapping = baton_gateway::mapping::Mapping::from_json(include_str!(
        "../../deploy/gateway/hl7-lab.json"
    ))
    .expect("deploy/gateway/hl7-lab.json");
    let named: std::collections::BTreeSet<String> = mapping
        .locations
        .values()
        .cloned()
        .chain(mapping.services.values().map(|s| s.supplier.clone()))
        .collect();
    let gateway = registry
        .identify(["hl7-gateway"])
        .expect("the gateway is a caller");
    let may: std::collections::BTreeSet<String> =
        gateway.departments.iter().map(|d| d.to_string()).collect();
    assert_eq!(may, named);
    for department in &named {
        assert!(
            catalog.has_department(&baton_domain::Token::parse(department).expect("token")),
            "{department} is the catalog's"
        );
    }
}

#[test]
fn production_nats_requires_tls_with_client_certificates_and_users() {
    let conf = include_str!("../../deploy/production/nats.conf");
    assert!(conf.contains("tls {") && conf.contains("verify: true"));
    assert!(conf.contains("include \"../nats/auth.conf\""));
    assert!(conf.contains("sync_interval: always"));
}

/// Each failure the product brief lists (docs: ../shared/DOMAIN.md, "What
/// goes wrong") is a hand-off the shipped catalog keeps a promise on: a
/// promise of its kind that the supplier may be held to, with a target at
/// every priority.
#[test]
fn the_shipped_catalog_promises_every_hand_off_the_brief_lists_as_failing() {
    let catalog = baton_domain::Catalog::from_json(include_str!("../../deploy/catalog.json"))
        .expect("catalog");
    let cases = [
        (
            "the air conditioning not repaired in time",
            "repair",
            "engineering",
            "ward-5",
        ),
        (
            "the lab's results (its analyzer broke)",
            "lab",
            "lab",
            "ward-5",
        ),
        ("a drug that ran out", "pharmacy", "pharmacy", "ward-6"),
        (
            "a dental consult for cardiology",
            "consult",
            "dentistry",
            "cardiology",
        ),
        (
            "the surgeon late to theatre",
            "surgeon-arrival",
            "surgery",
            "anaesthesia",
        ),
        (
            "the surgeon late to the operating room",
            "surgeon-arrival",
            "surgery",
            "or",
        ),
    ];
    for (case, kind, supplier, customer) in cases {
        for department in [supplier, customer] {
            let id = baton_domain::Token::parse(department).expect("a department id");
            assert!(catalog.has_department(&id), "{case}: {department}");
        }
        let promises: Vec<_> = catalog
            .promises
            .iter()
            .filter(|p| p.kind.as_str() == kind)
            .filter(|p| p.supplier.as_ref().is_none_or(|s| s.as_str() == supplier))
            .filter(|p| p.customer.as_ref().is_none_or(|c| c.as_str() == customer))
            .collect();
        assert!(!promises.is_empty(), "{case}: no promise on {kind}");
        for priority in [
            baton_domain::Priority::Routine,
            baton_domain::Priority::Urgent,
            baton_domain::Priority::Stat,
        ] {
            assert!(
                promises.iter().any(|p| p.targets.contains_key(&priority)),
                "{case}: no target at {priority}"
            );
        }
    }
}

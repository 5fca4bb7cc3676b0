//! The shipped configuration: production may not run without TLS and
//! caller authentication, and the caller registry fits the catalog.

use clap::Parser;

const INGEST_ENV: &str = include_str!("../../deploy/production/baton-ingest.env");
const PROJECTOR_ENV: &str = include_str!("../../deploy/production/baton-projector.env");

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
}

#[test]
fn production_nats_requires_tls_with_client_certificates_and_users() {
    let conf = include_str!("../../deploy/production/nats.conf");
    assert!(conf.contains("tls {") && conf.contains("verify: true"));
    assert!(conf.contains("include \"../nats/auth.conf\""));
    assert!(conf.contains("sync_interval: always"));
}

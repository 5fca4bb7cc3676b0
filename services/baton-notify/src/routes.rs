//! The routes file: which signals go to which channels. JSON, read at
//! start and refused with its path, line and column, or the route or
//! channel at fault. Pure but for reading the file and the channels'
//! secrets.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;

use crate::{
    notice::{Kind, Notice},
    policy::{Policy, Quiet},
};

/// Why the routes cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RoutesError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the routes {path}, line {line} column {column}: {message}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("the routes {path}: {at}: {message}")]
    Invalid {
        path: String,
        at: String,
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoutes {
    channels: BTreeMap<String, RawChannel>,
    routes: Vec<RawRoute>,
}

/// Exactly one of its kinds.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    #[serde(default)]
    webhook: Option<RawWebhook>,
    #[serde(default)]
    email: Option<RawEmail>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: String,
    /// File holding the HMAC key the receiver verifies signatures with.
    secret_file: PathBuf,
    /// PEM CA that signs an https receiver's certificate.
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default = "default_timeout")]
    timeout: String,
}

fn default_timeout() -> String {
    "5s".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    /// `host:port` of the SMTP relay.
    relay: String,
    from: String,
    to: Vec<String>,
    /// PEM CA that signs the relay's certificate: STARTTLS is required.
    ca_file: PathBuf,
    #[serde(default)]
    username: Option<String>,
    /// File holding the password for AUTH PLAIN (after STARTTLS only).
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default = "default_email_timeout")]
    timeout: String,
}

/// An SMTP exchange is a dozen round trips, and relays greet slowly.
fn default_email_timeout() -> String {
    "10s".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: String,
    #[serde(rename = "match", default)]
    matches: Match,
    deliver: Vec<String>,
    /// Deliver what the route takes as one message per interval (`"5m"`).
    #[serde(default)]
    group: Option<String>,
    /// Hours in which the route holds all but STAT work.
    #[serde(default)]
    quiet: Option<RawQuiet>,
    /// Escalations nobody acknowledged, told to the next level after a while.
    #[serde(default)]
    renotify: Vec<RawLevel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLevel {
    after: String,
    deliver: Vec<String>,
}

/// The next level an unacknowledged escalation is told to: `after` this
/// long past the breach, to these channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    pub after: Duration,
    pub deliver: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuiet {
    from: String,
    until: String,
    time_zone: String,
}

/// What a route takes; an empty list takes any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    #[serde(default)]
    pub signals: BTreeSet<Kind>,
    #[serde(default)]
    pub policy: BTreeSet<String>,
    #[serde(default)]
    pub supplier: BTreeSet<String>,
    #[serde(default)]
    pub customer: BTreeSet<String>,
    #[serde(default)]
    pub priority: BTreeSet<String>,
    /// Escalation targets (`duty-coordinator`).
    #[serde(default)]
    pub target: BTreeSet<String>,
}

impl Match {
    pub fn takes(&self, n: &Notice) -> bool {
        let any = |set: &BTreeSet<String>, value: &str| set.is_empty() || set.contains(value);
        (self.signals.is_empty() || self.signals.contains(&n.kind))
            && any(&self.policy, &n.policy)
            && any(&self.supplier, &n.supplier)
            && any(&self.customer, &n.customer)
            && any(&self.priority, &n.priority)
            && (self.target.is_empty()
                || n.target.as_ref().is_some_and(|t| self.target.contains(t)))
    }
}

/// `250ms`, or a duration as the catalog writes one (`5s`, `1m`).
fn timeout(text: &str) -> Result<Duration, String> {
    match text.strip_suffix("ms") {
        Some(ms) => ms
            .parse()
            .map(Duration::from_millis)
            .map_err(|_| format!("{text:?} is not a whole number of ms")),
        None => baton_domain::time::parse_duration(text).map_err(|e| e.to_string()),
    }
}

/// A webhook receiver.
#[derive(Clone)]
pub struct Webhook {
    pub url: hyper::Uri,
    pub secret: Vec<u8>,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// An SMTP relay and the mailbox(es) it delivers to. The password is
/// never shown (not in `Debug`, not in errors).
#[derive(Clone)]
pub struct Email {
    /// The relay's host: what its certificate must name.
    pub host: String,
    pub port: u16,
    pub from: String,
    /// Never empty.
    pub to: Vec<String>,
    pub ca_file: PathBuf,
    /// User name and password for AUTH PLAIN.
    pub login: Option<(String, String)>,
    /// The whole exchange, from connecting to the relay's answer to the
    /// message.
    pub timeout: Duration,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("user", &self.login.as_ref().map(|(user, _)| user))
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A channel as the routes file configures it.
#[derive(Debug, Clone)]
pub enum ChannelConfig {
    Webhook(Webhook),
    Email(Email),
}

impl ChannelConfig {
    /// How long one attempt may take.
    pub fn timeout(&self) -> Duration {
        match self {
            ChannelConfig::Webhook(w) => w.timeout,
            ChannelConfig::Email(e) => e.timeout,
        }
    }
}

/// A mailbox as an envelope and a header carry it, checked minimally: one
/// `@` with something on each side, and nothing that could end a command
/// or a header or bracket an address (CR, LF, other controls, spaces, `<`,
/// `>`).
pub fn check_address(address: &str) -> Result<(), String> {
    if let Some(c) = address
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>'))
    {
        return Err(format!("{address:?} is not an address: it holds {c:?}"));
    }
    match address.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(())
        }
        _ => Err(format!(
            "{address:?} is not an address: it needs one @ with a mailbox and a domain"
        )),
    }
}

/// `host:port`, `[v6-address]:port`.
fn relay(text: &str) -> Result<(String, u16), String> {
    let wrong = || format!("{text:?} is not host:port");
    let (host, port) = text.rsplit_once(':').ok_or_else(wrong)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().map_err(|_| wrong())?;
    if host.is_empty() || port == 0 || host.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(wrong());
    }
    Ok((host.to_owned(), port))
}

fn email(raw: RawEmail, at: &dyn Fn(&str) -> String) -> Result<Email, (String, String)> {
    let (host, port) = relay(&raw.relay).map_err(|e| (at("relay"), e))?;
    check_address(&raw.from).map_err(|e| (at("from"), e))?;
    if raw.to.is_empty() {
        return Err((at("to"), "name at least one address".to_owned()));
    }
    for (i, to) in raw.to.iter().enumerate() {
        check_address(to).map_err(|e| (at(&format!("to[{i}]")), e))?;
    }
    let login = match (raw.username, raw.password_file) {
        (None, None) => None,
        (Some(_), None) => {
            return Err((
                at("password_file"),
                "a username needs its password_file".to_owned(),
            ))
        }
        (None, Some(_)) => {
            return Err((
                at("username"),
                "a password_file needs its username".to_owned(),
            ))
        }
        (Some(user), Some(file)) => {
            if user.is_empty() || user.contains(|c: char| c.is_control()) {
                return Err((
                    at("username"),
                    "empty or holds a control character".to_owned(),
                ));
            }
            let password = std::fs::read_to_string(&file)
                .map_err(|e| (at("password_file"), format!("{}: {e}", file.display())))?;
            // A file written by `echo` ends with a newline that is not the password's.
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            if password.is_empty() || password.contains(|c: char| c.is_control()) {
                return Err((
                    at("password_file"),
                    format!("{}: empty or holds a control character", file.display()),
                ));
            }
            Some((user, password))
        }
    };
    let timeout = timeout(&raw.timeout).map_err(|e| (at("timeout"), e))?;
    Ok(Email {
        host,
        port,
        from: raw.from,
        to: raw.to,
        ca_file: raw.ca_file,
        login,
        timeout,
    })
}

/// A route, checked.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub matches: Match,
    pub deliver: Vec<String>,
    /// Grouping and quiet hours.
    pub policy: Policy,
    /// For escalations: the levels told while nobody acknowledges, in order.
    pub renotify: Vec<Level>,
}

/// A route's `group` and `quiet`, checked; `at` names the route in errors.
fn policy(
    group: Option<&str>,
    quiet: Option<&RawQuiet>,
    at: &str,
) -> Result<Policy, (String, String)> {
    let group = group
        .map(|g| match timeout(g) {
            Ok(every) if every >= Duration::from_secs(1) => Ok(every),
            Ok(_) => Err((format!("{at}.group"), format!("{g:?} is under a second"))),
            Err(e) => Err((format!("{at}.group"), e)),
        })
        .transpose()?;
    let quiet = quiet
        .map(|q| {
            let time = |field: &str, text: &str| {
                jiff::civil::Time::strptime("%H:%M", text).map_err(|_| {
                    (
                        format!("{at}.quiet.{field}"),
                        format!("{text:?} is not a time of day (HH:MM)"),
                    )
                })
            };
            let from = time("from", &q.from)?;
            let until = time("until", &q.until)?;
            if from == until {
                return Err((
                    format!("{at}.quiet"),
                    "from and until are the same time".to_owned(),
                ));
            }
            let time_zone = jiff::tz::TimeZone::get(&q.time_zone).map_err(|_| {
                (
                    format!("{at}.quiet.time_zone"),
                    format!("{:?} is not a time zone", q.time_zone),
                )
            })?;
            Ok(Quiet {
                from,
                until,
                time_zone,
            })
        })
        .transpose()?;
    Ok(Policy { group, quiet })
}

/// The routes and their channels.
#[derive(Debug, Clone)]
pub struct Routes {
    pub channels: BTreeMap<String, ChannelConfig>,
    pub routes: Vec<Route>,
}

/// Where in the file something is wrong, and what.
type Fault = (String, String);

/// The channel `name`, checked.
fn channel(name: &str, raw: RawChannel) -> Result<ChannelConfig, Fault> {
    // Names go into the parked subject and the metrics' labels.
    baton_domain::id::check_token(name).map_err(|e| (format!("channels.{name}"), e.to_string()))?;
    match raw {
        RawChannel {
            webhook: Some(w),
            email: None,
        } => webhook(w, &|what: &str| format!("channels.{name}.webhook.{what}"))
            .map(ChannelConfig::Webhook),
        RawChannel {
            webhook: None,
            email: Some(e),
        } => {
            let at = |what: &str| format!("channels.{name}.email.{what}");
            email(e, &at).map(ChannelConfig::Email)
        }
        RawChannel {
            webhook: None,
            email: None,
        } => Err((
            format!("channels.{name}"),
            "name its kind: webhook or email".into(),
        )),
        RawChannel {
            webhook: Some(_),
            email: Some(_),
        } => Err((
            format!("channels.{name}"),
            "a channel is a webhook or an email, not both".into(),
        )),
    }
}

/// A webhook channel, checked; `at` names its fields.
fn webhook(w: RawWebhook, at: &dyn Fn(&str) -> String) -> Result<Webhook, Fault> {
    let url: hyper::Uri = w
        .url
        .parse()
        .map_err(|e| (at("url"), format!("{:?} is not a URL: {e}", w.url)))?;
    if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
        return Err((
            at("url"),
            format!("{:?} is not an http:// or https:// URL", w.url),
        ));
    }
    let secret = std::fs::read(&w.secret_file).map_err(|e| {
        (
            at("secret_file"),
            format!("{}: {e}", w.secret_file.display()),
        )
    })?;
    if secret.len() < 16 {
        return Err((
            at("secret_file"),
            "the key must be at least 16 bytes".into(),
        ));
    }
    let timeout = timeout(&w.timeout).map_err(|e| (at("timeout"), e))?;
    Ok(Webhook {
        url,
        secret,
        ca_file: w.ca_file,
        timeout,
    })
}

/// Route `i`, checked against the `channels` it may deliver to.
fn route(
    i: usize,
    raw: RawRoute,
    channels: &BTreeMap<String, ChannelConfig>,
) -> Result<Route, Fault> {
    baton_domain::id::check_token(&raw.name)
        .map_err(|e| (format!("routes[{i}].name"), e.to_string()))?;
    let at = format!("routes[{i}] ({})", raw.name);
    if let Some(missing) = raw.deliver.iter().find(|c| !channels.contains_key(*c)) {
        return Err((format!("{at}.deliver"), format!("no channel {missing:?}")));
    }
    let policy = policy(raw.group.as_deref(), raw.quiet.as_ref(), &at)?;
    let renotify = levels(&at, &raw.renotify, channels)?;
    Ok(Route {
        name: raw.name,
        matches: raw.matches,
        deliver: raw.deliver,
        policy,
        renotify,
    })
}

/// A route's re-notification levels, each later than the one before.
fn levels(
    at: &str,
    raw: &[RawLevel],
    channels: &BTreeMap<String, ChannelConfig>,
) -> Result<Vec<Level>, Fault> {
    let mut levels: Vec<Level> = Vec::new();
    for (n, level) in raw.iter().enumerate() {
        let here = |field: &str| format!("{at}.renotify[{n}].{field}");
        let after = timeout(&level.after).map_err(|e| (here("after"), e))?;
        if levels.last().is_some_and(|l| l.after >= after) {
            return Err((
                here("after"),
                "each level comes after the one before".to_owned(),
            ));
        }
        if let Some(missing) = level.deliver.iter().find(|c| !channels.contains_key(*c)) {
            return Err((here("deliver"), format!("no channel {missing:?}")));
        }
        levels.push(Level {
            after,
            deliver: level.deliver.clone(),
        });
    }
    Ok(levels)
}

impl Routes {
    pub fn load(path: &Path) -> Result<Routes, RoutesError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RoutesError::Read {
            path: shown.clone(),
            source,
        })?;
        Routes::from_json(&text, &shown)
    }

    /// Reads routes from `text`; `path` names it in errors.
    pub fn from_json(text: &str, path: &str) -> Result<Routes, RoutesError> {
        let raw: RawRoutes = serde_json::from_str(text).map_err(|e| RoutesError::Syntax {
            path: path.to_owned(),
            line: e.line(),
            column: e.column(),
            message: baton_domain::catalog::json_message(&e),
        })?;
        let invalid = |at: String, message: String| RoutesError::Invalid {
            path: path.to_owned(),
            at,
            message,
        };
        let at_fault = |(at, message): Fault| invalid(at, message);
        let mut channels = BTreeMap::new();
        for (name, raw) in raw.channels {
            let built = channel(&name, raw).map_err(at_fault)?;
            channels.insert(name, built);
        }
        let routes = raw
            .routes
            .into_iter()
            .enumerate()
            .map(|(i, raw)| route(i, raw, &channels).map_err(at_fault))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Routes { channels, routes })
    }

    /// Every (route, channel) that takes `notice`, each pair once.
    pub fn deliveries<'a>(&'a self, notice: &Notice) -> Vec<(&'a Route, &'a str)> {
        self.routes
            .iter()
            .filter(|r| r.matches.takes(notice))
            .flat_map(|r| r.deliver.iter().map(move |c| (r, c.as_str())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(kind: Kind, supplier: &str, priority: &str, target: Option<&str>) -> Notice {
        Notice {
            kind,
            subject: "baton.sla.x".into(),
            sequence: 1,
            policy: "repair-response".into(),
            supplier: supplier.into(),
            customer: "ward-5".into(),
            priority: priority.into(),
            handoff: "pump-1".into(),
            target: target.map(str::to_owned),
            body: serde_json::Value::Null,
        }
    }

    fn routes(dir: &Path) -> String {
        let secret = dir.join("secret");
        std::fs::write(&secret, "0123456789abcdef0123").expect("secret");
        format!(
            r#"{{"channels": {{"chat": {{"webhook": {{"url": "http://127.0.0.1:9/hook", "secret_file": {secret:?}, "timeout": "2s"}}}},
                             "pager": {{"webhook": {{"url": "https://pager.example/x", "secret_file": {secret:?}}}}}}},
               "routes": [
                 {{"name": "engineering", "match": {{"signals": ["breach", "escalation"], "supplier": ["engineering"]}}, "deliver": ["chat"]}},
                 {{"name": "stat", "match": {{"signals": ["breach"], "priority": ["stat"]}}, "deliver": ["pager", "chat"]}},
                 {{"name": "duty", "match": {{"signals": ["escalation"], "target": ["duty-coordinator"]}}, "deliver": ["pager"]}}
               ]}}"#
        )
    }

    #[test]
    fn the_shipped_routes_are_valid() {
        let dir = tempfile::tempdir().expect("dir");
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "0123456789abcdef0123").expect("secret");
        // The secrets live on the hospital's machines; here, one stands in.
        let mut shipped: serde_json::Value =
            serde_json::from_str(include_str!("../../../deploy/notify/routes.json")).expect("JSON");
        for channel in shipped["channels"]
            .as_object_mut()
            .expect("channels")
            .values_mut()
        {
            channel["webhook"]["secret_file"] = serde_json::json!(secret);
        }
        let r =
            Routes::from_json(&shipped.to_string(), "deploy/notify/routes.json").expect("valid");
        assert_eq!(r.routes.len(), 4);
    }

    #[test]
    fn a_signal_goes_where_its_routes_say() {
        let dir = tempfile::tempdir().expect("dir");
        let r = Routes::from_json(&routes(dir.path()), "routes.json").expect("valid");
        let names = |n: &Notice| {
            r.deliveries(n)
                .iter()
                .map(|(route, channel)| format!("{}:{channel}", route.name))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&notice(Kind::Breach, "engineering", "stat", None)),
            ["engineering:chat", "stat:pager", "stat:chat"]
        );
        assert_eq!(
            names(&notice(Kind::Breach, "lab", "routine", None)),
            Vec::<String>::new()
        );
        assert_eq!(
            names(&notice(Kind::Warning, "engineering", "stat", None)),
            Vec::<String>::new()
        );
        assert_eq!(
            names(&notice(
                Kind::Escalation,
                "lab",
                "urgent",
                Some("duty-coordinator")
            )),
            ["duty:pager"]
        );
        assert_eq!(r.channels["chat"].timeout(), Duration::from_secs(2));
        assert_eq!(r.channels["pager"].timeout(), Duration::from_secs(5));
        assert_eq!(timeout("250ms"), Ok(Duration::from_millis(250)));
        assert!(timeout("fast").is_err());
    }

    #[test]
    fn a_route_s_grouping_and_quiet_hours_are_read_and_checked() {
        let dir = tempfile::tempdir().expect("dir");
        let good = routes(dir.path()).replace(
            r#""deliver": ["chat"]}"#,
            r#""deliver": ["chat"], "group": "5m",
                "quiet": {"from": "22:00", "until": "07:00", "time_zone": "Europe/Amsterdam"}}"#,
        );
        let r = Routes::from_json(&good, "r.json").expect("valid");
        let policy = &r.routes[0].policy;
        assert_eq!(policy.group, Some(Duration::from_secs(300)));
        let quiet = policy.quiet.as_ref().expect("quiet hours");
        assert_eq!(quiet.from, jiff::civil::Time::constant(22, 0, 0, 0));
        assert_eq!(r.routes[1].policy, Policy::default());
        for (wrong, at) in [
            (r#""group": "5m""#, r#""group": "soon""#),
            (r#""group": "5m""#, r#""group": "500ms""#),
            (r#""from": "22:00""#, r#""from": "25:00""#),
            (r#""until": "07:00""#, r#""until": "22:00""#),
            (r#""Europe/Amsterdam""#, r#""Mars/Olympus""#),
        ]
        .map(|(from, to)| (good.replace(from, to), to))
        {
            let e = Routes::from_json(&wrong, "r.json")
                .expect_err(at)
                .to_string();
            assert!(e.contains("routes[0] (engineering)"), "{at}: {e}");
        }
        let e = Routes::from_json(
            &good.replace(r#""group": "5m""#, r#""group": "soon""#),
            "r.json",
        )
        .expect_err("group")
        .to_string();
        assert!(e.contains("routes[0] (engineering).group"), "{e}");
        let e = Routes::from_json(&good.replace("Europe/Amsterdam", "Mars/Olympus"), "r.json")
            .expect_err("zone")
            .to_string();
        assert!(
            e.contains(".quiet.time_zone") && e.contains("Mars/Olympus"),
            "{e}"
        );
    }

    #[test]
    fn re_notification_levels_come_one_after_another_to_known_channels() {
        let dir = tempfile::tempdir().expect("dir");
        let with = |levels: &str| {
            routes(dir.path()).replace(
                r#""deliver": ["pager"]}"#,
                &format!(r#""deliver": ["pager"], "renotify": {levels}}}"#),
            )
        };
        let r = Routes::from_json(
            &with(r#"[{"after": "15m", "deliver": ["chat"]}, {"after": "30m", "deliver": ["pager", "chat"]}]"#),
            "r.json",
        )
        .expect("valid");
        let duty = r.routes.iter().find(|r| r.name == "duty").expect("duty");
        assert_eq!(
            duty.renotify,
            [
                Level {
                    after: Duration::from_secs(900),
                    deliver: vec!["chat".into()]
                },
                Level {
                    after: Duration::from_secs(1800),
                    deliver: vec!["pager".into(), "chat".into()]
                }
            ]
        );
        for (levels, at) in [
            (
                r#"[{"after": "30m", "deliver": ["chat"]}, {"after": "15m", "deliver": ["chat"]}]"#,
                "routes[2] (duty).renotify[1].after",
            ),
            (
                r#"[{"after": "15m", "deliver": ["sms"]}]"#,
                "routes[2] (duty).renotify[0].deliver",
            ),
            (
                r#"[{"after": "soon", "deliver": ["chat"]}]"#,
                "routes[2] (duty).renotify[0].after",
            ),
        ] {
            let e = Routes::from_json(&with(levels), "r.json")
                .expect_err(levels)
                .to_string();
            assert!(e.contains(at), "{e}");
        }
    }

    #[test]
    fn a_wrong_routes_file_names_where() {
        let dir = tempfile::tempdir().expect("dir");
        let good = routes(dir.path());
        let bad = good.replace(r#""deliver": ["chat"]"#, r#""deliver": ["sms"]"#);
        let e = Routes::from_json(&bad, "r.json")
            .expect_err("no such channel")
            .to_string();
        assert!(
            e.contains("routes[0] (engineering).deliver") && e.contains("sms"),
            "{e}"
        );
        let bad = good.replace("http://127.0.0.1:9/hook", "ftp://x/y");
        let e = Routes::from_json(&bad, "r.json")
            .expect_err("scheme")
            .to_string();
        assert!(e.contains("channels.chat.webhook.url"), "{e}");
        let bad = good.replace(
            r#""signals": ["breach", "escalation"]"#,
            r#""signals": ["page"]"#,
        );
        let e = Routes::from_json(&bad, "r.json")
            .expect_err("signal")
            .to_string();
        assert!(e.contains("line") && e.contains("page"), "{e}");
    }

    fn email_routes(dir: &Path, email: serde_json::Value) -> String {
        let secret = dir.join("secret");
        std::fs::write(&secret, "0123456789abcdef0123").expect("secret");
        serde_json::json!({
            "channels": {"mail": email},
            "routes": [{"name": "all", "deliver": ["mail"]}]
        })
        .to_string()
    }

    #[test]
    fn an_email_channel_names_its_relay_mailboxes_and_ca() {
        let dir = tempfile::tempdir().expect("dir");
        let password = dir.path().join("password");
        std::fs::write(&password, "s3cret\n").expect("password");
        let text = email_routes(
            dir.path(),
            serde_json::json!({"email": {
                "relay": "smtp.hospital.test:587", "from": "baton@hospital.test",
                "to": ["ward-5@hospital.test", "duty@hospital.test"],
                "ca_file": "/etc/baton/smtp-ca.pem",
                "username": "baton", "password_file": password,
            }}),
        );
        let r = Routes::from_json(&text, "r.json").expect("valid");
        let ChannelConfig::Email(e) = &r.channels["mail"] else {
            panic!("an email channel")
        };
        assert_eq!((e.host.as_str(), e.port), ("smtp.hospital.test", 587));
        assert_eq!(e.to.len(), 2);
        assert_eq!(e.login, Some(("baton".into(), "s3cret".into())));
        assert_eq!(e.timeout, Duration::from_secs(10));
        assert!(
            !format!("{e:?}").contains("s3cret"),
            "the password is never shown"
        );
        let v6 = text.replace("smtp.hospital.test:587", "[::1]:2525");
        let r = Routes::from_json(&v6, "r.json").expect("valid");
        let ChannelConfig::Email(e) = &r.channels["mail"] else {
            panic!("an email channel")
        };
        assert_eq!((e.host.as_str(), e.port), ("::1", 2525));
    }

    #[test]
    fn a_wrong_email_channel_names_its_field() {
        let dir = tempfile::tempdir().expect("dir");
        let good = serde_json::json!({
            "relay": "smtp.test:25", "from": "baton@hospital.test",
            "to": ["ward-5@hospital.test"], "ca_file": "/ca.pem", "timeout": "3s",
        });
        let with = |field: &str, value: serde_json::Value| {
            let mut email = good.clone();
            email[field] = value;
            email_routes(dir.path(), serde_json::json!({ "email": email }))
        };
        let error = |text: String| {
            Routes::from_json(&text, "r.json")
                .expect_err("refused")
                .to_string()
        };
        for (field, value, at) in [
            (
                "relay",
                serde_json::json!("smtp.test"),
                "channels.mail.email.relay",
            ),
            (
                "relay",
                serde_json::json!(":25"),
                "channels.mail.email.relay",
            ),
            (
                "from",
                serde_json::json!("baton"),
                "channels.mail.email.from",
            ),
            (
                "from",
                serde_json::json!("a@b@c"),
                "channels.mail.email.from",
            ),
            ("to", serde_json::json!([]), "channels.mail.email.to"),
            (
                "to",
                serde_json::json!(["x@y", "ward 5@h"]),
                "channels.mail.email.to[1]",
            ),
            (
                "to",
                serde_json::json!(["x@y\r\nRCPT TO:<z@w>"]),
                "channels.mail.email.to[0]",
            ),
            (
                "to",
                serde_json::json!(["<x@y>"]),
                "channels.mail.email.to[0]",
            ),
            (
                "timeout",
                serde_json::json!("soon"),
                "channels.mail.email.timeout",
            ),
            (
                "username",
                serde_json::json!("baton"),
                "channels.mail.email.password_file",
            ),
            (
                "password_file",
                serde_json::json!("/nowhere"),
                "channels.mail.email.username",
            ),
        ] {
            let e = error(with(field, value.clone()));
            assert!(e.contains(at), "{field}={value}: {e}");
        }
        let e = error(with("starttls", serde_json::json!(false)));
        assert!(e.contains("starttls") && e.contains("line"), "{e}");
        let e = error(email_routes(
            dir.path(),
            serde_json::json!({"email": good, "webhook": {"url": "http://x/", "secret_file": "/s"}}),
        ));
        assert!(e.contains("channels.mail") && e.contains("not both"), "{e}");
        let e = error(email_routes(dir.path(), serde_json::json!({})));
        assert!(
            e.contains("channels.mail") && e.contains("webhook or email"),
            "{e}"
        );
        let e = error(email_routes(dir.path(), serde_json::json!({"sms": {}})));
        assert!(e.contains("sms"), "{e}");
    }
}

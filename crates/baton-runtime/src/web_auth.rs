//! Who may read the HTTP side port, when the caller registry is given.
//!
//! | path | who |
//! |---|---|
//! | `/healthz`, `/readyz` | anyone (load balancers) |
//! | `/login`, `/logout` | anyone: a screen exchanges its token for a session cookie |
//! | `/ack` | anyone holding a link notify signed (notify checks it) |
//! | `/metrics` | a `scraper`, with `Authorization: Bearer <token>` |
//! | everything else (the board, `/handoff/<id>`, `/events`, ...) | a `screen` (session cookie or bearer token), or a `department` or `operator` caller presenting its client certificate |
//!
//! A token is compared only through its SHA-256, in constant time, against
//! every registered hash. A session cookie is
//! `v1.<caller id, hex>.<expiry, Unix seconds>.<HMAC-SHA256, hex>`, signed
//! with the session key over the id, the expiry and the screen's token hash
//! (so a new token in the registry ends the old one's sessions), and sent
//! `Secure; HttpOnly; SameSite=Strict; Path=/`. Failed logins are counted
//! per client address; past `--http-login-attempts` a minute they are
//! answered 429 without looking at the token.
//!
//! This module must never write anything but its own cookie, and never log
//! or echo a token: nothing on the side port changes Baton's data.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use baton_domain::access::{Caller, Registry, Role, TokenHolder, TokenRole};
use ring::{digest, hmac, rand::SecureRandom};
use subtle::ConstantTimeEq;

use crate::ports::{LoginResult, PortCounters};

/// The session cookie's name.
pub const COOKIE: &str = "baton_session";
/// Largest login form read.
const LOGIN_BODY_LIMIT: usize = 4096;
/// Session keys shorter than this are refused.
pub const MIN_KEY_BYTES: usize = 32;

/// SHA-256 of a token, as the registry's `token_sha256` holds it.
pub fn token_sha256(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    out
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |c: u8| (c as char).to_digit(16);
            u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()
        })
        .collect()
}

/// A new random token for a screen or scraper: 32 random bytes, hex.
pub fn new_token() -> Result<String, SessionKeyError> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| SessionKeyError::Random)?;
    Ok(hex(&bytes))
}

/// Why a session key cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum SessionKeyError {
    #[error("session key {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("session key {path}: {len} bytes; it needs at least {MIN_KEY_BYTES} (head -c 32 /dev/urandom > {path})")]
    TooShort {
        path: std::path::PathBuf,
        len: usize,
    },
    #[error("the system's random number generator failed")]
    Random,
}

/// Why a session cookie is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionRefused {
    #[error("not a session cookie")]
    Malformed,
    #[error("the signature does not match")]
    Signature,
    #[error("expired")]
    Expired,
}

/// The key that signs session cookies (HMAC-SHA256).
pub struct SessionKey(hmac::Key);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    /// A key of `bytes` (at least [`MIN_KEY_BYTES`] of them, else `None`).
    pub fn from_bytes(bytes: &[u8]) -> Option<SessionKey> {
        (bytes.len() >= MIN_KEY_BYTES).then(|| SessionKey(hmac::Key::new(hmac::HMAC_SHA256, bytes)))
    }

    /// The whole content of `path` is the key.
    pub fn from_file(path: &Path) -> Result<SessionKey, SessionKeyError> {
        let bytes = std::fs::read(path).map_err(|source| SessionKeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            if let Ok(meta) = std::fs::metadata(path) {
                if meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(path = %path.display(), "the session key file is readable by others than its owner: chmod 600 it");
                }
            }
        }
        SessionKey::from_bytes(&bytes).ok_or_else(|| SessionKeyError::TooShort {
            path: path.to_owned(),
            len: bytes.len(),
        })
    }

    /// A random key, for this process only.
    pub fn generate() -> Result<SessionKey, SessionKeyError> {
        let mut bytes = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| SessionKeyError::Random)?;
        Ok(SessionKey(hmac::Key::new(hmac::HMAC_SHA256, &bytes)))
    }

    fn signed(id: &str, expires: u64, token_sha256: &[u8; 32]) -> Vec<u8> {
        let mut message = b"baton-session-v1\0".to_vec();
        message.extend_from_slice(id.as_bytes());
        message.push(0);
        message.extend_from_slice(expires.to_string().as_bytes());
        message.push(0);
        message.extend_from_slice(token_sha256);
        message
    }

    /// The cookie value for the screen `holder`, valid until `expires`
    /// (Unix seconds).
    pub fn issue(&self, holder: &TokenHolder, expires: u64) -> String {
        let tag = hmac::sign(
            &self.0,
            &Self::signed(&holder.id, expires, &holder.token_sha256),
        );
        format!(
            "v1.{}.{expires}.{}",
            hex(holder.id.as_bytes()),
            hex(tag.as_ref())
        )
    }

    /// The caller id a cookie value names, if it is well-formed and unexpired
    /// at `now` (Unix seconds). `token_of` gives the registered token hash of
    /// an id (`None`: no such screen, refused as a bad signature).
    pub fn verify(
        &self,
        value: &str,
        now: u64,
        token_of: impl FnOnce(&str) -> Option<[u8; 32]>,
    ) -> Result<String, SessionRefused> {
        let mut parts = value.split('.');
        let (Some("v1"), Some(id), Some(expires), Some(tag), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(SessionRefused::Malformed);
        };
        let id = unhex(id)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(SessionRefused::Malformed)?;
        let expires: u64 = expires.parse().map_err(|_| SessionRefused::Malformed)?;
        let tag = unhex(tag).ok_or(SessionRefused::Malformed)?;
        let token = token_of(&id).ok_or(SessionRefused::Signature)?;
        hmac::verify(&self.0, &Self::signed(&id, expires, &token), &tag)
            .map_err(|_| SessionRefused::Signature)?;
        if now >= expires {
            return Err(SessionRefused::Expired);
        }
        Ok(id)
    }
}

/// What the side port knows of a connection: its address and the
/// identities of the client certificate it presented (empty without one).
#[derive(Debug, Clone)]
pub struct Peer {
    pub remote: SocketAddr,
    pub identities: Arc<Vec<String>>,
}

/// Who a request is from, once authenticated; in the request's extensions
/// for the handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// A certificate caller (department or operator).
    Caller(String),
    /// A screen, by token or session.
    Screen(String),
    /// A scraper, by bearer token.
    Scraper(String),
}

/// Which paths need what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Open,
    Metrics,
    Board,
}

/// The class of `path`: anything not named here is the board's.
pub fn access_of(path: &str) -> Access {
    match path {
        // `/ack`: notify's acknowledgement links, each its own
        // authentication (signed by notify, expiring).
        "/healthz" | "/readyz" | "/login" | "/logout" | "/ack" => Access::Open,
        "/metrics" => Access::Metrics,
        _ => Access::Board,
    }
}

/// What the credentials of a request amount to.
#[derive(Debug)]
enum Found {
    Caller(Caller),
    Holder(TokenHolder),
    /// A client certificate whose identity is not registered.
    Unregistered(String),
    /// No credentials, or ones that do not check out (a wrong token, a
    /// tampered or expired cookie).
    Nobody(&'static str),
}

/// The side port's authentication: the registry, the session key and the
/// failed-login tally.
#[derive(Debug)]
pub struct WebAuth {
    registry: Arc<Registry>,
    key: SessionKey,
    lifetime: Duration,
    attempts: u32,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    counters: PortCounters,
}

/// Addresses whose failed logins are remembered at most (beyond, the
/// oldest windows are forgotten).
const FAILURE_TABLE: usize = 4096;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl WebAuth {
    pub fn new(
        registry: Arc<Registry>,
        key: SessionKey,
        lifetime: Duration,
        attempts: u32,
        counters: PortCounters,
    ) -> WebAuth {
        WebAuth {
            registry,
            key,
            lifetime,
            attempts,
            failures: Mutex::new(HashMap::new()),
            counters,
        }
    }

    /// The screen or scraper whose token this is. Every registered hash is
    /// compared, in constant time, whichever matches.
    fn holder_of_token(&self, token: &str) -> Option<&TokenHolder> {
        let digest = token_sha256(token);
        let mut found = None;
        for holder in self.registry.holders() {
            if bool::from(holder.token_sha256.ct_eq(&digest)) {
                found = Some(holder);
            }
        }
        found
    }

    fn find(&self, peer: Option<&Peer>, headers: &HeaderMap) -> Found {
        if let Some(peer) = peer.filter(|p| !p.identities.is_empty()) {
            return match self
                .registry
                .identify(peer.identities.iter().map(String::as_str))
            {
                Ok(caller) => Found::Caller(caller.clone()),
                Err(_) => Found::Unregistered(peer.identities[0].clone()),
            };
        }
        if let Some(authorization) = headers.get(header::AUTHORIZATION) {
            let token = authorization
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim);
            return match token.and_then(|t| self.holder_of_token(t)) {
                Some(holder) => Found::Holder(holder.clone()),
                None => Found::Nobody("a bearer token that is not registered"),
            };
        }
        let Some(cookie) = cookie(headers, COOKIE) else {
            return Found::Nobody("no credentials");
        };
        let verified = self.key.verify(cookie, now_unix(), |id| {
            self.registry
                .holder(id)
                .filter(|h| h.role == TokenRole::Screen)
                .map(|h| h.token_sha256)
        });
        match verified.ok().and_then(|id| self.registry.holder(&id)) {
            Some(holder) => Found::Holder(holder.clone()),
            None => Found::Nobody("a session cookie that is expired or not ours"),
        }
    }

    /// Whether the address may try another login; counts the refusal if not.
    fn may_try(&self, address: IpAddr) -> Result<(), Duration> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match failures.get(&address) {
            Some((since, count)) if *count >= self.attempts && since.elapsed() < FAILURE_WINDOW => {
                Err(FAILURE_WINDOW.saturating_sub(since.elapsed()))
            }
            _ => Ok(()),
        }
    }

    fn failed(&self, address: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= FAILURE_TABLE && !failures.contains_key(&address) {
            failures.retain(|_, (since, _)| since.elapsed() < FAILURE_WINDOW);
            if failures.len() >= FAILURE_TABLE {
                failures.clear();
            }
        }
        let entry = failures.entry(address).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= FAILURE_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }

    fn succeeded(&self, address: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(&address);
    }

    /// The `Set-Cookie` value of a new session for `holder`.
    fn session_cookie(&self, holder: &TokenHolder) -> String {
        let lifetime = self.lifetime.as_secs().max(1);
        let value = self.key.issue(holder, now_unix() + lifetime);
        format!("{COOKIE}={value}; Path=/; Max-Age={lifetime}; Secure; HttpOnly; SameSite=Strict")
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// The middleware in front of every route of the side port.
pub async fn guard(State(auth): State<Arc<WebAuth>>, mut request: Request, next: Next) -> Response {
    let access = access_of(request.uri().path());
    if access == Access::Open {
        return next.run(request).await;
    }
    let found = auth.find(request.extensions().get::<Peer>(), request.headers());
    let viewer = match (&found, access) {
        (Found::Caller(c), Access::Board)
            if matches!(c.role, Role::Department | Role::Operator) =>
        {
            Some(Viewer::Caller(c.id.clone()))
        }
        (Found::Holder(h), Access::Board) if h.role == TokenRole::Screen => {
            Some(Viewer::Screen(h.id.clone()))
        }
        (Found::Holder(h), Access::Metrics) if h.role == TokenRole::Scraper => {
            Some(Viewer::Scraper(h.id.clone()))
        }
        _ => None,
    };
    if let Some(viewer) = viewer {
        request.extensions_mut().insert(viewer);
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    match found {
        Found::Nobody(why) => {
            auth.counters.denied(false);
            tracing::debug!(%path, why, "side port: unauthenticated request refused");
            let wants_html = request
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("text/html"));
            let next_path = request
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/".into());
            if access == Access::Board && wants_html {
                login_page(StatusCode::UNAUTHORIZED, &next_path, None)
            } else {
                let mut response = (
                    StatusCode::UNAUTHORIZED,
                    if access == Access::Metrics {
                        "a scraper's bearer token is required (Authorization: Bearer <token>)\n"
                    } else {
                        "log in at /login with a screen's token, or present a registered client certificate\n"
                    },
                )
                    .into_response();
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"baton\""),
                );
                response
            }
        }
        found => {
            auth.counters.denied(true);
            let who = match &found {
                Found::Caller(c) => c.id.clone(),
                Found::Holder(h) => h.id.clone(),
                Found::Unregistered(identity) => identity.clone(),
                Found::Nobody(_) => String::new(),
            };
            tracing::info!(%path, caller = %who, "side port: request refused for this caller");
            let message = match found {
                Found::Unregistered(identity) => {
                    format!("the certificate's identity {identity:?} is not in the caller registry\n")
                }
                _ if access == Access::Metrics => {
                    format!("{who} may not read /metrics: only a scraper may\n")
                }
                _ => format!("{who} may not see the board: only screens, department and operator callers may\n"),
            };
            (StatusCode::FORBIDDEN, message).into_response()
        }
    }
}

/// `/login` and `/logout`.
pub fn routes(auth: Arc<WebAuth>) -> Router {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", get(logout))
        .with_state(auth)
}

async fn login_form(request: Request) -> Response {
    let next_path = request
        .uri()
        .query()
        .and_then(|q| form_value(q, "next"))
        .unwrap_or_else(|| "/".into());
    login_page(StatusCode::OK, &next_path, None)
}

async fn login(State(auth): State<Arc<WebAuth>>, request: Request) -> Response {
    let address = request
        .extensions()
        .get::<Peer>()
        .map(|p| p.remote.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let body = match axum::body::to_bytes(request.into_body(), LOGIN_BODY_LIMIT).await {
        Ok(body) => body,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "login form too large\n").into_response(),
    };
    let form = String::from_utf8_lossy(&body);
    let next_path = form_value(&form, "next").unwrap_or_else(|| "/".into());
    if let Err(wait) = auth.may_try(address) {
        auth.counters.login(LoginResult::Limited);
        tracing::warn!(%address, "side port: login refused, too many failed logins from this address");
        let mut response = login_page(
            StatusCode::TOO_MANY_REQUESTS,
            &next_path,
            Some("Too many failed logins from this address. Wait a minute."),
        );
        if let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let token = form_value(&form, "token").unwrap_or_default();
    let screen = auth
        .holder_of_token(token.trim())
        .filter(|h| h.role == TokenRole::Screen)
        .cloned();
    let Some(screen) = screen else {
        auth.failed(address);
        auth.counters.login(LoginResult::Refused);
        tracing::warn!(%address, "side port: login with a token that is not a registered screen's");
        return login_page(
            StatusCode::UNAUTHORIZED,
            &next_path,
            Some("That is not a registered screen's token."),
        );
    };
    auth.succeeded(address);
    auth.counters.login(LoginResult::Ok);
    tracing::info!(%address, screen = %screen.id, lifetime = ?auth.lifetime, "side port: screen logged in");
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    let headers = response.headers_mut();
    if let Ok(cookie) = HeaderValue::from_str(&auth.session_cookie(&screen)) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    if let Ok(location) = HeaderValue::from_str(&safe_next(&next_path)) {
        headers.insert(header::LOCATION, location);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn logout() -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    let headers = response.headers_mut();
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "baton_session=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict",
        ),
    );
    headers.insert(header::LOCATION, HeaderValue::from_static("/login"));
    response
}

/// A local path to go to after logging in: never another site.
fn safe_next(next: &str) -> String {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.starts_with("/login")
        && next.bytes().all(|b| b.is_ascii_graphic());
    if local {
        next.to_owned()
    } else {
        "/".into()
    }
}

/// The value of `name` in an `application/x-www-form-urlencoded` string.
fn form_value(form: &str, name: &str) -> Option<String> {
    form.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k)? == name).then(|| percent_decode(v))?
    })
}

fn percent_decode(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = (bytes.next()? as char).to_digit(16)?;
                let lo = (bytes.next()? as char).to_digit(16)?;
                out.push(u8::try_from(hi * 16 + lo).ok()?);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The login page: one field for the screen's token.
fn login_page(status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    let body = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Baton: log in</title>
<style>
body {{ background: #111418; color: #e8eaed; font: 24px/1.4 system-ui, sans-serif; display: grid; place-items: center; min-height: 90vh; }}
form {{ display: grid; gap: 0.6em; min-width: 22em; }}
input {{ font: inherit; padding: 0.4em; background: #1d2228; color: inherit; border: 1px solid #555; }}
button {{ font: inherit; padding: 0.4em; }}
.error {{ color: #ff6b6b; }}
</style></head>
<body><main>
<h1>Baton duty board</h1>
{error}<form method="post" action="/login">
<label for="token">Screen token</label>
<input id="token" name="token" type="password" autocomplete="off" autofocus required>
<input type="hidden" name="next" value="{next}">
<button type="submit">Log in</button>
</form>
<p>Ask the Baton administrator for this screen's token.</p>
</main></body></html>
"#,
        next = escape(&safe_next(next)),
    );
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    if status == StatusCode::UNAUTHORIZED {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"baton\""),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen(id: &str, token: &str) -> TokenHolder {
        TokenHolder {
            id: id.into(),
            role: TokenRole::Screen,
            token_sha256: token_sha256(token),
        }
    }

    fn key(byte: u8) -> SessionKey {
        SessionKey::from_bytes(&[byte; 32]).expect("32 bytes")
    }

    #[test]
    fn token_hashes_are_sha256_in_hex() {
        // sha256("abc"), FIPS 180-2's first example.
        assert_eq!(
            hex(&token_sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let token = new_token().expect("random");
        assert_eq!(token.len(), 64);
        assert_ne!(token, new_token().expect("random"));
        assert_eq!(
            unhex(&hex(&[0, 1, 0xab, 0xff])),
            Some(vec![0, 1, 0xab, 0xff])
        );
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }

    #[test]
    fn a_session_cookie_verifies_until_it_expires() {
        let wall = screen("lab-wall", "secret");
        let signer = key(7);
        let cookie = signer.issue(&wall, 1_000);
        let token_of = |id: &str| (id == "lab-wall").then_some(wall.token_sha256);
        assert_eq!(
            signer.verify(&cookie, 999, token_of).as_deref(),
            Ok("lab-wall")
        );
        assert_eq!(
            signer.verify(&cookie, 1_000, token_of),
            Err(SessionRefused::Expired)
        );
        // Another key (another projector, or after a restart without --http-session-key).
        assert_eq!(
            key(8).verify(&cookie, 999, token_of),
            Err(SessionRefused::Signature)
        );
        // A screen whose token was changed in the registry.
        assert_eq!(
            signer.verify(&cookie, 999, |_| Some(token_sha256("new token"))),
            Err(SessionRefused::Signature)
        );
        // A screen no longer registered.
        assert_eq!(
            signer.verify(&cookie, 999, |_| None),
            Err(SessionRefused::Signature)
        );
    }

    #[test]
    fn a_tampered_session_cookie_is_refused() {
        let wall = screen("lab-wall", "secret");
        let other = screen("icu-wall", "other");
        let key = key(7);
        let cookie = key.issue(&wall, 1_000);
        let token_of = |id: &str| match id {
            "lab-wall" => Some(wall.token_sha256),
            "icu-wall" => Some(other.token_sha256),
            _ => None,
        };
        let parts: Vec<&str> = cookie.split('.').collect();
        // A later expiry.
        let later = format!("v1.{}.999999.{}", parts[1], parts[3]);
        assert_eq!(
            key.verify(&later, 999, token_of),
            Err(SessionRefused::Signature)
        );
        // Another screen's id.
        let renamed = format!("v1.{}.{}.{}", hex(b"icu-wall"), parts[2], parts[3]);
        assert_eq!(
            key.verify(&renamed, 999, token_of),
            Err(SessionRefused::Signature)
        );
        // A flipped bit in the tag.
        let mut tag = parts[3].to_owned();
        let flipped = if tag.ends_with('0') { '1' } else { '0' };
        tag.pop();
        tag.push(flipped);
        let flipped = format!("v1.{}.{}.{tag}", parts[1], parts[2]);
        assert_eq!(
            key.verify(&flipped, 999, token_of),
            Err(SessionRefused::Signature)
        );
        for garbage in [
            "",
            "v1",
            "v2.00.1.00",
            "v1.zz.1.00",
            "v1.00.x.00",
            "v1.00.1.00.00",
        ] {
            assert_eq!(
                key.verify(garbage, 0, token_of),
                Err(SessionRefused::Malformed),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn short_session_keys_are_refused() {
        assert!(SessionKey::from_bytes(&[1; 31]).is_none());
        assert!(SessionKey::from_bytes(&[1; 32]).is_some());
    }

    #[test]
    fn paths_are_open_metrics_or_the_boards() {
        assert_eq!(access_of("/healthz"), Access::Open);
        assert_eq!(access_of("/readyz"), Access::Open);
        assert_eq!(access_of("/login"), Access::Open);
        assert_eq!(access_of("/metrics"), Access::Metrics);
        for path in [
            "/",
            "/events",
            "/handoff/x",
            "/metrics/",
            "//metrics",
            "/healthz/x",
            "/static/board.js",
        ] {
            assert_eq!(access_of(path), Access::Board, "{path}");
        }
    }

    #[test]
    fn a_login_goes_back_only_to_a_local_page() {
        assert_eq!(safe_next("/handoff/r-1"), "/handoff/r-1");
        for away in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "/login",
            "javascript:x",
            "/a b",
        ] {
            assert_eq!(safe_next(away), "/", "{away}");
        }
    }

    #[test]
    fn form_fields_are_decoded() {
        assert_eq!(
            form_value("token=a%2Bb+c&next=%2Fhandoff%2Fx", "token").as_deref(),
            Some("a+b c")
        );
        assert_eq!(
            form_value("token=a&next=%2Fhandoff%2Fx", "next").as_deref(),
            Some("/handoff/x")
        );
        assert_eq!(form_value("token=%zz", "token"), None);
        assert_eq!(form_value("other=1", "token"), None);
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; baton_session=v1.x; b=2"),
        );
        assert_eq!(cookie(&headers, COOKIE), Some("v1.x"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn failed_logins_past_the_limit_are_refused_for_a_minute() {
        let auth = WebAuth::new(
            Arc::new(Registry::default()),
            key(1),
            Duration::from_secs(60),
            3,
            PortCounters::detached("http"),
        );
        let address = IpAddr::from([10, 0, 0, 1]);
        for _ in 0..3 {
            assert!(auth.may_try(address).is_ok());
            auth.failed(address);
        }
        assert!(auth.may_try(address).is_err());
        assert!(auth.may_try(IpAddr::from([10, 0, 0, 2])).is_ok());
    }
}

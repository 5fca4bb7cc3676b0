//! A headless Chromium driven over WebDriver (W3C, JSON over HTTP/1.1) by
//! `chromedriver`, for tests of the board as a browser shows it.
//!
//! The client is a few requests over a plain TCP stream (`Connection:
//! close`, one request per connection): enough for navigation, running a
//! script and taking a screenshot, without an HTTP client dependency.
//! chromedriver and the browser it starts run in their own process group,
//! ended when the [`Browser`] is dropped.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{eventually, PATIENCE};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// NSS's tool, to make the browser trust a test CA.
pub const CERTUTIL: &str = "/usr/bin/certutil";

/// A browser session; ends chromedriver and its browser on drop.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
    _home: tempfile::TempDir,
}

/// Makes `home`'s NSS database trust `ca` for servers.
fn trust(home: &Path, ca: &Path) {
    let db = home.join(".pki/nssdb");
    std::fs::create_dir_all(&db).expect("create the NSS database dir");
    let db = format!("sql:{}", db.display());
    let certutil = |args: &[&str]| {
        let out = Command::new(CERTUTIL)
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("{CERTUTIL}: {e}; install it with deploy/install-chromium.sh (package libnss3-tools)")
            });
        assert!(
            out.status.success(),
            "certutil {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    certutil(&["-N", "-d", &db, "--empty-password"]);
    let ca = ca.to_str().expect("a UTF-8 path");
    certutil(&[
        "-A",
        "-d",
        &db,
        "-n",
        "baton-test-ca",
        "-t",
        "C,,",
        "-i",
        ca,
    ]);
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile and
    /// a wall-screen-sized window. Fails the test, saying how to install
    /// them, if either is missing.
    pub async fn start() -> Browser {
        Browser::start_trusting(None).await
    }

    /// [`Browser::start`], trusting the PEM CA `ca` as a wall screen's
    /// browser trusts the hospital's CA: it is added to the NSS certificate
    /// database Chromium reads on Linux (`$HOME/.pki/nssdb`, with `HOME` a
    /// directory of this browser's own), with `certutil`
    /// (`deploy/install-chromium.sh` installs it). No certificate error is
    /// ignored.
    pub async fn start_trusting(ca: Option<&Path>) -> Browser {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the board test needs a real browser. Install it with \
                 deploy/install-chromium.sh (apt-get install -y chromium chromium-driver; \
                 package {package})"
            );
        }
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
            probe.local_addr().expect("bound").port()
        };
        let home = tempfile::tempdir().expect("browser home dir");
        if let Some(ca) = ca {
            trust(home.path(), ca);
        }
        let mut command = Command::new(CHROMEDRIVER);
        command
            .env("HOME", home.path())
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt as _;
            command.process_group(0);
        }
        let driver = command.spawn().expect("start chromedriver");
        let profile = tempfile::tempdir().expect("browser profile dir");
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
            _profile: profile,
            _home: home,
        };
        eventually("chromedriver ready", || {
            let browser = &browser;
            async move {
                let probe = browser.request("GET", "/status", None);
                let status = tokio::time::timeout(Duration::from_secs(1), probe)
                    .await
                    .ok()?
                    .ok()?;
                (status["value"]["ready"] == json!(true)).then_some(())
            }
        })
        .await;
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1600,1000".to_owned(),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let session = browser
            .request("POST", "/session", Some(&capabilities))
            .await
            .unwrap_or_else(|e| panic!("cannot start a chromium session: {e}"));
        browser.session = session["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        browser
    }

    /// Opens `url` and waits for the document to load.
    pub async fn goto(&self, url: &str) {
        self.command("POST", "url", json!({ "url": url })).await;
    }

    /// Runs `script` (a function body; `return` gives the result) in the page.
    pub async fn execute(&self, script: &str) -> Value {
        self.command(
            "POST",
            "execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Waits until `script` returns something truthy in the page, and returns it.
    /// For conditions the page reaches by itself (an event arriving).
    pub async fn wait_for(&self, what: &str, script: &str) -> Value {
        eventually(what, || async move {
            let value = self.execute(script).await;
            let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                && value != json!(0)
                && value != json!("");
            truthy.then_some(value)
        })
        .await
    }

    /// Makes the browser's viewport `width` x `height` CSS pixels, as a
    /// screen of that size shows the page (the window's frame is measured
    /// and added, so the page itself gets the size asked for).
    pub async fn set_viewport(&self, width: u32, height: u32) {
        self.command(
            "POST",
            "window/rect",
            json!({"width": width, "height": height}),
        )
        .await;
        let inner = self
            .execute("return [window.innerWidth, window.innerHeight]")
            .await;
        let got = |i: usize| inner[i].as_u64().unwrap_or(0) as u32;
        let (extra_w, extra_h) = (width.saturating_sub(got(0)), height.saturating_sub(got(1)));
        if extra_w > 0 || extra_h > 0 {
            self.command(
                "POST",
                "window/rect",
                json!({"width": width + extra_w, "height": height + extra_h}),
            )
            .await;
        }
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let encoded = self.command("GET", "screenshot", Value::Null).await;
        base64_decode(encoded.as_str().expect("screenshot as base64"))
            .expect("screenshot is valid base64")
    }

    /// Ends the session (and so the browser).
    pub async fn quit(mut self) {
        let path = format!("/session/{}", self.session);
        let _ = self.request("DELETE", &path, None).await;
        self.session.clear();
    }

    async fn command(&self, method: &str, endpoint: &str, body: Value) -> Value {
        let path = format!("/session/{}/{endpoint}", self.session);
        let body = (!body.is_null()).then_some(body);
        match self.request(method, &path, body.as_ref()).await {
            Ok(value) => value["value"].clone(),
            Err(e) => panic!("webdriver {method} {endpoint}: {e}"),
        }
    }

    /// One WebDriver request; the parsed JSON answer, or why it failed.
    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .map_err(|e| format!("connect to chromedriver: {e}"))?;
            let body = body.map(Value::to_string).unwrap_or_default();
            let request = format!(
                "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
                 Content-Type: application/json; charset=utf-8\r\nContent-Length: {len}\r\n\
                 Connection: close\r\n\r\n{body}",
                port = self.port,
                len = body.len(),
            );
            stream
                .write_all(request.as_bytes())
                .await
                .map_err(|e| format!("send: {e}"))?;
            // chromedriver may keep the connection open after answering:
            // read until the answer is complete, not until the end of stream.
            let mut answer = Vec::new();
            let mut buf = [0u8; 16 * 1024];
            while !is_complete(&answer) {
                let n = stream
                    .read(&mut buf)
                    .await
                    .map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    break;
                }
                answer.extend_from_slice(&buf[..n]);
            }
            parse_response(&answer)
        };
        tokio::time::timeout(PATIENCE, exchange)
            .await
            .map_err(|_| format!("no answer to {method} {path} within {PATIENCE:?}"))?
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The browser is chromedriver's child, in the group we gave it.
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-TERM", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Whether `raw` holds a whole HTTP/1.1 response: headers, and a body of
/// its `Content-Length` or up to the last chunk.
fn is_complete(raw: &[u8]) -> bool {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let body = &raw[split + 4..];
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name.trim() == "content-length").then(|| value.trim().parse::<usize>().ok())?
    });
    match length {
        Some(length) => body.len() >= length,
        None if head.contains("chunked") => body.ends_with(b"0\r\n\r\n"),
        None => false,
    }
}

/// Status and JSON body of an HTTP/1.1 response (plain or chunked).
fn parse_response(raw: &[u8]) -> Result<Value, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers in the answer")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let mut body = raw[split + 4..].to_vec();
    if let Some(length) = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name.trim() == "content-length").then(|| value.trim().parse::<usize>().ok())?
    }) {
        body.truncate(length);
    }
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status code")?;
    if head.contains("chunked") {
        body = dechunk(&body)?;
    }
    let value: Value =
        serde_json::from_slice(&body).map_err(|e| format!("answer is not JSON ({e})"))?;
    if status == 200 {
        Ok(value)
    } else {
        Err(format!("HTTP {status}: {value}"))
    }
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk")?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("bad chunk size: {e}"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(body.get(..size).ok_or("short chunk")?);
        body = body.get(size + 2..).ok_or("short chunk")?;
    }
}

/// Standard base64 (as WebDriver sends screenshots).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c)? << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    Some(out)
}

/// Saves `png` as `name` in `dir` and a copy in `target/board-screenshots/`
/// (under `CARGO_TARGET_DIR` when set) for people to look at.
pub fn save_screenshot(png: &[u8], dir: &Path, name: &str) -> std::path::PathBuf {
    std::fs::write(dir.join(name), png).expect("write screenshot");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let keep = target.join("board-screenshots");
    std::fs::create_dir_all(&keep).expect("create target/board-screenshots");
    let path = keep.join(name);
    std::fs::write(&path, png).expect("write screenshot copy");
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(base64_decode("aGVsbG8=").as_deref(), Some(&b"hello"[..]));
        assert_eq!(base64_decode("aGk=").as_deref(), Some(&b"hi"[..]));
        assert_eq!(base64_decode("YWJj").as_deref(), Some(&b"abc"[..]));
        assert_eq!(base64_decode("a$=="), None);
    }

    #[test]
    fn chunked_answers_are_reassembled() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
        assert!(is_complete(raw));
        assert!(!is_complete(&raw[..raw.len() - 2]));
        assert!(is_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length:2\r\n\r\n{}"
        ));
        assert!(!is_complete(
            b"HTTP/1.1 200 OK\r\nContent-Length:2\r\n\r\n{"
        ));
        assert_eq!(parse_response(raw).expect("parsed"), json!({"a": 1}));
        let err = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}";
        assert!(parse_response(err).is_err());
    }
}

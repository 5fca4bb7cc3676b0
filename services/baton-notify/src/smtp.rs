//! A small SMTP client: one message to one relay per connection, over
//! STARTTLS always (a relay that does not offer it gets no message, never
//! plaintext), AUTH PLAIN only inside TLS. What the e-mail channel needs
//! and nothing more (RFC 5321, RFC 3207, RFC 4954): no pipelining, no
//! connection reuse, no MX look-up (the relay is named).
//!
//! The pure parts (reply lines, dot-stuffing, base64) are unit-tested
//! here; the exchange is tested against a real relay by
//! `tests/tests/notify_email.rs`.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// The longest reply line read (RFC 5321 allows 512 bytes; some relays
/// write more in their greetings).
const MAX_LINE: u64 = 4096;
/// The most lines a reply may have (EHLO lists one extension a line).
const MAX_LINES: usize = 100;

/// Why an exchange with a relay failed.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("the connection failed: {0}")]
    Io(String),
    #[error("the relay answered {code} {text}")]
    Reply { code: u16, text: String },
    #[error("the relay does not offer STARTTLS: the message is not sent in plaintext")]
    NoStartTls,
    #[error("the relay does not offer AUTH PLAIN")]
    NoAuthPlain,
    #[error("TLS: {0}")]
    Tls(String),
    #[error("the relay broke the protocol: {0}")]
    Protocol(String),
}

fn io(e: std::io::Error) -> SmtpError {
    SmtpError::Io(e.to_string())
}

/// One line of a reply: its code, whether more lines follow (`250-`), and
/// its text.
pub fn parse_line(line: &str) -> Result<(u16, bool, &str), SmtpError> {
    let line = line.trim_end_matches(['\r', '\n']);
    let wrong = || SmtpError::Protocol(format!("{:?} is not a reply line", shorten(line)));
    let digits = line.get(..3).ok_or_else(wrong)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !(b'2'..=b'5').contains(&digits.as_bytes()[0])
    {
        return Err(wrong());
    }
    let code: u16 = digits.parse().map_err(|_| wrong())?;
    match line.as_bytes().get(3) {
        None => Ok((code, false, "")),
        Some(b' ') => Ok((code, false, &line[4..])),
        Some(b'-') => Ok((code, true, &line[4..])),
        Some(_) => Err(wrong()),
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(80).collect()
}

/// A whole reply: one code, its lines' texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    /// Reads the lines of one reply from `lines` until the last one;
    /// `Ok(None)` if they end first. Every line must carry the same code.
    pub fn from_lines<'a>(
        lines: impl IntoIterator<Item = &'a str>,
    ) -> Result<Option<Reply>, SmtpError> {
        let mut reply: Option<Reply> = None;
        for line in lines {
            let (code, more, text) = parse_line(line)?;
            let r = reply.get_or_insert(Reply {
                code,
                lines: Vec::new(),
            });
            if r.code != code {
                return Err(SmtpError::Protocol(format!(
                    "a reply's lines carry {} and {code}",
                    r.code
                )));
            }
            r.lines.push(text.to_owned());
            if !more {
                return Ok(reply);
            }
        }
        Ok(None)
    }

    /// Whether an EHLO answer lists `extension` (its first word, any case).
    pub fn offers(&self, extension: &str) -> bool {
        self.lines.iter().skip(1).any(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case(extension))
        })
    }

    /// Whether an EHLO answer offers `AUTH` with `mechanism`.
    pub fn offers_auth(&self, mechanism: &str) -> bool {
        self.lines.iter().skip(1).any(|l| {
            let mut words = l.split_whitespace();
            words.next().is_some_and(|w| w.eq_ignore_ascii_case("AUTH"))
                && words.any(|m| m.eq_ignore_ascii_case(mechanism))
        })
    }

    fn text(&self) -> String {
        shorten(&self.lines.join(" "))
    }
}

/// The message as DATA sends it: every line ended by CRLF (a bare LF or CR
/// becomes CRLF), a line starting with `.` given a second one (RFC 5321
/// 4.5.2), and the terminating `.` line.
pub fn dot_stuffed(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let normalised = message.replace("\r\n", "\n").replace('\r', "\n");
    let body = normalised.strip_suffix('\n').unwrap_or(&normalised);
    for line in body.split('\n') {
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Standard base64 with padding (RFC 4648), for AUTH PLAIN and encoded
/// header words.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What one exchange sends, and to whom.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub host: &'a str,
    pub port: u16,
    pub from: &'a str,
    pub to: &'a [String],
    pub login: Option<(&'a str, &'a str)>,
    /// Headers and body; line endings and dots are seen to here.
    pub message: &'a str,
}

/// Sends one message through the relay, all within `timeout`: connect,
/// EHLO, STARTTLS, EHLO again inside TLS, AUTH PLAIN if there is a login,
/// MAIL, RCPT for each recipient, DATA, QUIT. `Ok` once the relay took the
/// message (its answer to the data); a failure to say goodbye after that is
/// not one.
pub async fn send(
    tls: &baton_runtime::tls_client::TlsConnector,
    envelope: &Envelope<'_>,
    timeout: Duration,
) -> Result<(), SendError> {
    tokio::time::timeout(timeout, exchange(tls, envelope))
        .await
        .map_err(|_| SendError::TimedOut(timeout))?
        .map_err(SendError::Smtp)
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
    #[error(transparent)]
    Smtp(SmtpError),
}

async fn exchange(
    tls: &baton_runtime::tls_client::TlsConnector,
    envelope: &Envelope<'_>,
) -> Result<(), SmtpError> {
    let tcp = tokio::net::TcpStream::connect((envelope.host, envelope.port))
        .await
        .map_err(|e| SmtpError::Connect(e.to_string()))?;
    // EHLO names the client by its address literal (RFC 5321 4.1.4).
    let me = match tcp.local_addr().map_err(io)?.ip() {
        std::net::IpAddr::V4(a) => format!("[{a}]"),
        std::net::IpAddr::V6(a) => format!("[IPv6:{a}]"),
    };
    let mut plain = Session::new(tcp);
    plain.expect(None, &[220]).await?;
    let ehlo = plain.expect(Some(&format!("EHLO {me}")), &[250]).await?;
    if !ehlo.offers("STARTTLS") {
        plain.quit().await;
        return Err(SmtpError::NoStartTls);
    }
    plain.expect(Some("STARTTLS"), &[220]).await?;
    // Anything the relay (or a man in the middle) sent after its 220 would
    // be read as if it came inside TLS: refuse it (CVE-2011-0411's kind).
    let tcp = plain.into_inner()?;
    let name = baton_runtime::tls_client::server_name(envelope.host)
        .map_err(|e| SmtpError::Tls(e.to_string()))?;
    let stream = tls
        .connect(name, tcp)
        .await
        .map_err(|e| SmtpError::Tls(e.to_string()))?;
    let mut s = Session::new(stream);
    let ehlo = s.expect(Some(&format!("EHLO {me}")), &[250]).await?;
    transfer(&mut s, &ehlo, envelope).await
}

/// Logs in if the envelope says so, and sends the message: on a session
/// that is inside TLS by now.
async fn transfer<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut Session<S>,
    ehlo: &Reply,
    envelope: &Envelope<'_>,
) -> Result<(), SmtpError> {
    if let Some((user, password)) = envelope.login {
        if !ehlo.offers_auth("PLAIN") {
            s.quit().await;
            return Err(SmtpError::NoAuthPlain);
        }
        let token = base64(format!("\0{user}\0{password}").as_bytes());
        s.expect(Some(&format!("AUTH PLAIN {token}")), &[235])
            .await?;
    }
    let body = if ehlo.offers("8BITMIME") {
        " BODY=8BITMIME"
    } else {
        ""
    };
    s.expect(
        Some(&format!("MAIL FROM:<{}>{body}", envelope.from)),
        &[250],
    )
    .await?;
    for to in envelope.to {
        s.expect(Some(&format!("RCPT TO:<{to}>")), &[250, 251])
            .await?;
    }
    s.expect(Some("DATA"), &[354]).await?;
    s.write(&dot_stuffed(envelope.message)).await?;
    s.expect(None, &[250]).await?;
    s.quit().await;
    Ok(())
}

/// One side of a connection, plain or inside TLS.
struct Session<S> {
    stream: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn new(stream: S) -> Session<S> {
        Session {
            stream: BufReader::new(stream),
        }
    }

    /// The stream, if nothing unread is left in the buffer.
    fn into_inner(self) -> Result<S, SmtpError> {
        if !self.stream.buffer().is_empty() {
            return Err(SmtpError::Protocol(
                "the relay sent more after its answer to STARTTLS".into(),
            ));
        }
        Ok(self.stream.into_inner())
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SmtpError> {
        let stream = self.stream.get_mut();
        stream.write_all(bytes).await.map_err(io)?;
        stream.flush().await.map_err(io)
    }

    /// Sends `command` (if any) and reads the reply: an error unless its
    /// code is one of `ok`.
    async fn expect(&mut self, command: Option<&str>, ok: &[u16]) -> Result<Reply, SmtpError> {
        if let Some(command) = command {
            self.write(format!("{command}\r\n").as_bytes()).await?;
        }
        self.check(ok).await
    }

    async fn check(&mut self, ok: &[u16]) -> Result<Reply, SmtpError> {
        let reply = self.reply().await?;
        if ok.contains(&reply.code) {
            Ok(reply)
        } else {
            Err(SmtpError::Reply {
                code: reply.code,
                text: reply.text(),
            })
        }
    }

    async fn reply(&mut self) -> Result<Reply, SmtpError> {
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = (&mut self.stream)
                .take(MAX_LINE)
                .read_until(b'\n', &mut line)
                .await
                .map_err(io)?;
            if n == 0 {
                return Err(SmtpError::Io("the relay closed the connection".into()));
            }
            if line.last() != Some(&b'\n') {
                return Err(SmtpError::Protocol(format!(
                    "a reply line longer than {MAX_LINE} bytes"
                )));
            }
            lines.push(String::from_utf8_lossy(&line).into_owned());
            if let Some(reply) = Reply::from_lines(lines.iter().map(String::as_str))? {
                return Ok(reply);
            }
            if lines.len() >= MAX_LINES {
                return Err(SmtpError::Protocol(format!(
                    "a reply of more than {MAX_LINES} lines"
                )));
            }
        }
    }

    /// Says goodbye; the answer does not matter.
    async fn quit(&mut self) {
        let _ = self.expect(Some("QUIT"), &[221]).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines_are_read_with_their_continuation() {
        assert_eq!(
            parse_line("250-STARTTLS\r\n").ok(),
            Some((250, true, "STARTTLS"))
        );
        assert_eq!(parse_line("250 OK").ok(), Some((250, false, "OK")));
        assert_eq!(parse_line("354").ok(), Some((354, false, "")));
        assert_eq!(
            parse_line("451 4.3.0 try later\r\n").ok(),
            Some((451, false, "4.3.0 try later"))
        );
        for wrong in ["", "25", "abc ok", "250x", "650 no such class", "2a0 x"] {
            assert!(parse_line(wrong).is_err(), "{wrong:?}");
        }
    }

    #[test]
    fn a_multi_line_reply_ends_at_its_last_line() {
        let ehlo = [
            "250-relay.test greets [127.0.0.1]\r\n",
            "250-SIZE 33554432\r\n",
            "250-8BITMIME\r\n",
            "250-starttls\r\n",
            "250-AUTH LOGIN PLAIN\r\n",
            "250 HELP\r\n",
        ];
        let reply = Reply::from_lines(ehlo).expect("valid").expect("whole");
        assert_eq!(reply.code, 250);
        assert_eq!(reply.lines.len(), 6);
        assert!(reply.offers("STARTTLS") && reply.offers("8bitmime"));
        assert!(
            !reply.offers("relay.test"),
            "the greeting line is no extension"
        );
        assert!(reply.offers_auth("PLAIN") && !reply.offers_auth("CRAM-MD5"));
        assert_eq!(
            Reply::from_lines(ehlo[..3].iter().copied()).expect("valid"),
            None
        );
        assert!(Reply::from_lines(["250-a", "251 b"]).is_err(), "two codes");
        let plain = Reply::from_lines(["250-relay.test", "250 8BITMIME"])
            .expect("valid")
            .expect("whole");
        assert!(!plain.offers("STARTTLS"));
    }

    #[test]
    fn data_is_dot_stuffed_with_crlf_endings() {
        assert_eq!(
            dot_stuffed("Subject: x\n\n.hidden\n..two\nlast"),
            b"Subject: x\r\n\r\n..hidden\r\n...two\r\nlast\r\n.\r\n".to_vec()
        );
        assert_eq!(
            dot_stuffed("a\r\nb\rc\r\n"),
            b"a\r\nb\r\nc\r\n.\r\n".to_vec()
        );
        assert_eq!(dot_stuffed(".\n"), b"..\r\n.\r\n".to_vec());
    }

    #[test]
    fn base64_is_rfc4648s() {
        // RFC 4648, section 10.
        for (data, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(data.as_bytes()), encoded);
        }
        // RFC 4616's example: AUTH PLAIN's "\0tim\0tanstaaftanstaaf".
        assert_eq!(
            base64(b"\0tim\0tanstaaftanstaaf"),
            "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
        );
    }

    #[tokio::test]
    async fn what_the_relay_sends_after_its_starttls_answer_is_refused() {
        use tokio::io::AsyncWriteExt as _;
        let (client, mut relay) = tokio::io::duplex(1024);
        relay
            .write_all(b"220 go ahead\r\n250 injected before TLS\r\n")
            .await
            .expect("write");
        let mut s = Session::new(client);
        assert_eq!(s.expect(None, &[220]).await.expect("the 220").code, 220);
        assert!(matches!(s.into_inner(), Err(SmtpError::Protocol(_))));

        let (client, mut relay) = tokio::io::duplex(1024);
        relay.write_all(b"220 go ahead\r\n").await.expect("write");
        let mut s = Session::new(client);
        s.expect(None, &[220]).await.expect("the 220");
        assert!(s.into_inner().is_ok(), "nothing unread");
    }

    #[tokio::test]
    async fn a_reply_is_read_within_bounds() {
        use tokio::io::AsyncWriteExt as _;
        let (client, mut relay) = tokio::io::duplex(64 * 1024);
        relay
            .write_all(b"250-relay.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n452 4.3.1 full\r\n")
            .await
            .expect("write");
        let mut s = Session::new(client);
        let ehlo = s.expect(None, &[250]).await.expect("the EHLO answer");
        assert_eq!(ehlo.lines, ["relay.test", "STARTTLS", "8BITMIME"]);
        match s.expect(None, &[250]).await {
            Err(SmtpError::Reply { code: 452, text }) => assert_eq!(text, "4.3.1 full"),
            other => panic!("{other:?}"),
        }

        let (client, mut relay) = tokio::io::duplex(64 * 1024);
        let long = format!("250 {}\r\n", "x".repeat(MAX_LINE as usize));
        relay.write_all(long.as_bytes()).await.expect("write");
        let mut s = Session::new(client);
        assert!(matches!(
            s.expect(None, &[250]).await,
            Err(SmtpError::Protocol(_))
        ));

        let (client, relay) = tokio::io::duplex(1024);
        drop(relay);
        let mut s = Session::new(client);
        assert!(matches!(
            s.expect(None, &[220]).await,
            Err(SmtpError::Io(_))
        ));
    }
}

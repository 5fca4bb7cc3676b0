//! `batonctl hl7 send`: replays HL7 v2 messages from a file into the
//! gateway over MLLP, one message per frame, each waiting for its ACK: for
//! imports, demos and checking a mapping. A message starts at a line
//! beginning with `MSH`; line breaks between segments may be `\n` or `\r`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{anyhow, Context};
use baton_gateway::mllp;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Hl7Command,
}

#[derive(Debug, clap::Subcommand)]
enum Hl7Command {
    /// Send every message of a file (or - for standard input), each waiting
    /// for its ACK; exits 1 if any was not accepted (AA).
    Send(SendArgs),
}

#[derive(Debug, clap::Args)]
struct SendArgs {
    /// The file of HL7 messages, or - for standard input.
    file: PathBuf,
    /// The gateway's MLLP address.
    #[arg(long, env = "BATON_GATEWAY_ADDR", default_value = "127.0.0.1:2575")]
    gateway: SocketAddr,
    /// How long to wait for each ACK.
    #[arg(long, default_value = "30s", value_parser = baton_domain::time::parse_duration)]
    timeout: Duration,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Hl7Command::Send(args) = args.command;
    let text = if args.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading standard input")?
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("reading {}", args.file.display()))?
    };
    let messages = split(&text);
    let mut stream = TcpStream::connect(args.gateway)
        .await
        .with_context(|| format!("connecting to the gateway at {}", args.gateway))?;
    let mut refused = 0;
    for message in &messages {
        stream.write_all(&mllp::frame(message.as_bytes())).await?;
        let ack = tokio::time::timeout(args.timeout, read_ack(&mut stream))
            .await
            .map_err(|_| anyhow!("no ACK within {:?}", args.timeout))??;
        let line = describe(&ack);
        if !line.contains(" AA") {
            refused += 1;
        }
        crate::output::line(&line);
    }
    if refused > 0 {
        anyhow::bail!("{refused} of {} messages were not accepted", messages.len());
    }
    Ok(())
}

/// The file's messages, each with its segments ended by `\r`.
fn split(text: &str) -> Vec<String> {
    let mut messages: Vec<String> = Vec::new();
    for line in text.split(['\r', '\n']).filter(|l| !l.trim().is_empty()) {
        if line.starts_with("MSH") || messages.is_empty() {
            messages.push(String::new());
        }
        if let Some(m) = messages.last_mut() {
            m.push_str(line);
            m.push('\r');
        }
    }
    messages
}

/// Reads one framed ACK; an error if the gateway closes first (it does so
/// when it could not store the message: send it again later).
async fn read_ack(stream: &mut TcpStream) -> anyhow::Result<Vec<u8>> {
    let mut deframer = mllp::Deframer::new(1 << 20);
    let mut buf = [0u8; 4096];
    loop {
        if let Some(frame) = deframer.next_frame()? {
            return Ok(frame);
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            anyhow::bail!("the gateway closed the connection without an ACK: the message was not stored; send it again");
        }
        deframer.push(&buf[..n]);
    }
}

/// `<control id> <AA|AE|AR> [<field>: the error]`.
fn describe(ack: &[u8]) -> String {
    let text = String::from_utf8_lossy(ack);
    let field = |segment: &str, n: usize| {
        text.split('\r')
            .find(|s| s.starts_with(segment))
            .and_then(|s| s.split('|').nth(n))
            .unwrap_or("")
            .to_owned()
    };
    let (control, code, error) = (field("MSA|", 2), field("MSA|", 1), field("ERR|", 8));
    if code.is_empty() {
        return format!("(not an ACK) {text}");
    }
    // ERR-2 is segment^sequence^field.
    let location = field("ERR|", 2);
    let place = match location.split('^').collect::<Vec<_>>()[..] {
        [segment, _, field, ..] if !segment.is_empty() => format!("{segment}-{field}: "),
        _ => String::new(),
    };
    if error.is_empty() {
        format!("{control} {code}")
    } else {
        format!("{control} {code} {place}{error}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_start_at_msh_whatever_the_line_breaks() {
        let text = "MSH|^~\\&|A\nORC|NW\r\n\nMSH|^~\\&|B\rOBR|1\r";
        assert_eq!(
            split(text),
            ["MSH|^~\\&|A\rORC|NW\r", "MSH|^~\\&|B\rOBR|1\r"]
        );
    }

    #[test]
    fn an_ack_is_described_by_its_code_and_error() {
        let ae = b"MSH|^~\\&|BATON|BATON|OE|N|20261205||ACK^O01^ACK|ACKM1|P|2.5\rMSA|AE|M1\rERR||OBR^1^4|103^Table value not found^HL70357|E||||service \"XRAY\" is not in the mapping\r";
        assert_eq!(
            describe(ae),
            "M1 AE OBR-4: service \"XRAY\" is not in the mapping"
        );
        let aa = b"MSH|^~\\&|BATON|BATON|OE|N|20261205||ACK^O01^ACK|ACKM2|P|2.5\rMSA|AA|M2\r";
        assert_eq!(describe(aa), "M2 AA");
    }
}

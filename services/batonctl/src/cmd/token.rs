//! `batonctl token`: tokens for wall screens and metrics scrapers, and the
//! SHA-256 the caller registry keeps of them (never the token itself).
//!
//! It must never write a token anywhere but standard output.

use std::io::Read as _;

use anyhow::Context as _;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Make a new random token (32 bytes, hex) and print it with the
    /// registry entry that holds its hash, for deploy/callers.json.
    New {
        /// The screen's or scraper's id in the registry.
        #[arg(long)]
        id: String,
        /// `screen` (logs in on the board) or `scraper` (reads /metrics).
        #[arg(long, value_parser = ["screen", "scraper"])]
        role: String,
    },
    /// Read a token on standard input (one line) and print its SHA-256 in
    /// hex, as the registry's token_sha256. The same as
    /// `printf '%s' "$TOKEN" | sha256sum`.
    Hash,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        TokenCommand::New { id, role } => {
            let token = baton_runtime::web_auth::new_token().context("making a token")?;
            let hash = baton_runtime::web_auth::hex(&baton_runtime::web_auth::token_sha256(&token));
            let entry = serde_json::json!({"id": id, "role": role, "token_sha256": hash});
            println!("token (give it to the {role}; it is not kept anywhere): {token}");
            println!("registry entry: {entry}");
        }
        TokenCommand::Hash => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .context("reading the token on standard input")?;
            let token = input.trim_end_matches(['\n', '\r']);
            anyhow::ensure!(!token.is_empty(), "no token on standard input");
            println!(
                "{}",
                baton_runtime::web_auth::hex(&baton_runtime::web_auth::token_sha256(token))
            );
        }
    }
    Ok(())
}

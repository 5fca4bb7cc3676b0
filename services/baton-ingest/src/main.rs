//! `baton-ingest`: see the crate docs of `baton_ingest`.

use anyhow::Context;
use clap::Parser;

/// mimalloc: the services allocate per request and per event, and glibc
/// malloc was ~15% of the projector's profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = baton_ingest::Config::parse();
    baton_runtime::init_tracing();
    let grpc = baton_runtime::bind(config.listen).await?;
    let http = baton_runtime::bind(config.http_listen).await?;
    let shutdown = baton_runtime::shutdown_on_signals();
    baton_ingest::run(config, grpc, http, shutdown)
        .await
        .context("baton-ingest failed")
}

//! `baton-ingest`: see the crate docs of `baton_ingest`.

use anyhow::Context;
use clap::Parser;

/// mimalloc: the services allocate per request and per event, and glibc
/// malloc was ~15% of the projector's profile. See `baton_alloc`.
#[global_allocator]
static ALLOCATOR: baton_alloc::Allocator = baton_alloc::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = baton_ingest::Config::parse();
    let purge = baton_alloc::keep_freed_memory();
    baton_runtime::init_tracing();
    tracing::info!(?purge, "allocator");
    let grpc = baton_runtime::bind(config.listen).await?;
    let http = baton_runtime::bind(config.http_listen).await?;
    let shutdown = baton_runtime::shutdown_on_signals();
    baton_ingest::run(config, grpc, http, shutdown)
        .await
        .context("baton-ingest failed")
}

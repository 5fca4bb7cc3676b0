//! `baton-ingest`: see the crate docs of `baton_ingest`.

/// mimalloc: the services allocate per request and per event, and glibc
/// malloc was ~15% of the projector's profile. See `baton_alloc`.
#[global_allocator]
static ALLOCATOR: baton_alloc::Allocator = baton_alloc::Allocator;

fn main() -> std::process::ExitCode {
    let purge = baton_alloc::keep_freed_memory();
    baton_runtime::serve::exit_code(baton_runtime::serve::main::<baton_ingest::Config>(|| {
        tracing::info!(?purge, "allocator")
    }))
}

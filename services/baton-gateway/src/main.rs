//! `baton-gateway`: see the crate docs of `baton_gateway`.

#[global_allocator]
static ALLOCATOR: baton_alloc::Allocator = baton_alloc::Allocator;

fn main() -> std::process::ExitCode {
    let purge = baton_alloc::keep_freed_memory();
    baton_runtime::serve::exit_code(baton_runtime::serve::main::<baton_gateway::Config>(|| {
        tracing::info!(?purge, "allocator")
    }))
}

//! `baton-notify`: see the crate docs of `baton_notify`.

#[global_allocator]
static ALLOCATOR: baton_alloc::Allocator = baton_alloc::Allocator;

fn main() -> std::process::ExitCode {
    let purge = baton_alloc::keep_freed_memory();
    baton_runtime::serve::exit_code(baton_runtime::serve::main::<baton_notify::Config>(|| {
        tracing::info!(?purge, "allocator")
    }))
}

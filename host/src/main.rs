//! `switchyard`: parse the command line, set up tracing, hand over to the library.

use clap::Parser;

// mimalloc: a call allocates and frees many small strings across threads, where
// glibc's malloc and free took about a fifth of the CPU (perf, 1,000 calls/s).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    switchyard::cli::Cli::parse().run().await
}

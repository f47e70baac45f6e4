//! `netboot-nbdd`: the NBD server on its own; the server itself is [`netboot_bins::nbdd`].

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use netboot_bins::nbdd;

/// Connections still open at SIGTERM get this long to close (a powered-off client never
/// closes its own).
const DRAIN: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    let _log = netboot_bins::init_logging();
    let args = nbdd::Config::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("runtime: {e}");
            return ExitCode::from(netboot_bins::EXIT_USAGE);
        }
    };
    match rt.block_on(async {
        let stop = netboot_bins::shutdown_signal()?;
        nbdd::run(args, stop, DRAIN).await
    }) {
        Ok(()) => ExitCode::from(netboot_bins::EXIT_OK),
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(netboot_bins::EXIT_USAGE)
        }
    }
}

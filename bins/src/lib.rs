//! Shared plumbing for netboot's reference binaries (`netbootd`, `netboot-dhcpd`,
//! `netboot-tftpd`, `netboot-nbdd`, `ltsconf`): logging set-up and exit codes. Each binary
//! lives in `src/bin/` and is a thin main around a server module here ([`dhcpd`], [`tftpd`],
//! [`nbdd`]), so `netbootd` can compose all three on one runtime from one config file.

pub mod dhcpd;
pub mod nbdd;
pub mod tftpd;

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code when the input had errors (a config or lts.conf that does not pass).
pub const EXIT_INVALID: u8 = 1;
/// Exit code for usage or I/O errors.
pub const EXIT_USAGE: u8 = 2;

/// Installs the tracing subscriber: `RUST_LOG` picks the filter (default `info`), logs go to
/// stderr so stdout stays for a command's real output.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// A future that completes on SIGTERM or SIGINT (the handlers are installed at once, inside
/// a tokio runtime, so a signal that arrives before the future is polled is not lost).
pub fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + use<>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("terminated"),
            _ = int.recv() => tracing::info!("interrupted"),
        }
    })
}

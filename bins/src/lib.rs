//! Shared plumbing for netboot's reference binaries (`netbootd`, `netboot-dhcpd`,
//! `netboot-tftpd`, `netboot-nbdd`, `ltsconf`): logging set-up and exit codes. Each binary
//! lives in `src/bin/` and is a thin main around a server module here ([`dhcpd`], [`tftpd`],
//! [`nbdd`]), so `netbootd` can compose all three on one runtime from one config file.

pub mod dhcpd;
pub mod nbdd;
pub mod ra;
pub mod tftpd;

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code when the input had errors (a config or lts.conf that does not pass).
pub const EXIT_INVALID: u8 = 1;
/// Exit code for usage or I/O errors.
pub const EXIT_USAGE: u8 = 2;

/// Keeps the log writer running; hold it until `main` returns so the last lines are written.
#[must_use = "logging stops when the guard is dropped"]
pub struct LogGuard {
    _writer: Option<tracing_appender::non_blocking::WorkerGuard>,
}

/// Lines buffered for stderr before new ones are dropped (counted, never blocking).
const LOG_BUFFER_LINES: usize = 64 * 1024;

/// Installs the tracing subscriber: `RUST_LOG` picks the filter (default `info`), logs go to
/// stderr so stdout stays for a command's real output.
///
/// A server must never stall because nobody reads its stderr (a full pipe would block the
/// event loop inside a log call), so lines go through a bounded queue to a writer thread; when
/// the queue is full, lines are dropped rather than waited for.
pub fn init_logging() -> LogGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_BUFFER_LINES)
        .lossy(true)
        .thread_name("log-writer")
        .finish(std::io::stderr());
    // Colour only for a person at a terminal, never into log files or pipes.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer)
        .try_init()
        .is_ok();
    LogGuard {
        _writer: installed.then_some(guard),
    }
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

/// New settings for a running service, sent by `netbootd` on SIGHUP after they passed the
/// same checks as at start. A service applies each new value to what starts after it (new
/// NBD connections, new TFTP requests, new DHCP exchanges); what is already running keeps
/// the settings it began with, so a reload never drops a client. When the sender is gone
/// (`changed()` returns an error) there are no more reloads and the service simply goes on.
pub type Reload<T> = tokio::sync::watch::Receiver<std::sync::Arc<T>>;

/// A [`Reload`] that never changes, for the single servers (they have no reload).
pub fn no_reload<T>(settings: T) -> Reload<T> {
    tokio::sync::watch::channel(std::sync::Arc::new(settings)).1
}

//! Shared plumbing for netboot's reference binaries (`netbootd`, `netboot-dhcpd`,
//! `netboot-tftpd`, `netboot-nbdd`, `ltsconf`): logging set-up and exit codes. Each binary
//! lives in `src/bin/` and is a thin driver around one of the protocol crates.

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

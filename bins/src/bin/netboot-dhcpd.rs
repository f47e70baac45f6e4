//! netboot-dhcpd: the DHCP/PXE server on its own; the server itself is
//! [`netboot_bins::dhcpd`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use netboot_bins::dhcpd;

/// DHCPv4 + PXE server for network-booted machines.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The TOML configuration (see dhcp/examples/netboot-dhcpd.toml).
    #[arg(long, short)]
    config: PathBuf,
    /// Check the configuration, print every problem as file:line:col, and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let _log = netboot_bins::init_logging();
    let cli = Cli::parse();
    let text = match std::fs::read_to_string(&cli.config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: {e}", cli.config.display());
            return ExitCode::from(netboot_bins::EXIT_USAGE);
        }
    };
    let loaded = match dhcpd::load(&text) {
        Ok(l) => l,
        Err(problems) => {
            for p in problems {
                eprintln!(
                    "{}:{}:{}: {}",
                    cli.config.display(),
                    p.line,
                    p.col,
                    p.message
                );
            }
            return ExitCode::from(netboot_bins::EXIT_INVALID);
        }
    };
    if cli.check_config {
        println!(
            "{}: ok ({} subnets, {} hosts, {} boot rules)",
            cli.config.display(),
            loaded.engine.subnets.len(),
            loaded.engine.hosts.len(),
            loaded.engine.boot.rules.len()
        );
        return ExitCode::from(netboot_bins::EXIT_OK);
    }
    // SIGTERM and SIGINT set the flag (a small runtime waits for them on its own thread);
    // the server then stops receiving, syncs the journal, sends the ACKs that waited for it
    // and returns, and the process exits 0.
    let shutdown = Arc::new(AtomicBool::new(false));
    let _signals = match signal_watcher(Arc::clone(&shutdown)) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("installing signal handlers: {e:#}");
            return ExitCode::from(netboot_bins::EXIT_USAGE);
        }
    };
    let result = dhcpd::run(loaded, Arc::clone(&shutdown));
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::from(netboot_bins::EXIT_OK)
        }
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(netboot_bins::EXIT_USAGE)
        }
    }
}

/// Sets `flag` on SIGTERM or SIGINT. The handlers are installed before this returns.
fn signal_watcher(flag: Arc<AtomicBool>) -> std::io::Result<std::thread::JoinHandle<()>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let signal = rt.block_on(async { netboot_bins::shutdown_signal() })?;
    Ok(std::thread::spawn(move || {
        rt.block_on(signal);
        flag.store(true, Ordering::SeqCst);
    }))
}

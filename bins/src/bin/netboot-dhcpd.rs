//! netboot-dhcpd: the DHCP/PXE server on its own; the server itself is
//! [`netboot_bins::dhcpd`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

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
    // Never set: the process runs until it is killed, as before.
    let shutdown = Arc::new(AtomicBool::new(false));
    match dhcpd::run(loaded, shutdown) {
        Ok(()) => ExitCode::from(netboot_bins::EXIT_OK),
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(netboot_bins::EXIT_USAGE)
        }
    }
}

//! `netboot-tftpd`: the TFTP server on its own; the server itself is
//! [`netboot_bins::tftpd`].

use std::process::ExitCode;
use std::time::Duration;

use netboot_bins::tftpd;

/// Transfers still running at SIGTERM get this long to finish.
const DRAIN: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let _log = netboot_bins::init_logging();
    let args = match tftpd::settings_from_cli() {
        Ok(args) => args,
        Err(problems) => {
            for problem in problems {
                eprintln!("netboot-tftpd: {problem}");
            }
            return ExitCode::from(netboot_bins::EXIT_INVALID);
        }
    };
    if args.check_config {
        println!("netboot-tftpd: configuration ok");
        return ExitCode::from(netboot_bins::EXIT_OK);
    }
    // Single-threaded: with `--threads N` the server adds N - 1 more single-threaded loops
    // and spreads sessions over them (no work stealing on the per-packet path).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netboot-tftpd: {e}");
            return ExitCode::from(netboot_bins::EXIT_USAGE);
        }
    };
    match rt.block_on(async {
        let stop = netboot_bins::shutdown_signal()?;
        tftpd::run(args, stop, DRAIN).await
    }) {
        Ok(()) => ExitCode::from(netboot_bins::EXIT_OK),
        Err(e) => {
            eprintln!("netboot-tftpd: {e:#}");
            ExitCode::from(netboot_bins::EXIT_USAGE)
        }
    }
}

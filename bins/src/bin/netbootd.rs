//! `netbootd`: DHCP, TFTP and NBD for a whole farm on one tokio runtime, from one TOML file
//! whose `[dhcp]`, `[tftp]` and `[nbd]` tables are the single servers' configurations (each
//! optional; a missing table means that service is not run).
//!
//! Before serving, every `lts.conf` / `ltsp.conf` under the TFTP root is checked with the
//! ltsconf crate: clients fetch those files from us, so a broken one is a broken boot. Errors
//! refuse the start unless `--allow-ltsconf-errors`; warnings are logged.
//!
//! SIGTERM or SIGINT: every service stops accepting; TFTP transfers and NBD connections still
//! running get a bounded time to finish (a powered-off VM never closes its NBD connection, so
//! the wait must end); the DHCP lease journal is flushed; the exit code is 0.
//!
//! SIGHUP: the file is read and checked again; if it passes, new DHCP exchanges, TFTP requests
//! and NBD connections use it while connected NBD clients and running transfers carry on
//! untouched (restarting nbd-server dropped every LTSP client; a reload here drops none).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use netboot_bins::{EXIT_INVALID, EXIT_OK, EXIT_USAGE, dhcpd, nbdd, ra, tftpd};
use netboot_ltsconf::{Dialect, Severity};
use serde::Deserialize;
use tokio::sync::watch;

/// One server for a network-booted farm: DHCP, TFTP and NBD from one config file.
#[derive(Debug, Clone, Parser)]
#[command(name = "netbootd", version)]
struct Cli {
    /// The TOML configuration (see examples/farm/netboot.toml).
    #[arg(long, short)]
    config: PathBuf,
    /// Check the configuration and every lts.conf / ltsp.conf under the TFTP root, print
    /// every problem, and exit: 0 when all is well, 1 otherwise.
    #[arg(long)]
    check_config: bool,
    /// Start (or pass the check) even when an lts.conf under the TFTP root has errors.
    #[arg(long)]
    allow_ltsconf_errors: bool,
}

/// The file: one optional table per service, each exactly that server's own configuration.
/// Everything shares one runtime, sized by `threads` in `[tftp]` or `[nbd]` (see [`workers`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    dhcp: Option<dhcpd::Config>,
    tftp: Option<tftpd::Config>,
    nbd: Option<nbdd::Config>,
    /// Bare IPv6 router advertisements (see `netboot_bins::ra`); on by default with `[dhcp]`.
    ra: Option<ra::Config>,
}

/// Only the `[dhcp.server] interfaces` key, read a second time for the advertiser's default.
#[derive(Debug, Default, Deserialize)]
struct DhcpInterfaces {
    #[serde(default)]
    dhcp: Option<DhcpPart>,
}
#[derive(Debug, Default, Deserialize)]
struct DhcpPart {
    #[serde(default)]
    server: Option<DhcpServerPart>,
}
#[derive(Debug, Default, Deserialize)]
struct DhcpServerPart {
    #[serde(default)]
    interfaces: Vec<String>,
}

/// What the check found fit to run.
struct Checked {
    dhcp: Option<dhcpd::Loaded>,
    tftp: Option<tftpd::Args>,
    nbd: Option<nbdd::Config>,
    /// The advertiser's settings and the interfaces it serves (empty: every interface).
    ra: Option<(ra::Config, Vec<String>)>,
}

/// TFTP transfers and NBD connections running at shutdown get this long to finish.
const DRAIN: Duration = Duration::from_secs(10);
/// Deepest directory level searched for lts.conf under the TFTP root.
const LTSCONF_DEPTH: usize = 8;

fn main() -> ExitCode {
    let _log = netboot_bins::init_logging();
    let cli = Cli::parse();
    let shown = cli.config.display().to_string();
    let checked = match load(&cli, cli.check_config) {
        Ok(c) => c,
        Err((code, problems)) => {
            for p in problems {
                eprintln!("{p}");
            }
            return ExitCode::from(code);
        }
    };
    if cli.check_config {
        let on = |b: bool| if b { "on" } else { "off" };
        println!(
            "{shown}: ok (dhcp {}, tftp {}, nbd {}, ra {})",
            on(checked.dhcp.is_some()),
            on(checked.tftp.is_some()),
            on(checked.nbd.is_some()),
            on(checked.ra.is_some())
        );
        return ExitCode::from(EXIT_OK);
    }
    if checked.dhcp.is_none() && checked.tftp.is_none() && checked.nbd.is_none() {
        eprintln!("{shown}: no [dhcp], [tftp] or [nbd] table: nothing to serve");
        return ExitCode::from(EXIT_INVALID);
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers(&checked) {
        builder.worker_threads(n);
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netbootd: runtime: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let result = rt.block_on(serve(cli, checked));
    // Connections that outlived the drain (powered-off clients) are dropped here, bounded.
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Reads the file and checks all of it, every lts.conf under the TFTP root included (their
/// warnings are printed when `print_warnings`, else logged). The error carries the exit code
/// and every problem found.
fn load(cli: &Cli, print_warnings: bool) -> Result<Checked, (u8, Vec<String>)> {
    let shown = cli.config.display().to_string();
    let text = std::fs::read_to_string(&cli.config)
        .map_err(|e| (EXIT_USAGE, vec![format!("{shown}: {e}")]))?;
    let checked = check(&shown, &text).map_err(|p| (EXIT_INVALID, p))?;
    let ltsconf_errors = checked
        .tftp
        .as_ref()
        .and_then(|t| t.root.as_deref())
        .map_or(0, |root| check_ltsconf(root, print_warnings));
    if ltsconf_errors > 0 && !cli.allow_ltsconf_errors {
        return Err((
            EXIT_INVALID,
            vec![format!(
                "netbootd: {ltsconf_errors} error(s) in lts.conf files under the TFTP root; \
                 fix them or pass --allow-ltsconf-errors"
            )],
        ));
    }
    Ok(checked)
}

/// Worker threads of the one runtime: the larger of `[nbd] threads` and `[tftp] threads`
/// when either asks for more than one; otherwise tokio's default, one per CPU.
fn workers(checked: &Checked) -> Option<usize> {
    let nbd = checked.nbd.as_ref().and_then(|n| n.threads);
    let tftp = checked
        .tftp
        .as_ref()
        .map(|t| usize::from(t.threads))
        .filter(|&n| n > 1);
    nbd.max(tftp).map(|n| n.max(1))
}

/// Parses the file and checks each table with its server's own checks; every problem is
/// returned, prefixed with the file (and the line and column where known).
fn check(shown: &str, text: &str) -> Result<Checked, Vec<String>> {
    let file: File = toml::from_str(text).map_err(|e| vec![format!("{shown}: {e}")])?;
    let mut problems = Vec::new();
    let dhcp = match file.dhcp {
        None => None,
        Some(c) => match dhcpd::check(text, c) {
            Ok(l) => Some(l),
            Err(ps) => {
                problems.extend(
                    ps.into_iter()
                        .map(|p| format!("{shown}:{}:{}: [dhcp] {}", p.line, p.col, p.message)),
                );
                None
            }
        },
    };
    let tftp = match file.tftp {
        None => None,
        Some(c) => match tftpd::settings_from_config(c, &format!("{shown} [tftp]")) {
            Ok(a) => Some(a),
            Err(ps) => {
                problems.extend(ps.into_iter().map(|p| format!("{shown}: [tftp] {p}")));
                None
            }
        },
    };
    let nbd = match file.nbd {
        None => None,
        Some(c) => {
            let ps = nbdd::check(&c);
            problems.extend(ps.into_iter().map(|p| format!("{shown}: [nbd] {p}")));
            Some(c)
        }
    };
    // With DHCP on, advertise unless told not to; without it, only when asked.
    let ra = match file.ra {
        Some(c) => Some(c),
        None if dhcp.is_some() => Some(ra::Config::default()),
        None => None,
    }
    .filter(|c| c.enable);
    if let Some(c) = &ra {
        problems.extend(
            ra::check(c)
                .into_iter()
                .map(|p| format!("{shown}: [ra] {p}")),
        );
    }
    let ra = ra.map(|c| {
        let interfaces = if c.interfaces.is_empty() {
            toml::from_str::<DhcpInterfaces>(text)
                .ok()
                .and_then(|f| f.dhcp?.server)
                .map(|s| s.interfaces)
                .unwrap_or_default()
        } else {
            c.interfaces.clone()
        };
        (c, interfaces)
    });
    if problems.is_empty() {
        Ok(Checked {
            dhcp,
            tftp,
            nbd,
            ra,
        })
    } else {
        Err(problems)
    }
}

/// Checks every lts.conf / ltsp.conf under `root`; prints errors (and, for `--check-config`,
/// warnings) rendered with their place, logs warnings, and returns the number of errors.
fn check_ltsconf(root: &Path, print_warnings: bool) -> usize {
    let mut files = Vec::new();
    find_ltsconf(root, LTSCONF_DEPTH, &mut files);
    files.sort();
    let mut errors = 0;
    for path in files {
        let shown = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{shown}: {e}");
                errors += 1;
                continue;
            }
        };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let dialect = match name.as_deref() {
            Some("ltsp.conf") => Dialect::Ltsp19,
            Some("lts.conf") => Dialect::Lts5,
            _ => Dialect::detect(&text),
        };
        let doc = netboot_ltsconf::parse(&text, dialect);
        let (mut e, mut w) = (0, 0);
        for d in &doc.diagnostics {
            let rendered = d.render(&shown, &text);
            if d.severity == Severity::Error {
                e += 1;
                eprint!("{rendered}");
            } else {
                w += 1;
                if print_warnings {
                    eprint!("{rendered}");
                } else {
                    tracing::warn!(file = %shown, "{}", d.message);
                }
            }
        }
        tracing::info!(file = %shown, dialect = dialect.name(), errors = e, warnings = w, "lts.conf checked");
        errors += e;
    }
    errors
}

/// Collects lts.conf / ltsp.conf files below `dir` (symbolic links are not followed, so a
/// link loop cannot trap the search).
fn find_ltsconf(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_dir() && depth > 0 {
            find_ltsconf(&path, depth - 1, out);
        } else if kind.is_file()
            && matches!(entry.file_name().to_str(), Some("lts.conf" | "ltsp.conf"))
        {
            out.push(path);
        }
    }
}

/// The running services' reload channels (`None` where a service is not running).
struct Running {
    dhcp: Option<watch::Sender<Arc<dhcpd::Loaded>>>,
    tftp: Option<watch::Sender<Arc<tftpd::Args>>>,
    nbd: Option<watch::Sender<Arc<nbdd::Config>>>,
    ra: Option<(ra::Config, Vec<String>)>,
}

impl Running {
    /// SIGHUP: rereads and rechecks the whole file (lts.conf included). A file with problems
    /// is refused and everything keeps its settings; otherwise each running service gets its
    /// new table and applies it to what starts next, so no client is dropped. Adding or
    /// removing a service, or changing `[ra]`, waits for a restart (logged).
    fn reload(&self, cli: &Cli) {
        let new = match load(cli, false) {
            Ok(c) => c,
            Err((_, problems)) => {
                for p in problems {
                    tracing::error!("{p}");
                }
                tracing::error!("reload refused: the running configuration stays");
                return;
            }
        };
        let dhcp = swap("dhcp", &self.dhcp, new.dhcp);
        let tftp = swap("tftp", &self.tftp, new.tftp);
        let nbd = swap("nbd", &self.nbd, new.nbd);
        if new.ra != self.ra {
            tracing::warn!("[ra] changes apply at the next restart");
        }
        tracing::info!(dhcp, tftp, nbd, "configuration reloaded");
    }
}

/// Hands a running service its new settings; true when it got them.
fn swap<T>(name: &str, running: &Option<watch::Sender<Arc<T>>>, new: Option<T>) -> bool {
    match (running, new) {
        (Some(tx), Some(settings)) => {
            tx.send_replace(Arc::new(settings));
            true
        }
        (None, None) => false,
        (Some(_), None) => {
            tracing::warn!(
                service = name,
                "removing a service needs a restart; it runs on with its old settings"
            );
            false
        }
        (None, Some(_)) => {
            tracing::warn!(service = name, "adding a service needs a restart");
            false
        }
    }
}

/// Runs every configured service until SIGTERM or SIGINT (or until one fails), then stops
/// them all; SIGHUP reloads the configuration ([`Running::reload`]).
async fn serve(cli: Cli, checked: Checked) -> anyhow::Result<()> {
    let signal = netboot_bins::shutdown_signal()?;
    tokio::pin!(signal);
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut services = tokio::task::JoinSet::new();
    let dhcp_stop = Arc::new(AtomicBool::new(false));
    let mut running = Running {
        dhcp: None,
        tftp: None,
        nbd: None,
        ra: checked.ra.clone(),
    };
    if let Some(nbd) = checked.nbd {
        let (tx, rx) = watch::channel(Arc::new(nbd));
        running.nbd = Some(tx);
        let stop = stopped();
        services.spawn(async move { ("nbd", nbdd::run_reloadable(rx, stop, DRAIN).await) });
    }
    if let Some(tftp) = checked.tftp {
        let (tx, rx) = watch::channel(Arc::new(tftp));
        running.tftp = Some(tx);
        let stop = stopped();
        services.spawn(async move { ("tftp", tftpd::run_reloadable(rx, stop, DRAIN).await) });
    }
    if let Some((config, mut interfaces)) = checked.ra {
        if interfaces.is_empty() {
            interfaces = ra::all_interfaces();
        }
        let stop = stopped();
        services.spawn(async move { ("ra", ra::run(config, interfaces, stop).await) });
    }
    if let Some(dhcp) = checked.dhcp {
        let (tx, rx) = watch::channel(Arc::new(dhcp));
        running.dhcp = Some(tx);
        let flag = Arc::clone(&dhcp_stop);
        // The DHCP server is blocking (its own threads and a group-commit journal).
        let handle = tokio::task::spawn_blocking(move || dhcpd::run_reloadable(rx, flag));
        services.spawn(async move {
            let r = handle
                .await
                .context("the DHCP server panicked")
                .and_then(|r| r);
            ("dhcp", r)
        });
    }
    tracing::info!(services = services.len(), "netbootd serving");
    let mut result = Ok(());
    loop {
        tokio::select! {
            () = &mut signal => break,
            Some(()) = hangup.recv() => {
                // Checking reads files and walks the TFTP root: off the event loop.
                let cli = cli.clone();
                let r = std::mem::replace(&mut running, Running { dhcp: None, tftp: None, nbd: None, ra: None });
                running = tokio::task::spawn_blocking(move || { r.reload(&cli); r })
                    .await
                    .context("the reload panicked")?;
            }
            Some(done) = services.join_next() => {
                result = outcome(done);
                tracing::error!("a service stopped early; stopping the others");
                break;
            }
        }
    }
    let _ = stop_tx.send(true);
    dhcp_stop.store(true, Ordering::SeqCst);
    // Each service bounds its own drain; this bounds the whole in case one does not.
    let all = async {
        while let Some(done) = services.join_next().await {
            result = std::mem::replace(&mut result, Ok(())).and(outcome(done));
        }
    };
    if tokio::time::timeout(DRAIN + Duration::from_secs(5), all)
        .await
        .is_err()
    {
        tracing::warn!("services did not stop in time; exiting anyway");
    }
    tracing::info!("netbootd stopped");
    result
}

fn outcome(
    done: Result<(&'static str, anyhow::Result<()>), tokio::task::JoinError>,
) -> anyhow::Result<()> {
    match done {
        Ok((name, Ok(()))) => {
            tracing::info!(service = name, "stopped");
            Ok(())
        }
        Ok((name, Err(e))) => Err(e.context(format!("{name} failed"))),
        Err(e) => Err(anyhow::anyhow!("a service task failed: {e}")),
    }
}

//! The TFTP server (`netboot-tftpd`, and `[tftp]` in `netbootd`): a read-mostly TFTP server
//! for network boot, built on `netboot-tftp`.
//!
//! One event loop (tokio; single-threaded unless `--threads` says otherwise): listening
//! sockets hand each request to a session task with its own port; no thread or process per
//! transfer. Hard
//! caps bound sessions in total and per client address, the window in bytes and the time
//! per transfer, so a flood of requests costs bounded memory. Files are confined to
//! `--root` by `openat2(RESOLVE_BENEATH)`; uploads only with `--allow-write`.

mod config;
mod fs;
mod session;

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};
use netboot_tftp::engine::{Config as EngineConfig, Rollover};
use netboot_tftp::wire::{self, ErrorCode, Repr};
use tokio::net::UdpSocket;

/// TFTP server for network boot (RFC 1350, 2347, 2348, 2349, 7440).
///
/// The settings, from flags ([`settings_from_cli`]) or a [`Config`] ([`settings_from_config`]).
#[derive(Debug, Parser)]
#[command(name = "netboot-tftpd", version)]
pub struct Args {
    /// Directory served; nothing outside it is ever reachable (required, here or in the
    /// config file).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Address to listen on, IPv4 or IPv6 (repeatable); default port 69.
    #[arg(
        long = "listen",
        value_name = "ADDR[:PORT]",
        default_value = "0.0.0.0:69"
    )]
    listen: Vec<String>,
    /// Concurrent transfers at most.
    #[arg(long, default_value_t = 128)]
    max_sessions: usize,
    /// Concurrent transfers per client address at most.
    #[arg(long, default_value_t = 16)]
    max_sessions_per_client: usize,
    /// Largest block size granted (RFC 2348 allows 8..=65464).
    #[arg(long, default_value_t = wire::MAX_BLKSIZE, value_parser = clap::value_parser!(u16).range(8..=65464))]
    max_blksize: u16,
    /// Largest window granted, in blocks (RFC 7440).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    max_windowsize: u16,
    /// Window × block size cap in bytes, so a window never overflows a client's buffer.
    #[arg(long, default_value_t = 64 * 1024)]
    max_window_bytes: u32,
    /// Seconds a single transfer may take at most.
    #[arg(long, default_value_t = 600)]
    max_transfer_secs: u64,
    /// Retransmission timeout in milliseconds when the client sets none.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Retransmissions of one packet before a transfer is abandoned.
    #[arg(long, default_value_t = 5)]
    retries: u32,
    /// Block number after 65535.
    #[arg(long, value_enum, default_value = "0")]
    rollover: RolloverArg,
    /// Accept uploads (WRQ). Off by default: the server is read-only.
    #[arg(long)]
    allow_write: bool,
    /// Let uploads replace existing files.
    #[arg(long, requires = "allow_write")]
    allow_overwrite: bool,
    /// Largest upload in bytes (a larger `tsize` gets ERROR 3 up front).
    #[arg(long, default_value_t = 256 * 1024 * 1024)]
    max_upload_bytes: u64,
    /// Treat `\` in file names as `/` (Windows-style clients); otherwise it is refused.
    #[arg(long)]
    map_backslash: bool,
    /// Longest request accepted in bytes (RFC 2347 says 512).
    #[arg(long, default_value_t = wire::MAX_REQUEST_LEN)]
    max_request_len: usize,
    /// Event-loop threads (fixed, never one per transfer): 1 runs everything on a single
    /// thread; more spread sessions over that many threads.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
    /// TOML file with any of the settings above (kebab-case keys); flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check the settings (flags and config file) and the root, print every problem, and
    /// exit: 0 when all is well, 1 otherwise.
    #[arg(long)]
    pub check_config: bool,
}

/// The TFTP settings as a TOML table: the same keys as the flags, in kebab-case (the
/// `--config` file of `netboot-tftpd`, or `[tftp]` in `netbootd`'s). Unknown keys are errors.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct Config(config::FileConfig);

/// Loads a `--config` file.
pub fn load_config(path: &std::path::Path) -> Result<Config, String> {
    config::load(path).map(Config)
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RolloverArg {
    /// 65535 → 0 (what iPXE and UEFI expect).
    #[value(name = "0")]
    Zero,
    /// 65535 → 1.
    #[value(name = "1")]
    One,
    /// Refuse files over 65535 blocks.
    Refuse,
}

/// What every session needs, shared read-only.
struct Ctx {
    root: OwnedFd,
    engine: EngineConfig,
    map_backslash: bool,
    allow_write: bool,
    allow_overwrite: bool,
    max_request_len: usize,
}

/// Session accounting: live peers and counts per client address.
struct Table {
    peers: HashMap<SocketAddr, ()>,
    per_client: HashMap<IpAddr, usize>,
}

/// Holds a session's place in the [`Table`]; frees it on drop, however the session ends.
struct SessionGuard {
    table: Arc<Mutex<Table>>,
    peer: SocketAddr,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.peers.remove(&self.peer);
        if let Some(n) = t.per_client.get_mut(&self.peer.ip()) {
            *n -= 1;
            if *n == 0 {
                t.per_client.remove(&self.peer.ip());
            }
        }
    }
}

/// Parses the flags and merges the config file under them: a key from the file applies
/// only where the flag was not given on the command line.
pub fn settings_from_cli() -> Result<Args, Vec<String>> {
    let matches = Args::command().get_matches();
    let mut args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some(path) = args.config.clone() {
        let file = config::load(&path).map_err(|e| vec![e])?;
        let from_file = |id: &str| matches.value_source(id) != Some(ValueSource::CommandLine);
        merge(&mut args, file, &path.display().to_string(), from_file)?;
    }
    let problems = validate(&args);
    if problems.is_empty() {
        Ok(args)
    } else {
        Err(problems)
    }
}

/// The settings from a config table alone: the flags' defaults where it is silent. `origin`
/// names it in problems (a file, or a file's `[tftp]` table).
pub fn settings_from_config(config: Config, origin: &str) -> Result<Args, Vec<String>> {
    let mut args = Args::parse_from(["netboot-tftpd"]);
    merge(&mut args, config.0, origin, |_| true)?;
    let problems = validate(&args);
    if problems.is_empty() {
        Ok(args)
    } else {
        Err(problems)
    }
}

/// Copies every key the file sets into `args` where `from_file(flag id)` allows it.
fn merge(
    args: &mut Args,
    file: config::FileConfig,
    origin: &str,
    from_file: impl Fn(&str) -> bool,
) -> Result<(), Vec<String>> {
    macro_rules! merge {
        ($($field:ident),*) => {$(
            if let Some(v) = file.$field {
                if from_file(stringify!($field)) {
                    args.$field = v.into();
                }
            }
        )*};
    }
    merge!(
        root,
        listen,
        max_sessions,
        max_sessions_per_client,
        max_blksize,
        max_windowsize,
        max_window_bytes,
        max_transfer_secs,
        timeout_ms,
        retries,
        allow_write,
        allow_overwrite,
        max_upload_bytes,
        map_backslash,
        max_request_len,
        threads
    );
    if let Some(r) = file.rollover
        && from_file("rollover")
    {
        args.rollover = RolloverArg::from_str(&r, false).map_err(|_| {
            vec![format!(
                "{origin}: rollover = {r:?}: expected \"0\", \"1\" or \"refuse\""
            )]
        })?;
    }
    Ok(())
}

/// Every problem with the merged settings (the flags' own ranges do not cover file values).
fn validate(args: &Args) -> Vec<String> {
    let mut p = Vec::new();
    match &args.root {
        None => p.push("root: required (--root or `root =` in the config file)".to_string()),
        Some(root) => {
            if let Err(e) = fs::open_root(root) {
                p.push(format!("root {}: {e}", root.display()));
            }
        }
    }
    for l in &args.listen {
        if let Err(e) = parse_listen(l) {
            p.push(format!("{e:#}"));
        }
    }
    if !(wire::MIN_BLKSIZE..=wire::MAX_BLKSIZE).contains(&args.max_blksize) {
        p.push(format!(
            "max-blksize {}: must be 8..=65464",
            args.max_blksize
        ));
    }
    for (name, v) in [
        ("max-windowsize", u64::from(args.max_windowsize)),
        ("threads", u64::from(args.threads)),
        ("max-sessions", args.max_sessions as u64),
        (
            "max-sessions-per-client",
            args.max_sessions_per_client as u64,
        ),
        ("max-transfer-secs", args.max_transfer_secs),
        ("timeout-ms", args.timeout_ms),
    ] {
        if v == 0 {
            p.push(format!("{name}: must be at least 1"));
        }
    }
    if args.allow_overwrite && !args.allow_write {
        p.push("allow-overwrite needs allow-write".to_string());
    }
    p
}

fn parse_listen(s: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let ip: IpAddr = s
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .with_context(|| format!("--listen {s}: not ADDR or ADDR:PORT"))?;
    Ok(SocketAddr::new(ip, 69))
}

fn bind(addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Separate v4 and v6 listeners may share a port.
        sock.set_only_v6(true)?;
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())
        .with_context(|| format!("bind {addr}"))?;
    Ok(UdpSocket::from_std(sock.into())?)
}

/// Serves until `shutdown` completes, then stops accepting requests and gives transfers
/// already running up to `drain` to finish before returning (the rest are dropped with the
/// runtime).
pub async fn run(
    args: Args,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> anyhow::Result<()> {
    let root_dir = args.root.clone().unwrap_or_default();
    let root =
        fs::open_root(&root_dir).with_context(|| format!("--root {}", root_dir.display()))?;
    let engine = EngineConfig {
        max_blksize: args.max_blksize,
        max_windowsize: args.max_windowsize,
        max_window_bytes: args.max_window_bytes,
        default_timeout: Duration::from_millis(args.timeout_ms.max(1)),
        max_retries: args.retries,
        max_transfer_time: Duration::from_secs(args.max_transfer_secs),
        rollover: match args.rollover {
            RolloverArg::Zero => Rollover::ToZero,
            RolloverArg::One => Rollover::ToOne,
            RolloverArg::Refuse => Rollover::Refuse,
        },
        max_upload: Some(args.max_upload_bytes),
    };
    let ctx = Arc::new(Ctx {
        root,
        engine,
        map_backslash: args.map_backslash,
        allow_write: args.allow_write,
        allow_overwrite: args.allow_overwrite,
        max_request_len: args.max_request_len,
    });
    let table = Arc::new(Mutex::new(Table {
        peers: HashMap::new(),
        per_client: HashMap::new(),
    }));
    let limits = (args.max_sessions, args.max_sessions_per_client);
    let mut listeners = tokio::task::JoinSet::new();
    for s in &args.listen {
        let addr = parse_listen(s)?;
        let sock = bind(addr)?;
        tracing::info!(listen = %sock.local_addr()?, root = %root_dir.display(), write = args.allow_write, "serving");
        listeners.spawn(listen(sock, ctx.clone(), table.clone(), limits));
    }
    tokio::select! {
        _ = shutdown => {}
        Some(r) = listeners.join_next() => r??,
    }
    listeners.abort_all();
    let deadline = tokio::time::Instant::now() + drain;
    loop {
        let live = table.lock().unwrap_or_else(|e| e.into_inner()).peers.len();
        if live == 0 {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(live, "transfers still running at shutdown, dropped");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::info!("tftp stopped");
    Ok(())
}

async fn listen(
    sock: UdpSocket,
    ctx: Arc<Ctx>,
    table: Arc<Mutex<Table>>,
    (max_sessions, max_per_client): (usize, usize),
) -> anyhow::Result<()> {
    let local = sock.local_addr()?;
    let mut buf = vec![0u8; 65536];
    // Refusals are logged at most once a second with a count, so a flood cannot flood the log.
    let mut refused = 0u64;
    let mut last_refusal_log: Option<std::time::Instant> = None;
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            // ICMP errors from earlier sends surface here on some kernels; keep serving.
            Err(_) => continue,
        };
        let datagram = &buf[..n];
        match Repr::parse_with_limit(datagram, ctx.max_request_len) {
            Ok(Repr::Rrq(_) | Repr::Wrq(_)) => {}
            // Stray DATA/ACK/ERROR/OACK on the well-known port: not ours to answer.
            Ok(_) | Err(wire::Error::Truncated | wire::Error::UnknownOpcode(_)) => continue,
            Err(e) => {
                tracing::debug!(client = %peer, error = %e, "malformed request");
                let mut out = [0u8; 64];
                let len =
                    wire::emit_error(&mut out, ErrorCode::ILLEGAL_OPERATION, "Malformed request");
                let _ = sock.send_to(&out[..len], peer).await;
                continue;
            }
        }
        let busy = {
            let mut t = table.lock().unwrap_or_else(|e| e.into_inner());
            if t.peers.contains_key(&peer) {
                // A retransmitted request for a live session: its timer already resends.
                continue;
            }
            let per = t.per_client.get(&peer.ip()).copied().unwrap_or(0);
            if t.peers.len() >= max_sessions || per >= max_per_client {
                true
            } else {
                t.peers.insert(peer, ());
                *t.per_client.entry(peer.ip()).or_insert(0) += 1;
                false
            }
        };
        if busy {
            refused += 1;
            if last_refusal_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                tracing::warn!(client = %peer, refused, "session limit reached, requests refused");
                last_refusal_log = Some(std::time::Instant::now());
                refused = 0;
            }
            let mut out = [0u8; 64];
            let len = wire::emit_error(&mut out, ErrorCode::UNDEFINED, "Server busy, try later");
            let _ = sock.send_to(&out[..len], peer).await;
            continue;
        }
        let guard = SessionGuard {
            table: table.clone(),
            peer,
        };
        // The session's port is its transfer ID; bound on the listener's address so replies
        // leave from the address the client talked to.
        let session_sock = match bind(SocketAddr::new(local.ip(), 0)) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(client = %peer, error = %e, "cannot open a session socket");
                continue;
            }
        };
        tokio::spawn(session::serve(
            ctx.clone(),
            session_sock,
            peer,
            datagram.to_vec(),
            guard,
        ));
    }
}

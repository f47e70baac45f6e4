//! The TFTP server (`netboot-tftpd`, and `[tftp]` in `netbootd`): a read-mostly TFTP server
//! for network boot, built on `netboot-tftp`.
//!
//! One single-threaded event loop per CPU (`--threads`): listening sockets hand each request
//! to a session task with its own port, round robin over the loops; no thread or process per
//! transfer. While at most two transfers run, a session polls for its next ACK for up to
//! `--busy-poll-us` before it sleeps, backing off when polls miss. A window is read straight
//! into its packet slots while the client turns the last one around. Hard
//! caps bound sessions in total and per client address, the window in bytes and the time
//! per transfer, so a flood of requests costs bounded memory. Files are confined to
//! `--root` by `openat2(RESOLVE_BENEATH)`; uploads only with `--allow-write`.
//!
//! Requests on a wildcard listener are answered from the address they were sent to
//! (`IP_PKTINFO`/`IPV6_PKTINFO`), so a multi-homed server never answers from another one.
//! Requested names may be rewritten by `--remap` rules first (see [`Args`]). Under
//! `netbootd`, [`run_reloadable`] takes new settings on SIGHUP: new requests use them,
//! running transfers keep theirs, and listeners follow a changed `listen` list.

mod config;
mod fs;
mod remap;
mod session;

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, ValueEnum};
use netboot_tftp::engine::{Config as EngineConfig, Rollover};
use netboot_tftp::wire::{self, ErrorCode, Repr};
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::Reload;

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
    /// Concurrent transfers at most. A rack of 100 OVMF machines powering on together holds
    /// about 140 at its peak (each node's tsize probe overlaps its real fetch), and a refused
    /// request is a failed boot; memory stays bounded by this × --max-window-bytes (64 MiB).
    #[arg(long, default_value_t = 1024)]
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
    /// Microseconds a transfer polls for the next ACK before it sleeps in epoll; 0 turns
    /// polling off. It runs only while at most two transfers do, and backs off when polls
    /// keep missing (a slow client, a loaded host). Saving the sleep and wake-up per packet
    /// doubled lockstep throughput on an idle 2-CPU VM.
    #[arg(long, default_value_t = 100)]
    busy_poll_us: u64,
    /// File of filename remap rules, applied in order before root confinement.
    ///
    /// One rule a line (`#` comments): `exact[:FLAGS] PAT [REPL]` (the whole name),
    /// `prefix[:FLAGS] PAT [REPL]` (a leading part), `replace[:FLAGS] PAT [REPL]` (every
    /// occurrence), `backslash` (`\` → `/`). FLAGS: `i` ignores ASCII case, `s` stops after
    /// this rule when it matched. REPL omitted or `""` is empty; `\s` is a space, `\\` a
    /// backslash. A rule cannot reach outside the root: its result is checked like a
    /// requested name.
    #[arg(long, value_name = "FILE", verbatim_doc_comment)]
    remap: Option<PathBuf>,
    /// Longest request accepted in bytes (RFC 2347 says 512).
    #[arg(long, default_value_t = wire::MAX_REQUEST_LEN)]
    max_request_len: usize,
    /// Event-loop threads (fixed, never one per transfer; default one per CPU): 1 runs
    /// everything on a single thread; more spread sessions round robin over that many
    /// single-threaded loops.
    #[arg(long, default_value_t = default_threads(), value_parser = clap::value_parser!(u16).range(1..=256))]
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

/// One event loop per CPU the process may run on (at most 256).
fn default_threads() -> u16 {
    std::thread::available_parallelism()
        .map_or(1, |n| u16::try_from(n.get()).unwrap_or(256).min(256))
}

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

/// What every session needs, shared read-only. A reload builds a new one; a session keeps
/// the one it started with.
struct Ctx {
    root: OwnedFd,
    engine: EngineConfig,
    map_backslash: bool,
    remap: remap::Remap,
    allow_write: bool,
    allow_overwrite: bool,
    max_request_len: usize,
    max_sessions: usize,
    max_sessions_per_client: usize,
    busy_poll: Duration,
}

impl Ctx {
    fn new(args: &Args) -> anyhow::Result<Ctx> {
        let root_dir = args.root.clone().unwrap_or_default();
        let root =
            fs::open_root(&root_dir).with_context(|| format!("--root {}", root_dir.display()))?;
        let remap = match &args.remap {
            Some(path) => remap::Remap::load(path).map_err(|e| anyhow::anyhow!("--remap {e}"))?,
            None => remap::Remap::default(),
        };
        Ok(Ctx {
            root,
            engine: EngineConfig {
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
            },
            map_backslash: args.map_backslash,
            remap,
            allow_write: args.allow_write,
            allow_overwrite: args.allow_overwrite,
            max_request_len: args.max_request_len,
            max_sessions: args.max_sessions,
            max_sessions_per_client: args.max_sessions_per_client,
            busy_poll: Duration::from_micros(args.busy_poll_us),
        })
    }
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

impl SessionGuard {
    /// Transfers running now, this one included.
    fn live(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .peers
            .len()
    }
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
        threads,
        busy_poll_us
    );
    if let Some(r) = file.remap
        && from_file("remap")
    {
        args.remap = Some(r);
    }
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
    if let Some(path) = &args.remap
        && let Err(e) = remap::Remap::load(path)
    {
        p.push(format!("remap {e}"));
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

/// A listening socket. Its receive buffer is raised (best effort, the kernel caps it at
/// `net.core.rmem_max`) so a burst of requests, e.g. a rack powering on, waits in the queue
/// instead of being dropped.
fn bind(addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    let sock = bind_std(addr)?;
    let _ = socket2::SockRef::from(&sock).set_recv_buffer_size(LISTEN_RCVBUF);
    Ok(UdpSocket::from_std(sock)?)
}

/// Receive buffer asked for on listening sockets.
const LISTEN_RCVBUF: usize = 1 << 20;

/// A non-blocking UDP socket bound to `addr`, not yet registered with any event loop (a
/// session registers its own with the loop it runs on).
fn bind_std(addr: SocketAddr) -> anyhow::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Separate v4 and v6 listeners may share a port.
        sock.set_only_v6(true)?;
    }
    if addr.ip().is_unspecified() {
        // A wildcard listener learns each request's destination address, so the session
        // answers from it (a multi-homed server must not answer from another address).
        if addr.is_ipv6() {
            setsockopt(&sock, sockopt::Ipv6RecvPacketInfo, &true)?;
        } else {
            setsockopt(&sock, sockopt::Ipv4PacketInfo, &true)?;
        }
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())
        .with_context(|| format!("bind {addr}"))?;
    Ok(sock.into())
}

/// Event loops the sessions are spread over, round robin: the caller's own and, when it
/// runs on a single-threaded runtime and `threads` asks for more, `threads - 1` more
/// single-threaded loops on threads of their own. Each session runs wholly on one loop
/// (its socket registered there), so a lockstep transfer never hops threads, while many
/// transfers get more than one CPU. On a multi-threaded runtime (netbootd's) tokio spreads
/// the sessions itself and no loops are added.
struct Shards {
    loops: Vec<(tokio::runtime::Handle, tokio::sync::oneshot::Sender<()>)>,
    next: std::sync::atomic::AtomicUsize,
}

impl Shards {
    fn new(threads: u16) -> anyhow::Result<Shards> {
        let mut loops = Vec::new();
        let single = tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::CurrentThread;
        for i in 1..if single { threads } else { 1 } {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            loops.push((rt.handle().clone(), stop));
            std::thread::Builder::new()
                .name(format!("tftp-loop-{i}"))
                .spawn(move || {
                    let _ = rt.block_on(stopped);
                })?;
        }
        Ok(Shards {
            loops,
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    fn spawn(&self, f: impl Future<Output = ()> + Send + 'static) {
        let n =
            self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % (self.loops.len() + 1);
        match n.checked_sub(1).and_then(|i| self.loops.get(i)) {
            Some((handle, _)) => drop(handle.spawn(f)),
            None => drop(tokio::spawn(f)),
        }
    }
}

/// Serves until `shutdown` completes, then stops accepting requests and gives transfers
/// already running up to `drain` to finish before returning (the rest are dropped with the
/// runtime). The single server has no reload: this is [`run_reloadable`] with settings
/// that never change.
pub async fn run(
    args: Args,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> anyhow::Result<()> {
    run_reloadable(crate::no_reload(args), shutdown, drain).await
}

/// [`run`], taking new settings from `reload` while it runs (netbootd's SIGHUP).
///
/// Each new request is served with the latest settings (root, caps, remap rules, engine
/// limits, write access); transfers already running finish with the settings they started
/// with. When the listen addresses change, listeners for removed addresses stop and new
/// ones are bound; an address that cannot be bound is logged and skipped, the others go on.
/// New settings whose root or remap file cannot be opened are refused with a log line and
/// the previous ones stay in force.
pub async fn run_reloadable(
    mut reload: Reload<Args>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> anyhow::Result<()> {
    let args = reload.borrow_and_update().clone();
    let (ctx_tx, ctx_rx) = watch::channel(Arc::new(Ctx::new(&args)?));
    let table = Arc::new(Mutex::new(Table {
        peers: HashMap::new(),
        per_client: HashMap::new(),
    }));
    // `threads` is read once: a reload does not add or remove event loops.
    let shards = Arc::new(Shards::new(args.threads)?);
    let mut listeners = tokio::task::JoinSet::new();
    let mut bound: HashMap<SocketAddr, tokio::task::AbortHandle> = HashMap::new();
    for s in &args.listen {
        let addr = parse_listen(s)?;
        let sock = bind(addr)?;
        tracing::info!(listen = %sock.local_addr()?, root = %args.root.clone().unwrap_or_default().display(), write = args.allow_write, "serving");
        let h = listeners.spawn(listen(sock, ctx_rx.clone(), table.clone(), shards.clone()));
        bound.insert(addr, h);
    }
    tokio::pin!(shutdown);
    let mut reloads = true;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(r) = listeners.join_next() => match r {
                Ok(r) => r?,
                Err(e) if e.is_cancelled() => {}
                Err(e) => return Err(e.into()),
            },
            r = reload.changed(), if reloads => {
                if r.is_err() {
                    reloads = false;
                    continue;
                }
                let args = reload.borrow_and_update().clone();
                match Ctx::new(&args) {
                    Ok(ctx) => {
                        ctx_tx.send_replace(Arc::new(ctx));
                        tracing::info!(root = %args.root.clone().unwrap_or_default().display(), write = args.allow_write, "tftp settings reloaded");
                    }
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "tftp reload refused, previous settings stay");
                        continue;
                    }
                }
                rebind(&args, &mut bound, &mut listeners, &ctx_rx, &table, &shards).await;
            }
        }
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

/// Makes the listeners match `args.listen`: stops those no longer listed, binds new ones.
async fn rebind(
    args: &Args,
    bound: &mut HashMap<SocketAddr, tokio::task::AbortHandle>,
    listeners: &mut tokio::task::JoinSet<anyhow::Result<()>>,
    ctx: &watch::Receiver<Arc<Ctx>>,
    table: &Arc<Mutex<Table>>,
    shards: &Arc<Shards>,
) {
    let wanted: Vec<SocketAddr> = args
        .listen
        .iter()
        .filter_map(|s| parse_listen(s).ok())
        .collect();
    bound.retain(|addr, h| {
        let keep = wanted.contains(addr);
        if !keep {
            h.abort();
            tracing::info!(listen = %addr, "stopped listening");
        }
        keep
    });
    for addr in wanted {
        if bound.contains_key(&addr) {
            continue;
        }
        // A listener stopped just above holds its port until the runtime drops its task
        // (e.g. 127.0.0.1:69 replaced by 0.0.0.0:69): wait for that, briefly.
        let mut tries = 0;
        let bound_now = loop {
            match bind(addr) {
                Err(e) if tries < 50 && in_use(&e) => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                r => break r,
            }
        };
        match bound_now {
            Ok(sock) => {
                tracing::info!(listen = %addr, "serving");
                let h = listeners.spawn(listen(sock, ctx.clone(), table.clone(), shards.clone()));
                bound.insert(addr, h);
            }
            Err(e) => tracing::warn!(listen = %addr, error = %format!("{e:#}"), "cannot listen"),
        }
    }
}

fn in_use(e: &anyhow::Error) -> bool {
    e.root_cause()
        .downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::AddrInUse)
}

/// One received request: its bytes' length, who sent it, and the local address it was
/// sent to (when the listener is a wildcard and the kernel said).
struct Received {
    len: usize,
    peer: SocketAddr,
    local: Option<IpAddr>,
}

/// Receives one datagram with its destination address (`IP_PKTINFO`/`IPV6_PKTINFO`).
async fn recv_request(
    sock: &UdpSocket,
    buf: &mut [u8],
    cmsg: &mut Vec<u8>,
) -> io::Result<Received> {
    sock.async_io(Interest::READABLE, || {
        let mut iov = [IoSliceMut::new(buf)];
        let msg = recvmsg::<SockaddrStorage>(
            sock.as_raw_fd(),
            &mut iov,
            Some(cmsg.as_mut_slice()),
            MsgFlags::empty(),
        )?;
        let peer = msg
            .address
            .as_ref()
            .and_then(std_addr)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))?;
        let mut local = None;
        for c in msg.cmsgs().into_iter().flatten() {
            match c {
                ControlMessageOwned::Ipv4PacketInfo(i) => {
                    // The local address the route chose for this packet: its destination
                    // for unicast, the interface's address for a broadcast.
                    let spec = Ipv4Addr::from(u32::from_be(i.ipi_spec_dst.s_addr));
                    let dst = Ipv4Addr::from(u32::from_be(i.ipi_addr.s_addr));
                    local = Some(IpAddr::V4(if spec.is_unspecified() { dst } else { spec }));
                }
                ControlMessageOwned::Ipv6PacketInfo(i) => {
                    let dst = Ipv6Addr::from(i.ipi6_addr.s6_addr);
                    if !dst.is_multicast() {
                        local = Some(IpAddr::V6(dst));
                    }
                }
                _ => {}
            }
        }
        Ok(Received {
            len: msg.bytes,
            peer,
            local,
        })
    })
    .await
}

fn std_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::new(v4.ip(), v4.port())));
    }
    let v6 = a.as_sockaddr_in6()?;
    Some(SocketAddr::V6(SocketAddrV6::new(
        v6.ip(),
        v6.port(),
        v6.flowinfo(),
        v6.scope_id(),
    )))
}

/// The address a session socket binds to: the request's destination when the listener is
/// a wildcard (so the reply leaves from the address the client talked to), else the
/// listener's own address. A link-local IPv6 destination takes the client's scope.
fn session_addr(listener: SocketAddr, local: Option<IpAddr>, peer: SocketAddr) -> SocketAddr {
    match (listener, local) {
        (SocketAddr::V6(l), Some(IpAddr::V6(ip))) if l.ip().is_unspecified() => {
            let scope = match peer {
                SocketAddr::V6(p) if ip.is_unicast_link_local() => p.scope_id(),
                _ => 0,
            };
            SocketAddr::V6(SocketAddrV6::new(ip, 0, 0, scope))
        }
        (SocketAddr::V4(l), Some(ip @ IpAddr::V4(_))) if l.ip().is_unspecified() => {
            SocketAddr::new(ip, 0)
        }
        _ => SocketAddr::new(listener.ip(), 0),
    }
}

async fn listen(
    sock: UdpSocket,
    ctx: watch::Receiver<Arc<Ctx>>,
    table: Arc<Mutex<Table>>,
    shards: Arc<Shards>,
) -> anyhow::Result<()> {
    let local = sock.local_addr()?;
    let mut buf = vec![0u8; 65536];
    let mut cmsg = nix::cmsg_space!(nix::libc::in6_pktinfo);
    // Refusals are logged at most once a second with a count, so a flood cannot flood the log.
    let mut refused = 0u64;
    let mut last_refusal_log: Option<std::time::Instant> = None;
    loop {
        let Received {
            len: n,
            peer,
            local: dst,
        } = match recv_request(&sock, &mut buf, &mut cmsg).await {
            Ok(r) => r,
            // ICMP errors from earlier sends surface here on some kernels; keep serving.
            Err(_) => continue,
        };
        let ctx = ctx.borrow().clone();
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
            if t.peers.len() >= ctx.max_sessions || per >= ctx.max_sessions_per_client {
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
        // The session's port is its transfer ID; bound on the address the client talked to
        // so replies leave from it.
        let session_sock = match bind_std(session_addr(local, dst, peer)) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(client = %peer, error = %e, "cannot open a session socket");
                continue;
            }
        };
        shards.spawn(session::serve(
            ctx,
            session_sock,
            peer,
            datagram.to_vec(),
            guard,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_address_follows_the_request_on_wildcards_only() {
        let peer4: SocketAddr = "198.18.0.2:4000".parse().unwrap();
        let any4: SocketAddr = "0.0.0.0:69".parse().unwrap();
        let one4: SocketAddr = "198.18.0.1:69".parse().unwrap();
        let dst4 = Some("198.19.0.1".parse().unwrap());
        assert_eq!(
            session_addr(any4, dst4, peer4),
            "198.19.0.1:0".parse().unwrap()
        );
        assert_eq!(
            session_addr(any4, None, peer4),
            "0.0.0.0:0".parse().unwrap()
        );
        assert_eq!(
            session_addr(one4, dst4, peer4),
            "198.18.0.1:0".parse().unwrap()
        );
        let peer6: SocketAddr = "[fe80::2%7]:4000".parse().unwrap();
        let any6: SocketAddr = "[::]:69".parse().unwrap();
        assert_eq!(
            session_addr(any6, Some("fe80::1".parse().unwrap()), peer6),
            "[fe80::1%7]:0".parse().unwrap()
        );
        assert_eq!(
            session_addr(any6, Some("2001:db8::1".parse().unwrap()), peer6),
            "[2001:db8::1]:0".parse().unwrap()
        );
    }
}

//! The NBD server (`netboot-nbdd`, and `[nbd]` in `netbootd`): a thin tokio driver around
//! the `netboot-nbd` engine.
//!
//! Listens on TCP (default `[::]:10809`, IPv4 and IPv6), on a Unix socket, on sockets passed by
//! systemd-style socket activation (`LISTEN_FDS`/`LISTEN_PID`), or serves one client on
//! stdin/stdout (`--stdio`, inetd style; also how libnbd's `connect_command` and fuzzers run it).
//!
//! Replies: sockets get header and data in one `sendmsg`, many replies per call; large reads
//! go out with `sendfile` (the header first, marked MSG_MORE) from the page cache of a file
//! export or from the sealed memfd of a RAM export ([`ram`]), whose small reads are sent
//! straight from its mapping. TLS (STARTTLS, rustls) is optional or required, with client
//! certificates if a CA is given; TLS and stdio streams get buffered vectored writes.
//! [`run_reloadable`] takes new settings while serving (netbootd's SIGHUP).

mod conn;
mod export;
mod ram;

use anyhow::{Context, bail};
use clap::Parser;
use conn::Shared;
use netboot_nbd::engine::{Config as EngineConfig, Limits, Tls};
use serde::Deserialize;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};

/// NBD server: read-only boot images from files or RAM, copy-on-write overlays, RAM disks.
///
/// The settings, as flags or as a TOML table (`[nbd]` in `netbootd`'s file: the flags'
/// names in kebab-case, `export` and `ramdisk` as lists of the same specs; unknown keys are
/// errors, missing ones take the flags' defaults).
#[derive(Debug, Parser, Deserialize)]
#[command(name = "netboot-nbdd", version)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Config {
    /// TCP address to listen on (repeatable). Default `[::]:10809` (IPv4 too) unless another
    /// listener is given.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Vec<SocketAddr>,
    /// Unix socket to listen on.
    #[arg(long, value_name = "PATH")]
    pub unix: Option<PathBuf>,
    /// Serve one client on stdin/stdout, then exit.
    #[arg(long)]
    #[serde(skip)]
    pub stdio: bool,
    /// An export: `NAME=PATH[,ram][,cow][,rw][,desc=TEXT]`. Default read-only from the file;
    /// `ram` loads it once and all clients share those bytes; `cow` gives each connection a
    /// private RAM overlay; `rw` writes through to the file. The first export is the default.
    #[arg(long, value_name = "SPEC")]
    pub export: Vec<String>,
    /// An empty writable RAM disk shared by all clients: `NAME=SIZE` (e.g. `scratch=1G`).
    #[arg(long, value_name = "NAME=SIZE")]
    pub ramdisk: Vec<String>,
    /// Seconds a client may take to finish the handshake.
    #[arg(long, default_value_t = 10)]
    pub handshake_timeout: u64,
    /// Close a connection after this many seconds without a request (while no reply is
    /// pending); 0 = never. Off by default: an idle diskless node's root must stay mounted.
    #[arg(long, default_value_t = 0)]
    pub idle_timeout: u64,
    /// RAM each connection's copy-on-write overlay may hold (e.g. `512M`); a write needing
    /// more fails with ENOSPC, the connection stays up.
    #[arg(long, default_value = "1G", value_name = "SIZE")]
    pub cow_max: String,
    /// Options per connection before disconnecting.
    #[arg(long, default_value_t = 64)]
    pub max_options: u32,
    /// Largest option data accepted, bytes.
    #[arg(long, default_value_t = 65536)]
    pub max_option_len: u32,
    /// Largest READ/WRITE payload, bytes (advertised as the maximum block size).
    #[arg(long, default_value_t = 32 << 20)]
    pub max_payload: u32,
    /// Requests served per batch before their replies are sent (per connection).
    #[arg(long, default_value_t = 64)]
    pub max_in_flight: usize,
    /// Simultaneous connections; more are closed at once.
    #[arg(long, default_value_t = 4096)]
    pub max_connections: usize,
    /// Refuse NBD_OPT_LIST (export names stay private).
    #[arg(long)]
    pub no_list: bool,
    /// TLS through STARTTLS: `off`, `optional` (plaintext clients still served) or `required`
    /// (before STARTTLS, options get ERR_TLS_REQD). Default: `optional` when a certificate
    /// is given, else `off`.
    #[arg(long, value_enum, value_name = "MODE")]
    pub tls: Option<TlsMode>,
    /// The server's certificate chain (PEM) for TLS.
    #[arg(long, value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `tls-cert`.
    #[arg(long, value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM): TLS clients must present a certificate signed by one of them.
    /// (Plaintext clients are still served under `optional`: use `required` to enforce.)
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
    /// Worker threads (default: one per CPU).
    #[arg(long)]
    pub threads: Option<usize>,
    /// TCP congestion control of client connections: a name the kernel offers (`cubic`,
    /// `reno`, `bbr`...; an unavailable or unpermitted one is an error at start) or `system`
    /// for the system's default. Default: `cubic` where the kernel lets this process choose
    /// it, else the system's. NBD to boot nodes is bulk data on a local segment, where BBR's
    /// per-packet pacing costs CPU and buys nothing: on the project's 2-CPU test machine,
    /// whose default is BBR, cubic connections carried 1.25-1.34x the bytes per second.
    #[arg(long, value_name = "NAME")]
    pub tcp_congestion: Option<String>,
}

/// `--tls`: whether STARTTLS is offered, and whether it is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// No TLS (STARTTLS gets ERR_POLICY).
    Off,
    /// TLS for clients that ask; plaintext for the others.
    Optional,
    /// TLS for everyone.
    Required,
}

/// The TLS policy and acceptor `args` ask for (certificates read and checked now).
fn tls_setup(args: &Config) -> anyhow::Result<(Tls, Option<tokio_rustls::TlsAcceptor>)> {
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    use tokio_rustls::rustls::{self, RootCertStore, ServerConfig, server::WebPkiClientVerifier};
    let mode = args.tls.unwrap_or(if args.tls_cert.is_some() {
        TlsMode::Optional
    } else {
        TlsMode::Off
    });
    let tls = match mode {
        TlsMode::Off => return Ok((Tls::Off, None)),
        TlsMode::Optional => Tls::Optional,
        TlsMode::Required => Tls::Required,
    };
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        bail!("TLS needs both tls-cert and tls-key");
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading certificates from {}", cert.display()))?;
    if certs.is_empty() {
        bail!("no certificate in {}", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading the private key from {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &args.tls_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("reading CA certificates from {}", ca.display()))?
            {
                roots.add(c?)?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .context("certificate and key do not match")?;
    Ok((tls, Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))))
}

impl Default for Config {
    /// The flags' defaults.
    fn default() -> Self {
        Config::parse_from(["netboot-nbdd"])
    }
}

/// Every problem with the exports (each spec parsed, the files opened) without serving.
pub fn check(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    for spec in &config.export {
        if let Err(e) = export::parse_export(spec) {
            problems.push(format!("export {spec:?}: {e:#}"));
        }
    }
    for spec in &config.ramdisk {
        if let Err(e) = export::parse_ramdisk(spec) {
            problems.push(format!("ramdisk {spec:?}: {e:#}"));
        }
    }
    if let Err(e) = tls_setup(config) {
        problems.push(format!("tls: {e:#}"));
    }
    if let Err(e) = export::parse_size(&config.cow_max) {
        problems.push(format!("cow-max: {e:#}"));
    }
    if config.export.is_empty() && config.ramdisk.is_empty() {
        problems.push("no exports: give export NAME=PATH or ramdisk NAME=SIZE".into());
    }
    problems
}

/// Raises the soft open-files limit to the hard one: each client is a descriptor.
fn raise_nofile() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    if l.current < l.maximum {
        l.current = l.maximum;
        let _ = setrlimit(Resource::Nofile, l);
    }
}

/// One export as built from its spec, with what a reload compares to reuse it.
struct Built {
    /// `export:SPEC` or `ramdisk:SPEC`.
    key: String,
    /// The file behind it when it was loaded (None for RAM disks).
    file: Option<export::FileId>,
    served: export::ServedExport,
}

/// Builds the export table and connection settings from `args`. Exports of `old` whose spec
/// is unchanged and whose file is the same (device, inode, size, mtime) are reused: a RAM
/// image is not loaded again and a RAM disk keeps its contents.
fn build(args: &Config, old: Option<&Shared>) -> anyhow::Result<(Shared, Vec<Built>)> {
    let specs = args
        .export
        .iter()
        .map(|s| format!("export:{s}"))
        .chain(args.ramdisk.iter().map(|s| format!("ramdisk:{s}")));
    let mut built = Vec::new();
    for key in specs {
        let file = key.strip_prefix("export:").and_then(export::file_id);
        let reuse = old.and_then(|o| {
            o.sources
                .iter()
                .position(|(k, f)| *k == key && *f == file)
                .map(|i| o.exports[i].clone())
        });
        let served = match (reuse, key.split_once(':')) {
            (Some(e), _) => e,
            (None, Some(("export", spec))) => export::parse_export(spec)?,
            (None, Some((_, spec))) => export::parse_ramdisk(spec)?,
            (None, None) => unreachable!("every key has a prefix"),
        };
        built.push(Built { key, file, served });
    }
    if built.is_empty() {
        bail!("no exports: give --export NAME=PATH or --ramdisk NAME=SIZE");
    }
    let exports: Vec<_> = built.iter().map(|b| b.served.clone()).collect();
    let (tls, acceptor) = tls_setup(args)?;
    let config = EngineConfig {
        tls,
        exports: exports.iter().map(|e| e.export.clone()).collect(),
        limits: Limits {
            max_options: args.max_options,
            max_option_len: args.max_option_len,
            max_payload: args.max_payload,
            max_discard: u64::from(args.max_payload) * 2,
        },
        hide_list: args.no_list,
    };
    let shared = Shared {
        config,
        exports,
        sources: built.iter().map(|b| (b.key.clone(), b.file)).collect(),
        handshake_timeout: Duration::from_secs(args.handshake_timeout),
        idle_timeout: (args.idle_timeout > 0).then(|| Duration::from_secs(args.idle_timeout)),
        max_in_flight: args.max_in_flight.max(1),
        cow_max: export::parse_size(&args.cow_max).context("--cow-max")?,
        tls: acceptor,
    };
    Ok((shared, built))
}

fn log_exports(sh: &Shared) {
    for e in &sh.exports {
        tracing::info!(export = %e.export.name, size = e.export.size, read_only = e.export.read_only,
            cow = e.cow, backing = e.backing.kind(), "export");
    }
}

/// Serves until `shutdown` completes, then stops accepting and gives open connections up to
/// `drain` to close before returning: a client that powered off never closes its connection,
/// so the wait is bounded and what is left is dropped with the runtime.
pub async fn run(
    args: Config,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> anyhow::Result<()> {
    run_reloadable(crate::no_reload(args), shutdown, drain).await
}

/// [`run`], taking new settings from `reload` (netbootd's SIGHUP). A new export table applies
/// to connections accepted after it: exports may be added, removed or changed, and an export
/// whose spec and file are unchanged is reused (a RAM image is not loaded again, a RAM disk
/// keeps its contents). Open connections keep the exports and settings they started with and
/// are never dropped by a reload. Listeners are not rebound: a changed `listen`/`unix` (or
/// `max-connections`) is reported with a warning and takes effect at the next restart. A new
/// config that fails to load (missing file...) is reported and the current one stays.
pub async fn run_reloadable(
    mut reload: crate::Reload<Config>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> anyhow::Result<()> {
    let args = reload.borrow_and_update().clone();
    let shared = Arc::new(build(&args, None)?.0);
    log_exports(&shared);

    if args.stdio {
        // tokio::fs::File does its blocking I/O on the blocking pool, which suits a pipe or
        // a socketpair alike; the descriptors are duplicated, so no unsafe adoption.
        use std::os::fd::AsFd;
        let input = std::io::stdin().as_fd().try_clone_to_owned()?;
        let output = std::io::stdout().as_fd().try_clone_to_owned()?;
        let r = tokio::fs::File::from_std(input.into());
        let w = tokio::fs::File::from_std(output.into());
        let t = conn::Transport::Other(Box::new(tokio::io::join(r, w)));
        conn::serve(t, "stdio".into(), shared).await;
        return Ok(());
    }
    raise_nofile();

    let limit = Arc::new(Semaphore::new(args.max_connections));
    let mut tasks = tokio::task::JoinSet::new();
    // Accept loops read the current settings for each new connection.
    let (current, shared) = watch::channel(shared);
    tasks.spawn(reloader(reload, current, args.clone()));
    let mut listeners = 0;

    let mut fds = listenfd::ListenFd::from_env();
    for i in 0..fds.len() {
        if let Ok(Some(l)) = fds.take_unix_listener(i) {
            l.set_nonblocking(true)?;
            let l = tokio::net::UnixListener::from_std(l)?;
            tracing::info!(fd = 3 + i, "listening on an activated unix socket");
            tasks.spawn(accept_unix(l, shared.clone(), limit.clone()));
            listeners += 1;
        } else if let Ok(Some(l)) = fds.take_tcp_listener(i) {
            l.set_nonblocking(true)?;
            set_congestion(&l, args.tcp_congestion.as_deref())?;
            let l = tokio::net::TcpListener::from_std(l)?;
            tracing::info!(addr = %l.local_addr()?, "listening on an activated TCP socket");
            tasks.spawn(accept_tcp(l, shared.clone(), limit.clone()));
            listeners += 1;
        }
    }
    if let Some(path) = &args.unix {
        // A stale socket from an earlier run would make bind fail.
        if std::fs::symlink_metadata(path)
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
        {
            let _ = std::fs::remove_file(path);
        }
        let l = tokio::net::UnixListener::bind(path)
            .with_context(|| format!("binding {}", path.display()))?;
        tracing::info!(path = %path.display(), "listening");
        tasks.spawn(accept_unix(l, shared.clone(), limit.clone()));
        listeners += 1;
    }
    let mut addrs = args.listen.clone();
    if addrs.is_empty() && listeners == 0 {
        addrs.push(SocketAddr::from(([0u16; 8], 10809)));
    }
    for addr in addrs {
        let l = tcp_listener(addr, args.tcp_congestion.as_deref())
            .with_context(|| format!("listening on {addr}"))?;
        tracing::info!(addr = %l.local_addr()?, "listening");
        tasks.spawn(accept_tcp(l, shared.clone(), limit.clone()));
    }

    tokio::select! {
        _ = shutdown => {}
        r = tasks.join_next() => {
            if let Some(Ok(Err(e))) = r {
                return Err(e);
            }
        }
    }
    tasks.abort_all();
    let deadline = tokio::time::Instant::now() + drain;
    loop {
        let open = args.max_connections - limit.available_permits();
        if open == 0 {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(open, "connections still open at shutdown, dropped");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tracing::info!("nbd stopped");
    Ok(())
}

/// Applies each new config from `reload` to `current` (see [`run_reloadable`]).
async fn reloader(
    mut reload: crate::Reload<Config>,
    current: watch::Sender<Arc<Shared>>,
    mut applied: Arc<Config>,
) -> anyhow::Result<()> {
    loop {
        if reload.changed().await.is_err() {
            // No more reloads; keep serving.
            std::future::pending::<()>().await;
        }
        let new = reload.borrow_and_update().clone();
        if new.listen != applied.listen || new.unix != applied.unix {
            tracing::warn!("nbd listen addresses changed: they apply at the next restart");
        }
        if new.max_connections != applied.max_connections {
            tracing::warn!("nbd max-connections changed: it applies at the next restart");
        }
        if new.tcp_congestion != applied.tcp_congestion {
            tracing::warn!("nbd tcp-congestion changed: it applies at the next restart");
        }
        let old = current.borrow().clone();
        let cfg = new.clone();
        // Loading a RAM image can take seconds: not on a runtime thread.
        match tokio::task::spawn_blocking(move || build(&cfg, Some(&old))).await {
            Ok(Ok((sh, built))) => {
                let reused = built.iter().filter(|b| old_has(&current, b)).count();
                tracing::info!(
                    exports = built.len(),
                    reused,
                    "nbd reloaded: new connections see the new exports"
                );
                log_exports(&sh);
                current.send_replace(Arc::new(sh));
                applied = new;
            }
            Ok(Err(e)) => tracing::warn!("nbd reload failed, keeping the current exports: {e:#}"),
            Err(e) => tracing::warn!("nbd reload failed, keeping the current exports: {e}"),
        }
    }
}

/// Whether `b` was carried over from the table in `current`.
fn old_has(current: &watch::Sender<Arc<Shared>>, b: &Built) -> bool {
    current
        .borrow()
        .sources
        .iter()
        .any(|(k, f)| *k == b.key && *f == b.file)
}

/// The congestion control used when `tcp-congestion` is not given.
const DEFAULT_CONGESTION: &str = "cubic";

/// Sets the congestion control that connections accepted on listener `l` inherit:
/// `name` (an error if the kernel refuses it), nothing for `system`, and for None the
/// default where allowed.
fn set_congestion(l: impl std::os::fd::AsFd, name: Option<&str>) -> anyhow::Result<()> {
    use rustix::net::sockopt::set_tcp_congestion;
    match name {
        Some("system") => Ok(()),
        Some(n) => set_tcp_congestion(l, n).with_context(|| {
            format!(
                "tcp-congestion {n:?}: the kernel refused it (is it in \
                 /proc/sys/net/ipv4/tcp_allowed_congestion_control, or is this process \
                 privileged?)"
            )
        }),
        None => {
            if let Err(e) = set_tcp_congestion(l, DEFAULT_CONGESTION) {
                tracing::debug!("{DEFAULT_CONGESTION} not available ({e}): the system's default");
            }
            Ok(())
        }
    }
}

/// A TCP listener; the IPv6 wildcard also accepts IPv4 (dual stack).
fn tcp_listener(
    addr: SocketAddr,
    congestion: Option<&str>,
) -> anyhow::Result<tokio::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(false)?;
    }
    set_congestion(&s, congestion)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(tokio::net::TcpListener::from_std(s.into())?)
}

async fn accept_tcp(
    l: tokio::net::TcpListener,
    shared: watch::Receiver<Arc<Shared>>,
    limit: Arc<Semaphore>,
) -> anyhow::Result<()> {
    loop {
        let (s, peer) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!(client = %peer, "connection limit reached, closing");
            continue;
        };
        // Replies are small and latency-bound; never let Nagle hold them back.
        let _ = s.set_nodelay(true);
        let sh = shared.borrow().clone();
        tokio::spawn(async move {
            conn::serve(conn::Transport::Tcp(s), peer.to_string(), sh).await;
            drop(permit);
        });
    }
}

/// Send buffer asked for each Unix-socket connection (the kernel doubles it). A Unix stream
/// has no receive buffer: what the client has not read yet counts against the server's send
/// buffer, whose default (208 KiB) holds less than one 256 KiB READ reply, so the server
/// stopped and waited for the client inside every reply, and both CPUs sat partly idle.
/// Large replies are `sendfile`d pages of the image, so a full buffer holds little memory of
/// its own. Measured here (nbdcopy, 1 GiB RAM export), throughput over the default's: 1 MiB
/// asked, 1.32x for one client and 1.35x for 32 at once; 4 MiB, 1.38x and 1.45x.
const UNIX_SNDBUF: usize = 4 << 20;

/// Gives `s` [`UNIX_SNDBUF`]: forced past `net.core.wmem_max` when privileged, else up to it.
fn widen_send_buffer(s: &tokio::net::UnixStream) {
    use rustix::net::sockopt::{set_socket_send_buffer_size, set_socket_send_buffer_size_force};
    if set_socket_send_buffer_size_force(s, UNIX_SNDBUF).is_err() {
        let _ = set_socket_send_buffer_size(s, UNIX_SNDBUF);
    }
}

async fn accept_unix(
    l: tokio::net::UnixListener,
    shared: watch::Receiver<Arc<Shared>>,
    limit: Arc<Semaphore>,
) -> anyhow::Result<()> {
    loop {
        let (s, _) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!("connection limit reached, closing");
            continue;
        };
        widen_send_buffer(&s);
        let sh = shared.borrow().clone();
        tokio::spawn(async move {
            conn::serve(conn::Transport::Unix(s), "unix".into(), sh).await;
            drop(permit);
        });
    }
}

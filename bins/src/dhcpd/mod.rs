//! The DHCP/PXE server (`netboot-dhcpd`, and `[dhcp]` in `netbootd`): a thin driver around
//! `netboot_dhcp::server::Server`: sockets, the clock, the lease journal and the log.
//!
//! One UDP socket per interface, bound to 0.0.0.0:67 with `SO_BINDTODEVICE` and
//! `SO_BROADCAST`, so it sees broadcasts from clients without an address and its broadcasts
//! leave by the right interface (plus one on 4011 per interface in proxy mode). Each socket's
//! thread takes a batch of datagrams (one blocking receive, then whatever is already queued)
//! and runs them through the engine. Replies that change no lease (OFFERs, NAKs, INFORM
//! answers) go out at once; lease changes and their ACKs go to the committer thread, which
//! writes everything queued with one `fdatasync` and only then sends those ACKs: no ACK leaves
//! before its lease is durable, one sync covers every ACK waiting for it, and receiving never
//! stops while the disk is busy.
//!
//! The server is blocking (plain threads): [`run`] returns once `shutdown` is set, after the
//! committer has written and answered everything queued.

mod config;
mod journal;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use netboot_dhcp::lease::{Lease, LeaseStore};
use netboot_dhcp::server::{
    CLIENT_PORT, Destination, Incoming, LeaseEvent, Output, PXE_PORT, Server,
};
use socket2::{Domain, Protocol, Socket, Type};

pub use config::{Config, Loaded, Problem, check, load};
use journal::Journal;

/// Datagrams taken per batch at most.
const BATCH: usize = 64;

/// A reply that must wait for its lease to be durable, with what to log once it is.
struct Waiting {
    bytes: Vec<u8>,
    to: SocketAddrV4,
    socket: Arc<UdpSocket>,
    interface: Arc<str>,
    event: LeaseEvent,
    lease: Lease,
    file: Option<String>,
}

/// What the listeners hand the committer: lease changes in order, an optional snapshot that
/// replaces the journal (compaction; it already contains every earlier change), and the
/// replies to release once all of it is on disk.
#[derive(Default)]
struct Queue {
    snapshot: Option<Vec<Lease>>,
    leases: Vec<Lease>,
    waiting: Vec<Waiting>,
}

struct Shared {
    server: Mutex<Server>,
    queue: Mutex<Queue>,
    ready: Condvar,
    durable: bool,
    shutdown: Arc<AtomicBool>,
    /// Set once every listener has stopped: from then on the queue only shrinks.
    listeners_done: AtomicBool,
}

struct Listener {
    socket: Arc<UdpSocket>,
    interface: Arc<str>,
    local: Ipv4Addr,
    port: u16,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Every interface with an IPv4 address, from /sys/class/net, except loopback.
fn all_interfaces() -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .context("listing /sys/class/net")?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n != "lo")
        .collect();
    names.sort();
    Ok(names)
}

/// The interface's primary IPv4 address: connecting a device-bound UDP socket to the
/// limited broadcast address makes the kernel pick it as the source (no packet is sent).
fn interface_address(name: &str) -> Option<Ipv4Addr> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).ok()?;
    s.set_broadcast(true).ok()?;
    s.bind_device(Some(name.as_bytes())).ok()?;
    s.connect(&SocketAddr::from((Ipv4Addr::BROADCAST, 67)).into())
        .ok()?;
    let local = s.local_addr().ok()?.as_socket_ipv4()?;
    (!local.ip().is_unspecified()).then(|| *local.ip())
}

fn bind(interface: &str, port: u16) -> anyhow::Result<UdpSocket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_address(true)?;
    s.set_broadcast(true)?;
    s.bind_device(Some(interface.as_bytes()))
        .with_context(|| format!("SO_BINDTODEVICE {interface}"))?;
    // Room for a burst of clients while the journal syncs.
    let _ = s.set_recv_buffer_size(4 << 20);
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())
        .with_context(|| format!("binding 0.0.0.0:{port} on {interface}"))?;
    let socket: UdpSocket = s.into();
    socket.set_read_timeout(Some(Duration::from_secs(1)))?;
    Ok(socket)
}

/// Serves until `shutdown` is set (checked at least once a second), then returns once every
/// lease change already received is on disk and its reply sent. Blocking: call it on a thread
/// of its own.
pub fn run(loaded: Loaded, shutdown: Arc<AtomicBool>) -> anyhow::Result<()> {
    let cfg = loaded.server;
    let mut server = Server::new(loaded.engine);
    let journal = match &cfg.lease_file {
        Some(path) => {
            let (j, leases) = Journal::open(path, cfg.durability)
                .with_context(|| format!("opening lease journal {}", path.display()))?;
            for l in &leases {
                server.restore(l);
            }
            tracing::info!(path = %path.display(), records = leases.len(), "leases restored");
            Some(j)
        }
        None => {
            tracing::warn!("no lease_file: leases live in memory only");
            None
        }
    };
    let names = if cfg.interfaces.is_empty() {
        all_interfaces()?
    } else {
        cfg.interfaces.clone()
    };
    let mut listeners = Vec::new();
    for name in names {
        let Some(local) = interface_address(&name) else {
            if !cfg.interfaces.is_empty() {
                bail!("interface {name} has no IPv4 address");
            }
            continue;
        };
        let mut ports = vec![cfg.port];
        if cfg.proxy {
            ports.push(PXE_PORT);
        }
        for port in ports {
            let socket = bind(&name, port)?;
            tracing::info!(interface = %name, %local, port, "listening");
            listeners.push(Listener {
                socket: Arc::new(socket),
                interface: Arc::from(name.as_str()),
                local,
                port,
            });
        }
    }
    if listeners.is_empty() {
        bail!("no interface with an IPv4 address to serve");
    }
    let shared = Arc::new(Shared {
        server: Mutex::new(server),
        queue: Mutex::new(Queue::default()),
        ready: Condvar::new(),
        durable: journal.is_some(),
        shutdown,
        listeners_done: AtomicBool::new(false),
    });
    let committer = journal.map(|j| {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || commit_loop(j, &shared))
    });
    let threads: Vec<std::thread::JoinHandle<anyhow::Result<()>>> = listeners
        .into_iter()
        .map(|l| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || serve(&l, &shared))
        })
        .collect();
    // Listeners first: once they have stopped, nothing more is queued, and the committer
    // drains what is left.
    let mut result = Ok(());
    for t in threads {
        match t.join() {
            Ok(r) => result = result.and(r),
            Err(_) => result = result.and(Err(anyhow::anyhow!("a server thread panicked"))),
        }
    }
    {
        // Under the queue lock, so the committer cannot miss it between check and wait.
        let _q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        shared.listeners_done.store(true, Ordering::SeqCst);
    }
    shared.ready.notify_all();
    if let Some(c) = committer {
        match c.join() {
            Ok(r) => result = result.and(r),
            Err(_) => result = result.and(Err(anyhow::anyhow!("the committer panicked"))),
        }
        tracing::info!("lease journal flushed");
    }
    result
}

/// The group commit: takes everything queued since the last round, writes it with one
/// fdatasync, then logs and sends the replies that waited for it. Listeners keep receiving
/// and answering DISCOVERs meanwhile, so a slow disk delays ACKs but does not stop the server.
fn commit_loop(mut journal: Journal, shared: &Shared) -> anyhow::Result<()> {
    loop {
        let batch = {
            let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            while q.leases.is_empty() && q.snapshot.is_none() && q.waiting.is_empty() {
                // Set only after every listener has stopped: the queue is final.
                if shared.listeners_done.load(Ordering::SeqCst) {
                    return Ok(());
                }
                q = shared.ready.wait(q).unwrap_or_else(|p| p.into_inner());
            }
            std::mem::take(&mut *q)
        };
        if let Some(snapshot) = batch.snapshot {
            journal.compact(snapshot.iter());
        }
        for l in &batch.leases {
            journal.append(l).context("journal append")?;
        }
        if let Err(e) = journal.commit() {
            // Not durable: drop the replies; the clients retransmit.
            tracing::error!(error = %e, "lease journal commit failed; replies withheld");
            continue;
        }
        // Logged after the commit: a "lease bound" line means the lease is on disk.
        for w in batch.waiting {
            log_lease(&w.interface, w.event, &w.lease, w.file.as_deref());
            if let Err(e) = w.socket.send_to(&w.bytes, w.to) {
                tracing::warn!(to = %w.to, error = %e, "send failed");
            }
        }
    }
}

fn serve(l: &Listener, shared: &Shared) -> anyhow::Result<()> {
    let mut bufs = vec![[0u8; 1500]; BATCH];
    let mut batch: Vec<(usize, SocketAddrV4)> = Vec::with_capacity(BATCH);
    let mut now_replies: Vec<(Vec<u8>, SocketAddrV4)> = Vec::with_capacity(BATCH);
    let mut waiting: Vec<Waiting> = Vec::with_capacity(BATCH);
    let mut leases: Vec<Lease> = Vec::with_capacity(BATCH);
    // Changes since the last compaction, and the live lease count it left.
    let (mut changes, mut live_after) = (0usize, 0usize);
    while !shared.shutdown.load(Ordering::SeqCst) {
        batch.clear();
        match l.socket.recv_from(&mut bufs[0]) {
            Ok((n, SocketAddr::V4(src))) => batch.push((n, src)),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e).context("receive"),
        }
        while batch.len() < BATCH {
            let buf = &mut bufs[batch.len()][..];
            match rustix::net::recvfrom(&*l.socket, buf, rustix::net::RecvFlags::DONTWAIT) {
                Ok((n, _, Some(addr))) => match SocketAddrV4::try_from(addr) {
                    Ok(src) => batch.push((n, src)),
                    Err(_) => continue,
                },
                _ => break,
            }
        }
        let now = unix_now();
        let mut snapshot = None;
        {
            let mut server = shared.server.lock().unwrap_or_else(|p| p.into_inner());
            for (i, &(n, src)) in batch.iter().enumerate() {
                let out = server.handle(
                    now,
                    &Incoming {
                        data: &bufs[i][..n],
                        src,
                        local_addr: l.local,
                        local_port: l.port,
                    },
                );
                log_reply(l, src, &out);
                let file = out.detail.and_then(|(_, f)| f);
                match (out.lease, out.reply) {
                    (Some((event, lease)), reply) if shared.durable => {
                        leases.push(lease.clone());
                        changes += 1;
                        // A RELEASE or DECLINE has no reply but still waits to be logged.
                        let (bytes, to) = reply
                            .map(|(b, d, _)| (b, target(d)))
                            .unwrap_or((Vec::new(), SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)));
                        waiting.push(Waiting {
                            bytes,
                            to,
                            socket: Arc::clone(&l.socket),
                            interface: Arc::clone(&l.interface),
                            event,
                            lease,
                            file,
                        });
                    }
                    (lease, reply) => {
                        if let Some((event, lease)) = lease {
                            log_lease(&l.interface, event, &lease, file.as_deref());
                        }
                        if let Some((b, d, _)) = reply {
                            now_replies.push((b, target(d)));
                        }
                    }
                }
            }
            // Compact now and then: the snapshot is taken under the same lock as the
            // changes, so it contains every change queued before it.
            if changes >= 50_000.max(2 * live_after) {
                let live: Vec<Lease> = server.leases().collect();
                (changes, live_after) = (0, live.len());
                snapshot = Some(live);
            }
        }
        if !leases.is_empty() || snapshot.is_some() || !waiting.is_empty() {
            let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(s) = snapshot {
                // Everything queued so far is inside the snapshot.
                q.leases.clear();
                q.snapshot = Some(s);
            }
            q.leases.append(&mut leases);
            q.waiting.append(&mut waiting);
            drop(q);
            shared.ready.notify_one();
        }
        for (bytes, to) in now_replies.drain(..) {
            if let Err(e) = l.socket.send_to(&bytes, to) {
                tracing::warn!(%to, error = %e, "send failed");
            }
        }
    }
    Ok(())
}

/// Where a reply goes. A client without an address that did not ask for a broadcast should
/// get a unicast to its new address, which needs its MAC in our ARP table; RFC 2131 §4.1
/// allows a broadcast instead, which every client receives, so that is what is sent.
fn target(dest: Destination) -> SocketAddrV4 {
    match dest {
        Destination::Unicast(a) => a,
        Destination::Broadcast | Destination::Hardware { .. } => {
            SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT)
        }
    }
}

fn log_reply(l: &Listener, src: SocketAddrV4, out: &Output) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    match (&out.reply, out.dropped) {
        (Some((_, dest, mt)), _) => {
            let (ip, file) = out.detail.clone().unwrap_or((Ipv4Addr::UNSPECIFIED, None));
            tracing::debug!(interface = %l.interface, %src, ?mt, %ip, file = file.as_deref().unwrap_or(""), ?dest, "reply");
        }
        (None, Some(why)) => tracing::debug!(interface = %l.interface, %src, why, "no reply"),
        (None, None) => {}
    }
}

fn log_lease(interface: &str, event: LeaseEvent, lease: &Lease, file: Option<&str>) {
    let what = match event {
        LeaseEvent::Bound => "bound",
        LeaseEvent::Renewed => "renewed",
        LeaseEvent::Released => "released",
        LeaseEvent::Declined => "declined",
    };
    tracing::info!(
        interface,
        ip = %lease.ip,
        client = %lease.client,
        file = file.unwrap_or(""),
        "lease {what}"
    );
}

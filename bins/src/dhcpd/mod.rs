//! The DHCP/PXE server (`netboot-dhcpd`, and `[dhcp]` in `netbootd`): a thin driver around
//! `netboot_dhcp::server::Server`: sockets, the clock, the lease journal and the log.
//!
//! One UDP socket on 0.0.0.0:67 (plus 4011 in proxy mode) with `SO_BROADCAST` and
//! `IP_PKTINFO` ([`sock`]): each datagram comes with its arrival interface and our address
//! there, which is the reply's source, option 54 and the subnet of an unrelayed client; the
//! configured interface list is a filter on the arrival interface. Replies leave by the
//! arrival interface; a client that has no address and did not ask for a broadcast gets a
//! unicast to its new address after its MAC is put in the kernel's neighbour table
//! ([`neigh`]), or a broadcast if that fails.
//!
//! A listener thread takes a batch of datagrams (one blocking receive, then whatever is
//! already queued) and runs them through the engine. Replies that change no lease (OFFERs,
//! NAKs, INFORM answers) go out at once; lease changes and their ACKs go to the committer
//! thread, which writes everything queued with one `fdatasync` and only then sends those
//! ACKs: no ACK leaves before its lease is durable, one sync covers every ACK waiting for it,
//! and receiving never stops while the disk is busy.
//!
//! The server is blocking (plain threads): [`run_reloadable`] returns once `shutdown` is set,
//! after the committer has written and answered everything queued. New settings sent through
//! its [`Reload`] replace pools, hosts and boot policy for the next exchanges; granted leases
//! stay (same engine table, same journal). The interface list, port, lease file and
//! durability are fixed at start: a reload that changes them logs a warning and keeps the
//! running ones (restart to change them).

mod config;
mod journal;
mod neigh;
mod sock;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use netboot_dhcp::lease::{Lease, LeaseStore};
use netboot_dhcp::server::{
    CLIENT_PORT, Destination, Incoming, LeaseEvent, Output, PXE_PORT, Server,
};
use socket2::{Domain, Protocol, Socket, Type};

use crate::Reload;
pub use config::{Config, Loaded, Problem, check, load};
use journal::Journal;
use neigh::Neighbours;
use sock::{PortSocket, Received};

/// Datagrams taken per batch at most.
const BATCH: usize = 64;

/// A reply and the way out: the socket it came in on, the arrival interface and our address
/// there.
struct Reply {
    bytes: Vec<u8>,
    dest: Destination,
    socket: Arc<PortSocket>,
    ifindex: u32,
    local: Ipv4Addr,
}

/// A lease change waiting to be durable, with its reply (none for RELEASE and DECLINE) and
/// what to log once it is.
struct Waiting {
    reply: Option<Reply>,
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
    /// Set on shutdown, or when a listener fails (the others then stop too).
    stop: AtomicBool,
    /// Set once every listener has stopped: from then on the queue only shrinks.
    listeners_done: AtomicBool,
    links: Links,
}

/// The interfaces served, by index, with their names for the log.
struct Links {
    names: HashMap<u32, Arc<str>>,
    /// Only the configured ones; otherwise every interface but loopback.
    only: bool,
}

impl Links {
    /// The name of a served interface; `None` when datagrams from it are to be ignored.
    fn name(&self, ifindex: u32) -> Option<Arc<str>> {
        if let Some(n) = self.names.get(&ifindex) {
            return Some(Arc::clone(n));
        }
        if self.only || ifindex == 0 {
            return None;
        }
        // An interface that appeared after the start.
        let name = nix::net::if_::if_indextoname(ifindex)
            .ok()?
            .into_string()
            .ok()?;
        (name != "lo").then(|| Arc::from(name))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Every interface but loopback, from /sys/class/net.
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

/// The served interfaces: the configured ones (each must exist and have an IPv4 address), or
/// every one but loopback (at least one with an address).
fn links(interfaces: &[String]) -> anyhow::Result<Links> {
    let only = !interfaces.is_empty();
    let names = if only {
        interfaces.to_vec()
    } else {
        all_interfaces()?
    };
    let (mut map, mut any_address) = (HashMap::new(), false);
    for name in names {
        let Ok(ifindex) = nix::net::if_::if_nametoindex(name.as_str()) else {
            if only {
                bail!("no interface {name}");
            }
            continue;
        };
        match interface_address(&name) {
            Some(local) => {
                any_address = true;
                tracing::info!(interface = %name, ifindex, %local, "serving");
            }
            None if only => bail!("interface {name} has no IPv4 address"),
            None => {}
        }
        map.insert(ifindex, Arc::from(name.as_str()));
    }
    if !any_address {
        bail!("no interface with an IPv4 address to serve");
    }
    Ok(Links { names: map, only })
}

/// The ports a configuration listens on.
fn ports(loaded: &Loaded) -> Vec<u16> {
    let mut p = vec![loaded.server.port];
    // Proxy mode, and boot menus: the chosen entry is asked for on 4011.
    if loaded.server.proxy || loaded.engine.boot.menu.is_some() {
        p.push(PXE_PORT);
    }
    p
}

/// Serves until `shutdown` is set (checked at least once a second), then returns once every
/// lease change already received is on disk and its reply sent. Blocking: call it on a thread
/// of its own. The same as [`run_reloadable`] without reloads.
pub fn run(loaded: Loaded, shutdown: Arc<AtomicBool>) -> anyhow::Result<()> {
    run_reloadable(crate::no_reload(loaded), shutdown)
}

/// [`run`], taking new settings from `reload` while it runs (see the module docs for what a
/// reload changes).
pub fn run_reloadable(mut reload: Reload<Loaded>, shutdown: Arc<AtomicBool>) -> anyhow::Result<()> {
    let started = Arc::clone(&reload.borrow_and_update());
    let cfg = &started.server;
    let mut server = Server::new(started.engine.clone());
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
    let links = links(&cfg.interfaces)?;
    let mut sockets = Vec::new();
    for port in ports(&started) {
        sockets.push(Arc::new(PortSocket::bind(port)?));
        tracing::info!(port, "listening");
    }
    let shared = Arc::new(Shared {
        server: Mutex::new(server),
        queue: Mutex::new(Queue::default()),
        ready: Condvar::new(),
        durable: journal.is_some(),
        stop: AtomicBool::new(false),
        listeners_done: AtomicBool::new(false),
        links,
    });
    let committer = journal.map(|j| {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || commit_loop(j, &shared))
    });
    let threads: Vec<std::thread::JoinHandle<anyhow::Result<()>>> = sockets
        .into_iter()
        .map(|s| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || serve(s, &shared))
        })
        .collect();
    // Reloads until shutdown, or until a listener or the committer fails.
    let failed = || {
        threads.iter().any(|t| t.is_finished())
            || committer.as_ref().is_some_and(|c| c.is_finished())
    };
    while !shutdown.load(Ordering::SeqCst) && !failed() {
        std::thread::sleep(Duration::from_millis(100));
        // An error means the sender is gone: no more reloads, keep serving.
        if reload.has_changed().unwrap_or(false) {
            let new = Arc::clone(&reload.borrow_and_update());
            apply_reload(&shared, &started, &new);
        }
    }
    shared.stop.store(true, Ordering::SeqCst);
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

/// Applies new settings to the engine; warns about what only a restart changes.
fn apply_reload(shared: &Shared, running: &Loaded, new: &Loaded) {
    let (old, s) = (&running.server, &new.server);
    let fixed = [
        ("interfaces", old.interfaces != s.interfaces),
        ("port", old.port != s.port),
        ("lease_file", old.lease_file != s.lease_file),
        ("durability", old.durability != s.durability),
        (
            "listening on 4011 (proxy or menu)",
            ports(running) != ports(new),
        ),
    ];
    for (what, changed) in fixed {
        if changed {
            tracing::warn!("dhcp reload: {what} changed; kept as started (restart to apply)");
        }
    }
    let e = &new.engine;
    shared
        .server
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .reconfigure(e.clone());
    tracing::info!(
        subnets = e.subnets.len(),
        hosts = e.hosts.len(),
        rules = e.boot.rules.len(),
        "dhcp configuration reloaded"
    );
}

/// The group commit: takes everything queued since the last round, writes it with one
/// fdatasync, then logs and sends the replies that waited for it. Listeners keep receiving
/// and answering DISCOVERs meanwhile, so a slow disk delays ACKs but does not stop the server.
fn commit_loop(mut journal: Journal, shared: &Shared) -> anyhow::Result<()> {
    let mut neigh = Neighbours::new();
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
            if let Some(r) = w.reply {
                deliver(&r, &mut neigh);
            }
        }
    }
}

fn serve(socket: Arc<PortSocket>, shared: &Shared) -> anyhow::Result<()> {
    let mut neigh = Neighbours::new();
    let mut bufs = vec![[0u8; 1500]; BATCH];
    let mut batch: Vec<Received> = Vec::with_capacity(BATCH);
    let mut now_replies: Vec<Reply> = Vec::with_capacity(BATCH);
    let mut waiting: Vec<Waiting> = Vec::with_capacity(BATCH);
    let mut leases: Vec<Lease> = Vec::with_capacity(BATCH);
    // Changes since the last compaction, and the live lease count it left.
    let (mut changes, mut live_after) = (0usize, 0usize);
    while !shared.stop.load(Ordering::SeqCst) {
        batch.clear();
        match socket.recv(&mut bufs[0], true) {
            Ok(Some(r)) => batch.push(r),
            Ok(None) => continue,
            Err(e) => return Err(e).context("receive"),
        }
        while batch.len() < BATCH {
            match socket.recv(&mut bufs[batch.len()], false) {
                Ok(Some(r)) => batch.push(r),
                _ => break,
            }
        }
        let now = unix_now();
        let mut snapshot = None;
        {
            let mut server = shared.server.lock().unwrap_or_else(|p| p.into_inner());
            for (buf, r) in bufs.iter().zip(&batch) {
                let Some(interface) = shared.links.name(r.ifindex) else {
                    continue;
                };
                let out = server.handle(
                    now,
                    &Incoming {
                        data: &buf[..r.len],
                        src: r.src,
                        local_addr: r.local,
                        local_port: socket.port,
                    },
                );
                log_reply(&interface, r.src, &out);
                let file = out.detail.and_then(|(_, f)| f);
                let reply = out.reply.map(|(bytes, dest, _)| Reply {
                    bytes,
                    dest,
                    socket: Arc::clone(&socket),
                    ifindex: r.ifindex,
                    local: r.local,
                });
                match out.lease {
                    Some((event, lease)) if shared.durable => {
                        leases.push(lease.clone());
                        changes += 1;
                        waiting.push(Waiting {
                            reply,
                            interface,
                            event,
                            lease,
                            file,
                        });
                    }
                    lease => {
                        if let Some((event, lease)) = lease {
                            log_lease(&interface, event, &lease, file.as_deref());
                        }
                        now_replies.extend(reply);
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
        for r in now_replies.drain(..) {
            deliver(&r, &mut neigh);
        }
    }
    Ok(())
}

/// Sends a reply where RFC 2131 §4.1 says. A client without an address that did not ask
/// for a broadcast gets a unicast to its new address, once the kernel's neighbour table maps
/// that address to the client's MAC; if the table cannot be seeded (or the send fails), a
/// broadcast on the arrival interface, which §4.1 allows and every client receives.
fn deliver(r: &Reply, neigh: &mut Neighbours) {
    let broadcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, CLIENT_PORT);
    let (to, ifindex) = match r.dest {
        Destination::Unicast(a) => (a, 0),
        Destination::Broadcast => (broadcast, r.ifindex),
        Destination::Hardware { ip, hw, hlen } => {
            let hw = &hw[..usize::from(hlen).min(hw.len())];
            if r.ifindex != 0 && neigh.seed(r.ifindex, ip, hw).is_ok() {
                let to = SocketAddrV4::new(ip, CLIENT_PORT);
                match r.socket.send(&r.bytes, to, r.ifindex, r.local) {
                    Ok(()) => return,
                    Err(e) => tracing::debug!(%to, error = %e, "unicast failed; broadcasting"),
                }
            }
            (broadcast, r.ifindex)
        }
    };
    if let Err(e) = r.socket.send(&r.bytes, to, ifindex, r.local) {
        tracing::warn!(%to, error = %e, "send failed");
    }
}

fn log_reply(interface: &str, src: SocketAddrV4, out: &Output) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    match (&out.reply, out.dropped) {
        (Some((_, dest, mt)), _) => {
            let (ip, file) = out.detail.clone().unwrap_or((Ipv4Addr::UNSPECIFIED, None));
            tracing::debug!(interface, %src, ?mt, %ip, file = file.as_deref().unwrap_or(""), ?dest, "reply");
        }
        (None, Some(why)) => tracing::debug!(interface, %src, why, "no reply"),
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

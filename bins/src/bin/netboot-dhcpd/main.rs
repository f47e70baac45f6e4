//! netboot-dhcpd: the DHCP/PXE server. A thin driver around `netboot_dhcp::server::Server`:
//! sockets, the clock, the lease journal and the log.
//!
//! One UDP socket per interface, bound to 0.0.0.0:67 with `SO_BINDTODEVICE` and
//! `SO_BROADCAST`, so it sees broadcasts from clients without an address and its broadcasts
//! leave by the right interface (plus one on 4011 per interface in proxy mode). Each socket's
//! thread takes a batch of datagrams (one blocking receive, then whatever is already queued),
//! runs them through the engine, appends the lease changes to the journal, commits it once,
//! and only then sends the replies: no ACK leaves before its lease is durable, and one
//! `fdatasync` covers the whole batch.

mod config;
mod journal;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use netboot_dhcp::lease::LeaseStore;
use netboot_dhcp::server::{
    CLIENT_PORT, Destination, Incoming, LeaseEvent, Output, PXE_PORT, Server,
};
use socket2::{Domain, Protocol, Socket, Type};

use crate::journal::Journal;

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

/// Datagrams taken per batch (and so per journal commit) at most.
const BATCH: usize = 64;

struct State {
    server: Server,
    journal: Option<Journal>,
    commits: u64,
}

struct Listener {
    socket: UdpSocket,
    interface: String,
    local: Ipv4Addr,
    port: u16,
}

fn main() -> ExitCode {
    netboot_bins::init_logging();
    let cli = Cli::parse();
    let text = match std::fs::read_to_string(&cli.config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: {e}", cli.config.display());
            return ExitCode::from(netboot_bins::EXIT_USAGE);
        }
    };
    let loaded = match config::load(&text) {
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
    match run(loaded) {
        Ok(()) => ExitCode::from(netboot_bins::EXIT_OK),
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(netboot_bins::EXIT_USAGE)
        }
    }
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

fn run(loaded: config::Loaded) -> anyhow::Result<()> {
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
                socket,
                interface: name.clone(),
                local,
                port,
            });
        }
    }
    if listeners.is_empty() {
        bail!("no interface with an IPv4 address to serve");
    }
    let state = Arc::new(Mutex::new(State {
        server,
        journal,
        commits: 0,
    }));
    let threads: Vec<_> = listeners
        .into_iter()
        .map(|l| {
            let state = Arc::clone(&state);
            std::thread::spawn(move || serve(&l, &state))
        })
        .collect();
    for t in threads {
        match t.join() {
            Ok(r) => r?,
            Err(_) => bail!("a listener thread panicked"),
        }
    }
    Ok(())
}

fn serve(l: &Listener, state: &Mutex<State>) -> anyhow::Result<()> {
    let mut bufs = vec![[0u8; 1500]; BATCH];
    let mut batch: Vec<(usize, SocketAddrV4)> = Vec::with_capacity(BATCH);
    let mut replies: Vec<(Vec<u8>, SocketAddrV4)> = Vec::with_capacity(BATCH);
    let mut outs: Vec<(SocketAddrV4, Output)> = Vec::with_capacity(BATCH);
    loop {
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
            match rustix::net::recvfrom(&l.socket, buf, rustix::net::RecvFlags::DONTWAIT) {
                Ok((n, _, Some(addr))) => match SocketAddrV4::try_from(addr) {
                    Ok(src) => batch.push((n, src)),
                    Err(_) => continue,
                },
                _ => break,
            }
        }
        let now = unix_now();
        replies.clear();
        outs.clear();
        {
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            let st = &mut *st;
            for (i, &(n, src)) in batch.iter().enumerate() {
                let out = st.server.handle(
                    now,
                    &Incoming {
                        data: &bufs[i][..n],
                        src,
                        local_addr: l.local,
                        local_port: l.port,
                    },
                );
                if let (Some((_, lease)), Some(j)) = (&out.lease, st.journal.as_mut()) {
                    j.append(lease).context("journal append")?;
                }
                outs.push((src, out));
            }
            if let Some(j) = st.journal.as_mut() {
                if let Err(e) = j.commit() {
                    // Not durable: the clients retransmit and get their answer later.
                    tracing::error!(error = %e, "lease journal commit failed; replies withheld");
                    continue;
                }
                st.commits += 1;
                if st.commits.is_multiple_of(1024) {
                    let live = st.server.leases().count();
                    j.maybe_compact(st.server.leases(), live);
                }
            }
        }
        // Logged after the commit: a "lease bound" line means the lease is on disk.
        for (src, out) in outs.drain(..) {
            log(l, src, &out);
            if let Some((bytes, dest, _)) = out.reply {
                replies.push((bytes, target(dest)));
            }
        }
        for (bytes, to) in &replies {
            if let Err(e) = l.socket.send_to(bytes, to) {
                tracing::warn!(%to, error = %e, "send failed");
            }
        }
    }
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

fn log(l: &Listener, src: SocketAddrV4, out: &Output) {
    let Some((ev, lease)) = &out.lease else {
        if let Some((_, dest, mt)) = &out.reply {
            let (ip, file) = out.detail.clone().unwrap_or((Ipv4Addr::UNSPECIFIED, None));
            tracing::debug!(interface = %l.interface, %src, ?mt, %ip, file = file.as_deref().unwrap_or(""), ?dest, "reply");
        } else if let Some(why) = out.dropped {
            tracing::debug!(interface = %l.interface, %src, why, "no reply");
        }
        return;
    };
    let file = out
        .detail
        .as_ref()
        .and_then(|(_, f)| f.as_deref())
        .unwrap_or("");
    let what = match ev {
        LeaseEvent::Bound => "bound",
        LeaseEvent::Renewed => "renewed",
        LeaseEvent::Released => "released",
        LeaseEvent::Declined => "declined",
    };
    tracing::info!(
        interface = %l.interface,
        ip = %lease.ip,
        client = %lease.client,
        file,
        "lease {what}"
    );
}

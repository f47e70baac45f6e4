//! A bare IPv6 router advertisement on the boot LAN, so network-boot firmware stops waiting
//! for IPv6.
//!
//! iPXE configures IPv6 beside DHCPv4 and, on a LAN without a router, waits about 12.5 s for
//! an advertisement before it goes on (measured in ../shared/e2e-anchor). One advertisement
//! that announces nothing ends that wait: router lifetime 0 (we are not a default router), no
//! prefix, and the M and O flags clear (no DHCPv6 either), so hosts configure nothing from it.
//! It is sent when the service starts, every `interval_secs`, and at once in answer to a router
//! solicitation (which iPXE sends when its link comes up).
//!
//! RFC 4861 asks routers to space solicited advertisements 3 s apart; we answer at most one
//! solicitation per [`MIN_SOLICITED_GAP`] per interface instead, because a whole rack
//! powering on is exactly when the answer matters and the packet carries nothing to act on.

use std::io::ErrorKind;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Deserialize;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// `[ra]` in netbootd's file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Send advertisements (default on whenever `[dhcp]` is configured).
    pub enable: bool,
    /// Interfaces to advertise on; empty means the `[dhcp]` interfaces (or, when those are
    /// empty too, every interface but loopback).
    pub interfaces: Vec<String>,
    /// Seconds between unsolicited advertisements (RFC 4861 allows 4 to 1800).
    pub interval_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enable: true,
            interfaces: Vec::new(),
            interval_secs: 4,
        }
    }
}

/// How long sending may fail before it is logged.
pub const WARN_AFTER: Duration = Duration::from_secs(10);

/// How soon a failed advertisement is tried again.
pub const RETRY: Duration = Duration::from_millis(200);

/// Solicitations answered per interface at most this often.
pub const MIN_SOLICITED_GAP: Duration = Duration::from_millis(500);

const ICMPV6_ROUTER_SOLICITATION: u8 = 133;
const ICMPV6_ROUTER_ADVERTISEMENT: u8 = 134;
/// Hop limit every neighbour-discovery packet must carry (RFC 4861 §6.1.2).
const ND_HOP_LIMIT: u32 = 255;
/// All-nodes link-local multicast.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Checks the table: returns the problems found.
pub fn check(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if config.enable && !(4..=1800).contains(&config.interval_secs) {
        problems.push(format!(
            "interval_secs = {}: RFC 4861 allows 4 to 1800",
            config.interval_secs
        ));
    }
    problems
}

/// The advertisement: header with lifetime 0 and no flags, then the source link-layer
/// address option when the MAC is known. The checksum is left 0: the kernel fills it in for
/// raw ICMPv6 sockets.
pub fn advertisement(mac: Option<[u8; 6]>) -> Vec<u8> {
    let mut p = vec![
        ICMPV6_ROUTER_ADVERTISEMENT,
        0, // code
        0, // checksum (kernel)
        0,
        64, // current hop limit suggested to hosts
        0,  // M = 0, O = 0
        0,  // router lifetime 0: not a default router
        0,
        0, // reachable time: unspecified
        0,
        0,
        0,
        0, // retrans timer: unspecified
        0,
        0,
        0,
    ];
    if let Some(mac) = mac {
        p.extend_from_slice(&[1, 1]); // source link-layer address, 8 bytes
        p.extend_from_slice(&mac);
    }
    p
}

/// Every interface but loopback, from /sys/class/net.
pub fn all_interfaces() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n != "lo")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Reads `/sys/class/net/IF/FILE`.
fn sys(interface: &str, file: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/class/net/{interface}/{file}"))
        .ok()
        .map(|s| s.trim().to_owned())
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// One interface's advertiser.
struct Port {
    interface: String,
    /// A raw ICMPv6 socket behind tokio's datagram API (`sendto`/`recv` are all it needs).
    socket: UdpSocket,
    packet: Vec<u8>,
    to: SocketAddr,
    last_solicited: Option<Instant>,
    /// When sending began to fail, while it does.
    failing_since: Option<Instant>,
    /// Whether the failure was logged.
    warned: bool,
}

impl Port {
    fn open(interface: &str) -> anyhow::Result<Port> {
        let index: u32 = sys(interface, "ifindex")
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no interface {interface}"))?;
        let mac = sys(interface, "address").and_then(|s| parse_mac(&s));
        let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
            .context("raw ICMPv6 socket (needs CAP_NET_RAW)")?;
        s.bind_device(Some(interface.as_bytes()))
            .with_context(|| format!("SO_BINDTODEVICE {interface}"))?;
        s.set_multicast_if_v6(index)?;
        s.set_multicast_hops_v6(ND_HOP_LIMIT)?;
        s.set_unicast_hops_v6(ND_HOP_LIMIT)?;
        s.set_multicast_loop_v6(false)?;
        s.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(std::net::UdpSocket::from(s))?;
        Ok(Port {
            interface: interface.to_owned(),
            socket,
            packet: advertisement(mac),
            to: SocketAddr::V6(SocketAddrV6::new(ALL_NODES, 0, 0, index)),
            last_solicited: None,
            failing_since: None,
            warned: false,
        })
    }

    /// Sends one advertisement. Failing for a moment is normal (no carrier yet, or a
    /// link-local address still tentative); failing for [`WARN_AFTER`] is logged once.
    fn advertise(&mut self) {
        match self.socket.try_send_to(&self.packet, self.to) {
            Ok(_) => {
                if self.warned {
                    tracing::info!(interface = %self.interface, "router advertisements sent again");
                }
                self.failing_since = None;
                self.warned = false;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => {
                let since = *self.failing_since.get_or_insert_with(Instant::now);
                if !self.warned && since.elapsed() >= WARN_AFTER {
                    tracing::warn!(interface = %self.interface, error = %e,
                        "cannot send the IPv6 router advertisement (is IPv6 enabled on the \
                         interface?); iPXE clients will wait about 12 s for IPv6");
                    self.warned = true;
                }
            }
        }
    }

    /// Returns once a router solicitation arrives that the rate limit lets us answer.
    async fn solicited(&mut self) {
        let mut buf = [0u8; 1500];
        loop {
            let Ok(n) = self.socket.recv(&mut buf).await else {
                // A receive error on a raw socket is transient; don't spin on it.
                tokio::time::sleep(MIN_SOLICITED_GAP).await;
                continue;
            };
            if n == 0 || buf[0] != ICMPV6_ROUTER_SOLICITATION {
                continue;
            }
            let now = Instant::now();
            if self
                .last_solicited
                .is_none_or(|t| now.duration_since(t) >= MIN_SOLICITED_GAP)
            {
                self.last_solicited = Some(now);
                tracing::debug!(interface = %self.interface, "router solicitation");
                return;
            }
        }
    }

    /// Advertises now, every `interval`, and on solicitations; never returns. While sending
    /// fails (the link has no carrier yet, or its link-local address is still tentative,
    /// which is the case in the first second after a machine powers on and brings the link
    /// up) it retries every [`RETRY`], because that is exactly when a client is waiting.
    async fn serve(mut self, interval: Duration) {
        let mut next = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next) => {
                    self.advertise();
                    next = tokio::time::Instant::now() + interval;
                }
                () = self.solicited() => self.advertise(),
            }
            if self.failing_since.is_some() {
                next = next.min(tokio::time::Instant::now() + RETRY);
            }
        }
    }
}

/// Advertises on `interfaces` until `shutdown` completes. An interface that cannot be used
/// is logged and skipped: advertisements only shorten a boot, they never make it work.
pub async fn run(
    config: Config,
    interfaces: Vec<String>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let interval = Duration::from_secs(config.interval_secs.max(1));
    let mut tasks = tokio::task::JoinSet::new();
    for name in &interfaces {
        match Port::open(name) {
            Ok(p) => {
                tasks.spawn(p.serve(interval));
            }
            Err(e) => tracing::warn!(interface = %name, "no router advertisements: {e:#}"),
        }
    }
    if !tasks.is_empty() {
        tracing::info!(interfaces = ?interfaces, interval_secs = config.interval_secs,
            "sending bare IPv6 router advertisements (lifetime 0, no prefix, no flags)");
    }
    shutdown.await;
    tasks.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertisement_announces_nothing() {
        let p = advertisement(Some([0x52, 0x54, 0, 1, 2, 3]));
        assert_eq!(p.len(), 24);
        assert_eq!(p[0], ICMPV6_ROUTER_ADVERTISEMENT);
        assert_eq!(p[5], 0, "M and O flags clear");
        assert_eq!(&p[6..8], &[0, 0], "router lifetime 0");
        assert_eq!(&p[16..24], &[1, 1, 0x52, 0x54, 0, 1, 2, 3]);
        assert_eq!(advertisement(None).len(), 16);
    }

    #[test]
    fn macs_and_intervals() {
        assert_eq!(
            parse_mac("52:54:00:ab:cd:ef"),
            Some([0x52, 0x54, 0, 0xab, 0xcd, 0xef])
        );
        assert_eq!(parse_mac("52:54:00:ab:cd"), None);
        assert_eq!(parse_mac("52:54:00:ab:cd:ef:01"), None);
        assert!(check(&Config::default()).is_empty());
        let bad = Config {
            interval_secs: 2,
            ..Config::default()
        };
        assert_eq!(check(&bad).len(), 1);
    }
}

//! The sans-IO DHCP server engine: a received datagram and the time go in, a reply (bytes and
//! where RFC 2131 §4.1 says to send them) and the lease change to make durable come out.
//!
//! Time is whole seconds since the Unix epoch, passed by the caller: leases must survive a
//! restart, and a test can run a day of lease expiries in microseconds.

use std::borrow::Cow;
use std::net::{Ipv4Addr, SocketAddrV4};

use crate::lease::{ClientKey, Lease, LeaseState, Slot, Table};
use crate::pxe::{USE_BOOTFILE, VendorOptions};
use crate::wire::{
    Addrs, DEFAULT_MAX_MESSAGE, FLAG_BROADCAST, IpxeFeatures, LeaseTime, MessageType, Op, Options,
    Packet, Repr, is_ipxe_user_class,
};

/// Server UDP port.
pub const SERVER_PORT: u16 = 67;
/// Client UDP port.
pub const CLIENT_PORT: u16 = 68;
/// PXE boot server discovery port (proxyDHCP second stage).
pub const PXE_PORT: u16 = 4011;

/// The shortest lease granted to a client asking for less (seconds), so a client asking
/// for 0 or 1 s does not renew in a busy loop.
pub const MIN_LEASE: u32 = 60;

/// One subnet the server hands out addresses on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    /// Network address.
    pub network: Ipv4Addr,
    /// Prefix length (0–32).
    pub prefix_len: u8,
    /// First and last address of the dynamic pool (inclusive); `None` = reservations only.
    pub pool: Option<(Ipv4Addr, Ipv4Addr)>,
    /// Option 3.
    pub routers: Vec<Ipv4Addr>,
    /// Option 6.
    pub dns_servers: Vec<Ipv4Addr>,
    /// Option 15.
    pub domain_name: Option<String>,
    /// Option 51 for a client that asks for no particular lease time.
    pub lease_time: LeaseTime,
    /// The longest lease a client may ask for with option 51 (RFC 2131 §3.5: the server
    /// may grant less than asked); `None` = `lease_time`. An infinite lease is only granted
    /// when this (or `lease_time`) is infinite.
    pub max_lease_time: Option<LeaseTime>,
    /// `siaddr` for this subnet (defaults to the server's own address).
    pub next_server: Option<Ipv4Addr>,
}

impl Subnet {
    /// The netmask.
    pub fn mask(&self) -> Ipv4Addr {
        Ipv4Addr::from(
            u32::MAX
                .checked_shl(32 - u32::from(self.prefix_len.min(32)))
                .unwrap_or(0),
        )
    }
    /// Whether `a` is on this subnet.
    pub fn contains(&self, a: Ipv4Addr) -> bool {
        let m = u32::from(self.mask());
        u32::from(a) & m == u32::from(self.network) & m
    }
    fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !u32::from(self.mask()))
    }
    /// The lease for a client that asked for `requested` (option 51): what it asked, at
    /// least [`MIN_LEASE`] and at most the maximum; the default when it asked nothing.
    pub fn granted(&self, requested: Option<LeaseTime>) -> LeaseTime {
        let max = self.max_lease_time.unwrap_or(self.lease_time).to_u32();
        let t = match requested {
            None => self.lease_time.to_u32().min(max),
            Some(r) => r.to_u32().clamp(MIN_LEASE.min(max), max),
        };
        LeaseTime::from_u32(t)
    }
    fn in_pool(&self, a: Ipv4Addr) -> bool {
        self.pool
            .is_some_and(|(lo, hi)| (u32::from(lo)..=u32::from(hi)).contains(&u32::from(a)))
    }
}

/// A static reservation by hardware address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The hardware address (6 bytes for Ethernet).
    pub hw_addr: Vec<u8>,
    /// Fixed address (must lie in a subnet); `None` = dynamic address, host options only.
    pub ip: Option<Ipv4Addr>,
    /// Option 12.
    pub hostname: Option<String>,
    /// Boot file for this machine, overriding the architecture rules (not iPXE's script).
    pub boot_file: Option<String>,
    /// `siaddr` for this machine.
    pub next_server: Option<Ipv4Addr>,
}

/// A boot rule: the first rule whose conditions all hold picks the boot file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootRule {
    /// Option 93 values that match (any of the client's list); empty = any.
    pub arch: Vec<u16>,
    /// Option 60 prefix that must match; `None` = any.
    pub vendor_class: Option<String>,
    /// Hardware address prefix that must match (an OUI, e.g. `b8:27:eb` for Raspberry Pis,
    /// which send arch 0 like a BIOS PC); empty = any.
    pub hw_prefix: Vec<u8>,
    /// A one-entry PXE boot menu (option 43 sub-options 9 and 10) with this text. Raspberry
    /// Pi ROMs boot only when the menu says "Raspberry Pi Boot" (Pi 3: with 3 trailing spaces).
    pub pxe_menu: Option<String>,
    /// Boot file or, for UEFI HTTP boot, a URL.
    pub file: String,
    /// `siaddr` for this rule.
    pub next_server: Option<Ipv4Addr>,
}

/// One entry of a PXE boot menu.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MenuEntry {
    /// What the ROM shows.
    pub text: String,
    /// Boot server type (PXE 2.1): 0 = boot from the local disk (no file); other values
    /// name the entry in the client's boot server request (option 43 sub-option 71).
    pub server_type: u16,
    /// Option 93 values this entry is shown to; empty = every PXE client.
    pub arch: Vec<u16>,
    /// Boot file sent when this entry is chosen; `None` for a local boot.
    pub file: Option<String>,
    /// Boot server address (sub-option 8, and `siaddr` of the answer); `None` = us.
    pub server: Option<Ipv4Addr>,
}

/// A PXE boot menu (PXE 2.1 §2.4: option 43 sub-options 6, 8, 9 and 10). The ROM shows
/// `prompt` for `timeout` seconds, then boots the first entry unless the user asks for the
/// menu (F8); the chosen entry is asked for on port 4011 with its type (sub-option 71), and
/// answered with its file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PxeMenu {
    /// Prompt text (sub-option 10), e.g. "Press F8 for the boot menu".
    pub prompt: String,
    /// Seconds before the first entry boots; 0 = at once, 255 = wait for the user.
    pub timeout: u8,
    /// Entries in menu order.
    pub entries: Vec<MenuEntry>,
}

/// How boot files are chosen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BootPolicy {
    /// Rules in order.
    pub rules: Vec<BootRule>,
    /// A boot menu for PXE ROMs (vendor class `PXEClient`) with at least one entry for
    /// their architecture; it takes precedence over the rules, not over a host's own file
    /// or iPXE's script. `None` = no menu.
    pub menu: Option<PxeMenu>,
    /// Boot file when no rule matches (BIOS in practice); `None` = send none.
    pub default_file: Option<String>,
    /// What iPXE (option 77 `iPXE`, or option 175) gets instead of the firmware's file, so
    /// that iPXE loaded by the ROM does not load iPXE again.
    pub ipxe_script: Option<String>,
    /// Send 175.176 = 1 to iPXE so it does not wait ~3 s for ProxyDHCP offers.
    pub ipxe_no_pxedhcp: bool,
}

/// Engine configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Subnets served.
    pub subnets: Vec<Subnet>,
    /// Reservations.
    pub hosts: Vec<Host>,
    /// Boot file choice.
    pub boot: BootPolicy,
    /// NAK requests for addresses we know to be wrong (RFC 2131 §4.3.2); silent otherwise.
    pub authoritative: bool,
    /// Answer a DISCOVER carrying option 80 with an ACK (RFC 4039).
    pub rapid_commit: bool,
    /// Key leases on option 61 when present instead of the hardware address.
    pub match_client_id: bool,
    /// How long an offered address stays reserved for its client, seconds.
    pub offer_hold: u32,
    /// How long a declined address is kept out of the pool, seconds.
    pub decline_probation: u32,
    /// proxyDHCP: give PXE clients boot information only, never addresses; the address comes
    /// from another DHCP server on the link.
    pub proxy: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            subnets: Vec::new(),
            hosts: Vec::new(),
            boot: BootPolicy {
                ipxe_no_pxedhcp: true,
                ..Default::default()
            },
            authoritative: true,
            rapid_commit: false,
            match_client_id: false,
            offer_hold: 30,
            decline_probation: 600,
            proxy: false,
        }
    }
}

/// A datagram handed to the engine.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The UDP payload.
    pub data: &'a [u8],
    /// The sender.
    pub src: SocketAddrV4,
    /// Our address on the interface it arrived on (becomes option 54 and picks the subnet
    /// of unrelayed clients).
    pub local_addr: Ipv4Addr,
    /// The local port it arrived on: 67, or 4011 for PXE boot server requests.
    pub local_port: u16,
}

/// Where a reply goes (RFC 2131 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// To a relay (giaddr:67) or to a configured client (ciaddr:68).
    Unicast(SocketAddrV4),
    /// 255.255.255.255:68 on the arrival interface.
    Broadcast,
    /// Unicast to a client that has no address yet: IP `ip`, hardware address `hw`. A driver
    /// that cannot seed ARP or send raw frames may broadcast instead (RFC 2131 §4.1 allows it).
    Hardware {
        /// yiaddr.
        ip: Ipv4Addr,
        /// chaddr\[..hlen\].
        hw: [u8; 16],
        /// hlen.
        hlen: u8,
    },
}

/// What happened to a lease, for the driver's log line and its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEvent {
    /// Newly bound or rebound.
    Bound,
    /// Extended by a renewing or rebinding client.
    Renewed,
    /// Released by the client.
    Released,
    /// Declined by the client.
    Declined,
}

/// The engine's answer to one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The reply and its destination.
    pub reply: Option<(Vec<u8>, Destination, MessageType)>,
    /// A lease change that must be durable before the reply is sent.
    pub lease: Option<(LeaseEvent, Lease)>,
    /// The address offered or acknowledged (for logs), and the boot file given.
    pub detail: Option<(Ipv4Addr, Option<String>)>,
    /// Why nothing was sent, when that is worth logging.
    pub dropped: Option<&'static str>,
}

impl Output {
    fn drop(reason: &'static str) -> Self {
        Output {
            reply: None,
            lease: None,
            detail: None,
            dropped: Some(reason),
        }
    }
}

/// The DHCP server state machine.
#[derive(Debug)]
pub struct Server {
    config: Config,
    table: Table,
}

struct Boot<'c> {
    file: Option<Cow<'c, str>>,
    /// Option 43 for a PXE ROM.
    pxe: VendorOptions<'c>,
    next_server: Option<Ipv4Addr>,
    http: bool,
    ipxe: bool,
}

impl<'c> Boot<'c> {
    /// A boot file (or none), with the PXE options that say "boot it", and an optional
    /// one-entry menu.
    fn plain(
        file: Option<&'c str>,
        menu: Option<&'c str>,
        next_server: Option<Ipv4Addr>,
        http: bool,
        ipxe: bool,
    ) -> Self {
        Boot {
            file: file.map(Cow::Borrowed),
            pxe: pxe_vendor_options(menu),
            next_server,
            http,
            ipxe,
        }
    }
}

impl Server {
    /// A server with no leases.
    pub fn new(config: Config) -> Self {
        Server {
            config,
            table: Table::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces the configuration (a reload): pools, hosts and boot policy apply to the next
    /// datagram; every lease and offer already made is kept, also when its address is no
    /// longer in a pool.
    pub fn reconfigure(&mut self, config: Config) {
        self.config = config;
    }

    /// Loads a lease from a store at start-up (later records win).
    pub fn restore(&mut self, lease: &Lease) {
        self.table.restore(lease);
    }

    /// Every durable lease, for compaction and inspection.
    pub fn leases(&self) -> impl Iterator<Item = Lease> + '_ {
        self.table
            .by_ip
            .iter()
            .filter_map(|(ip, (client, slot))| match slot {
                Slot::Durable(state) => Some(Lease {
                    ip: *ip,
                    client: client.clone(),
                    state: *state,
                }),
                Slot::Offered { .. } => None,
            })
    }

    /// The address a client is bound to at `now`, if any.
    pub fn bound_address(&self, client: &ClientKey, now: u64) -> Option<Ipv4Addr> {
        let ip = *self.table.by_client.get(client)?;
        match self.table.by_ip.get(&ip)? {
            (c, Slot::Durable(s @ LeaseState::Bound { .. }))
                if c == client && Slot::Durable(*s).active(now) =>
            {
                Some(ip)
            }
            _ => None,
        }
    }

    /// Handles one datagram at time `now` (unix seconds).
    pub fn handle(&mut self, now: u64, input: &Incoming<'_>) -> Output {
        let Ok(packet) = Packet::new_checked(input.data) else {
            return Output::drop("not a DHCP packet");
        };
        let Ok(req) = Repr::parse(&packet) else {
            return Output::drop("malformed options");
        };
        if req.op != Op::Request || req.hlen == 0 {
            return Output::drop("not a request");
        }
        let Some(mt) = req.options.message_type else {
            return Output::drop("BOOTP without DHCP message type");
        };
        if self.config.proxy || input.local_port == PXE_PORT {
            return self.handle_proxy(input, &req, mt);
        }
        let Some(subnet_ix) = self.select_subnet(input, &req) else {
            return Output::drop("no subnet for this link");
        };
        let key = self.key(&req);
        match mt {
            MessageType::Discover => self.discover(now, input, &req, subnet_ix, key),
            MessageType::Request => self.request(now, input, &req, subnet_ix, key),
            MessageType::Decline => self.decline(now, input, &req, key),
            MessageType::Release => self.release(input, &req, key),
            MessageType::Inform => {
                let out = self.reply(input, &req, subnet_ix, MessageType::Ack, None, None);
                Output { lease: None, ..out }
            }
            _ => Output::drop("server message type from a client"),
        }
    }

    fn key(&self, req: &Repr<'_>) -> ClientKey {
        match &req.options.client_id {
            Some(id) if self.config.match_client_id && !id.is_empty() => ClientKey::client_id(id),
            _ => ClientKey::hardware(req.htype, req.hw_addr()),
        }
    }

    /// RFC 2131 §4.3.1 / RFC 3011 / RFC 3527: the link is named by option 118, then relay
    /// sub-option 5, then giaddr, then the arrival interface.
    fn select_subnet(&self, input: &Incoming<'_>, req: &Repr<'_>) -> Option<usize> {
        let link_selection = req.options.relay_agent.as_deref().and_then(|ra| {
            crate::wire::RawOptions::new(ra)
                .map_while(Result::ok)
                .find(|(c, v)| *c == 5 && v.len() == 4)
                .map(|(_, v)| Ipv4Addr::new(v[0], v[1], v[2], v[3]))
        });
        let link = req
            .options
            .subnet_selection
            .or(link_selection)
            .or((!req.giaddr.is_unspecified()).then_some(req.giaddr))
            .unwrap_or(input.local_addr);
        self.config.subnets.iter().position(|s| s.contains(link))
    }

    fn host(&self, req: &Repr<'_>) -> Option<&Host> {
        self.config
            .hosts
            .iter()
            .find(|h| h.hw_addr.as_slice() == req.hw_addr())
    }

    /// Picks the address for `key`: its reservation, its current address, the one it asks
    /// for, then a free pool address starting at a hash of the key so the same client comes
    /// back to the same address even after its lease was forgotten.
    fn allocate(
        &self,
        now: u64,
        req: &Repr<'_>,
        subnet: &Subnet,
        key: &ClientKey,
    ) -> Option<Ipv4Addr> {
        if let Some(ip) = self.host(req).and_then(|h| h.ip) {
            return subnet.contains(ip).then_some(ip);
        }
        let usable = |ip: Ipv4Addr, reclaim: bool| {
            subnet.in_pool(ip)
                && !self.reserved(ip)
                && match self.table.by_ip.get(&ip) {
                    None => true,
                    Some((c, slot)) => {
                        if c == key {
                            !matches!(slot, Slot::Durable(LeaseState::Declined { .. }))
                                || !slot.active(now)
                        } else {
                            reclaim && !slot.active(now)
                        }
                    }
                }
        };
        if let Some(&ip) = self.table.by_client.get(key)
            && usable(ip, false)
        {
            return Some(ip);
        }
        if let Some(ip) = req.options.requested_ip
            && usable(ip, false)
        {
            return Some(ip);
        }
        let (lo, hi) = subnet.pool?;
        let (lo, hi) = (u32::from(lo), u32::from(hi));
        if hi < lo {
            return None;
        }
        let size = u64::from(hi - lo) + 1;
        let start = u64::from(key.stable_hash()) % size;
        // Untouched addresses first, so expired leases keep their owners as long as possible.
        for reclaim in [false, true] {
            for i in 0..size {
                let ip = Ipv4Addr::from(lo + ((start + i) % size) as u32);
                if usable(ip, reclaim) {
                    return Some(ip);
                }
            }
        }
        None
    }

    fn reserved(&self, ip: Ipv4Addr) -> bool {
        self.config.hosts.iter().any(|h| h.ip == Some(ip))
    }

    fn discover(
        &mut self,
        now: u64,
        input: &Incoming<'_>,
        req: &Repr<'_>,
        ix: usize,
        key: ClientKey,
    ) -> Output {
        let subnet = &self.config.subnets[ix];
        let Some(ip) = self.allocate(now, req, subnet, &key) else {
            return Output::drop("no free address");
        };
        if self.config.rapid_commit && req.options.rapid_commit {
            return self.bind(now, input, req, ix, key, ip, LeaseEvent::Bound);
        }
        let until = now + u64::from(self.config.offer_hold);
        // Keep a bound lease's durable state: an OFFER to a bound client changes nothing.
        let keep = matches!(
            self.table.by_ip.get(&ip),
            Some((c, Slot::Durable(LeaseState::Bound { .. }))) if *c == key
        );
        if !keep {
            self.table.set(ip, &key, Slot::Offered { until });
        }
        self.reply(input, req, ix, MessageType::Offer, Some(ip), None)
    }

    #[allow(clippy::too_many_arguments)]
    fn bind(
        &mut self,
        now: u64,
        input: &Incoming<'_>,
        req: &Repr<'_>,
        ix: usize,
        key: ClientKey,
        ip: Ipv4Addr,
        event: LeaseEvent,
    ) -> Output {
        let expires = match self.config.subnets[ix].granted(req.options.lease_time) {
            LeaseTime::Infinite => None,
            LeaseTime::Finite(s) => Some(now + u64::from(s)),
        };
        let state = LeaseState::Bound { expires };
        self.table.set(ip, &key, Slot::Durable(state));
        let lease = Lease {
            ip,
            client: key,
            state,
        };
        self.reply(
            input,
            req,
            ix,
            MessageType::Ack,
            Some(ip),
            Some((event, lease)),
        )
    }

    fn nak(&self, input: &Incoming<'_>, req: &Repr<'_>, why: &'static str) -> Output {
        if !self.config.authoritative {
            return Output::drop(why);
        }
        let reply = Repr {
            op: Op::Reply,
            htype: req.htype,
            hlen: req.hlen,
            xid: req.xid,
            giaddr: req.giaddr,
            flags: if req.giaddr.is_unspecified() {
                req.flags
            } else {
                FLAG_BROADCAST
            },
            chaddr: req.chaddr,
            options: Options {
                message_type: Some(MessageType::Nak),
                server_id: Some(input.local_addr),
                message: Some(Cow::Borrowed(why.as_bytes())),
                relay_agent: req.options.relay_agent.clone(),
                ..Default::default()
            },
            ..Default::default()
        };
        // RFC 2131 §4.1: a NAK goes to the relay, else is broadcast.
        let dest = if req.giaddr.is_unspecified() {
            Destination::Broadcast
        } else {
            Destination::Unicast(SocketAddrV4::new(req.giaddr, SERVER_PORT))
        };
        let mut buf = vec![0u8; DEFAULT_MAX_MESSAGE];
        match reply.emit(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                Output {
                    reply: Some((buf, dest, MessageType::Nak)),
                    lease: None,
                    detail: None,
                    dropped: Some(why),
                }
            }
            Err(_) => Output::drop("NAK does not fit"),
        }
    }

    fn request(
        &mut self,
        now: u64,
        input: &Incoming<'_>,
        req: &Repr<'_>,
        ix: usize,
        key: ClientKey,
    ) -> Output {
        let subnet = &self.config.subnets[ix];
        let mine = |ip: Ipv4Addr, table: &Table| match table.by_ip.get(&ip) {
            Some((c, Slot::Durable(LeaseState::Declined { .. }))) if *c == key => false,
            Some((c, _)) => *c == key,
            None => false,
        };
        let owned_by_other = |ip: Ipv4Addr, table: &Table| {
            table
                .by_ip
                .get(&ip)
                .is_some_and(|(c, slot)| *c != key && slot.active(now))
        };
        if let Some(sid) = req.options.server_id {
            // SELECTING: the client answers one OFFER; if not ours, forget our offer.
            if sid != input.local_addr {
                if let Some(&ip) = self.table.by_client.get(&key)
                    && matches!(self.table.by_ip.get(&ip), Some((_, Slot::Offered { .. })))
                {
                    self.table.by_ip.remove(&ip);
                    self.table.by_client.remove(&key);
                }
                return Output::drop("client chose another server");
            }
            let Some(ip) = req
                .options
                .requested_ip
                .or(Some(req.ciaddr).filter(|a| !a.is_unspecified()))
            else {
                return self.nak(input, req, "no requested address");
            };
            if mine(ip, &self.table) && subnet.contains(ip) {
                return self.bind(now, input, req, ix, key, ip, LeaseEvent::Bound);
            }
            return self.nak(input, req, "offer expired or not ours");
        }
        if req.ciaddr.is_unspecified() {
            // INIT-REBOOT: the client verifies a remembered address.
            let Some(ip) = req.options.requested_ip else {
                return Output::drop("REQUEST without address");
            };
            if !subnet.contains(ip) {
                return self.nak(input, req, "wrong network");
            }
            if mine(ip, &self.table) && !owned_by_other(ip, &self.table) {
                return self.bind(now, input, req, ix, key, ip, LeaseEvent::Bound);
            }
            return self.nak(input, req, "address not leased to this client");
        }
        // RENEWING (unicast) or REBINDING (broadcast): extend the lease on ciaddr.
        let ip = req.ciaddr;
        if subnet.contains(ip) && mine(ip, &self.table) && !owned_by_other(ip, &self.table) {
            return self.bind(now, input, req, ix, key, ip, LeaseEvent::Renewed);
        }
        self.nak(input, req, "no lease for ciaddr")
    }

    fn decline(
        &mut self,
        now: u64,
        input: &Incoming<'_>,
        req: &Repr<'_>,
        key: ClientKey,
    ) -> Output {
        if req.options.server_id.is_some_and(|s| s != input.local_addr) {
            return Output::drop("DECLINE for another server");
        }
        let Some(ip) = req.options.requested_ip else {
            return Output::drop("DECLINE without address");
        };
        if self.table.by_ip.get(&ip).is_none_or(|(c, _)| *c != key) {
            return Output::drop("DECLINE for an address not ours to this client");
        }
        let until = now + u64::from(self.config.decline_probation);
        self.table.decline(ip, &key, until);
        Output {
            reply: None,
            lease: Some((
                LeaseEvent::Declined,
                Lease {
                    ip,
                    client: key,
                    state: LeaseState::Declined { until },
                },
            )),
            detail: Some((ip, None)),
            dropped: None,
        }
    }

    fn release(&mut self, input: &Incoming<'_>, req: &Repr<'_>, key: ClientKey) -> Output {
        if req.options.server_id.is_some_and(|s| s != input.local_addr) {
            return Output::drop("RELEASE for another server");
        }
        let ip = req.ciaddr;
        match self.table.by_ip.get(&ip) {
            Some((c, Slot::Durable(LeaseState::Bound { .. }))) if *c == key => {}
            _ => return Output::drop("RELEASE of an address not bound to this client"),
        }
        let state = LeaseState::Released;
        self.table.set(ip, &key, Slot::Durable(state));
        Output {
            reply: None,
            lease: Some((
                LeaseEvent::Released,
                Lease {
                    ip,
                    client: key,
                    state,
                },
            )),
            detail: Some((ip, None)),
            dropped: None,
        }
    }

    /// The boot file, next server and PXE options for this client; `input` gives our
    /// address (the default boot server of a menu) and the port it asked on.
    fn boot(&self, req: &Repr<'_>, input: &Incoming<'_>) -> Boot<'_> {
        let o = &req.options;
        let policy = &self.config.boot;
        let ipxe = o.user_class.as_deref().is_some_and(is_ipxe_user_class) || o.ipxe.is_some();
        let vendor = o.vendor_class.as_deref().unwrap_or(&[]);
        let http = vendor.starts_with(b"HTTPClient");
        let host = self.host(req);
        let host_ns = host.and_then(|h| h.next_server);
        let plain = |file, menu, next_server| Boot::plain(file, menu, next_server, http, ipxe);
        if ipxe && let Some(script) = &policy.ipxe_script {
            return plain(Some(script), None, host_ns);
        }
        if let Some(f) = host.and_then(|h| h.boot_file.as_deref()) {
            return plain(Some(f), None, host_ns);
        }
        if vendor.starts_with(b"PXEClient")
            && let Some(menu) = &policy.menu
        {
            let shown: Vec<&MenuEntry> = menu
                .entries
                .iter()
                .filter(|e| e.arch.is_empty() || o.client_arches().any(|a| e.arch.contains(&a)))
                .collect();
            // The boot server request for a chosen entry (sub-option 71).
            let item = o
                .vendor_specific
                .as_deref()
                .and_then(|v| VendorOptions::parse(v).ok())
                .and_then(|v| v.boot_item);
            if let Some((kind, layer)) = item {
                if let Some(e) = shown.iter().find(|e| e.server_type == kind && kind != 0) {
                    return Boot {
                        file: e.file.as_deref().map(Cow::Borrowed),
                        pxe: VendorOptions {
                            boot_item: Some((kind, layer)),
                            ..Default::default()
                        },
                        next_server: e.server,
                        http,
                        ipxe,
                    };
                }
            } else if !shown.is_empty() && input.local_port != PXE_PORT {
                // (On 4011 without a chosen entry, a UEFI ROM follows a proxy offer: it
                // gets the rules' file.)
                return Boot {
                    file: None,
                    pxe: menu_options(menu, &shown, input.local_addr),
                    next_server: None,
                    http,
                    ipxe,
                };
            }
        }
        let rule = policy.rules.iter().find(|r| {
            (r.arch.is_empty() || o.client_arches().any(|a| r.arch.contains(&a)))
                && r.vendor_class
                    .as_deref()
                    .is_none_or(|v| vendor.starts_with(v.as_bytes()))
                && req.hw_addr().starts_with(&r.hw_prefix)
        });
        plain(
            rule.map(|r| r.file.as_str())
                .or(policy.default_file.as_deref()),
            rule.and_then(|r| r.pxe_menu.as_deref()),
            host_ns.or(rule.and_then(|r| r.next_server)),
        )
    }

    /// Builds an OFFER or ACK (also the INFORM answer when `yiaddr` is `None`).
    fn reply(
        &self,
        input: &Incoming<'_>,
        req: &Repr<'_>,
        ix: usize,
        mt: MessageType,
        yiaddr: Option<Ipv4Addr>,
        lease: Option<(LeaseEvent, Lease)>,
    ) -> Output {
        let subnet = &self.config.subnets[ix];
        let boot = self.boot(req, input);
        let host = self.host(req);
        let inform = yiaddr.is_none();
        let (lease_time, t1, t2) = match (inform, subnet.granted(req.options.lease_time)) {
            (true, _) => (None, None, None),
            (false, LeaseTime::Infinite) => (Some(LeaseTime::Infinite), None, None),
            (false, LeaseTime::Finite(s)) => (
                Some(LeaseTime::Finite(s)),
                Some(s / 2),
                Some((u64::from(s) * 7 / 8) as u32),
            ),
        };
        let vendor = req.options.vendor_class.as_deref().unwrap_or(&[]);
        let pxe = vendor.starts_with(b"PXEClient");
        let vendor43;
        let mut o = Options {
            message_type: Some(mt),
            server_id: Some(input.local_addr),
            lease_time,
            renewal_time: t1,
            rebinding_time: t2,
            subnet_mask: Some(subnet.mask()),
            broadcast_addr: Some(subnet.broadcast()),
            routers: (!subnet.routers.is_empty()).then(|| Addrs::new(&subnet.routers)),
            dns_servers: (!subnet.dns_servers.is_empty()).then(|| Addrs::new(&subnet.dns_servers)),
            domain_name: subnet
                .domain_name
                .as_deref()
                .map(|d| Cow::Borrowed(d.as_bytes())),
            hostname: host
                .and_then(|h| h.hostname.as_deref())
                .map(|h| Cow::Borrowed(h.as_bytes())),
            rapid_commit: mt == MessageType::Ack
                && req.options.rapid_commit
                && self.config.rapid_commit,
            relay_agent: req.options.relay_agent.clone(),
            ..Default::default()
        };
        if pxe {
            // A full offer naming PXEClient must carry option 43, or EDK2 takes it for a
            // proxy offer and asks port 4011 (research §1, "Option 60 trap").
            o.vendor_class = Some(Cow::Borrowed(b"PXEClient"));
            vendor43 = boot.pxe.to_bytes();
            o.vendor_specific = Some(Cow::Owned(vendor43));
            o.client_uuid = req.options.client_uuid.clone();
        } else if boot.http {
            // UEFI HTTP boot only accepts an offer that says HTTPClient back.
            o.vendor_class = Some(Cow::Borrowed(b"HTTPClient"));
        }
        if boot.ipxe && self.config.boot.ipxe_no_pxedhcp {
            o.ipxe = Some(Cow::Borrowed(&[IpxeFeatures::NO_PXEDHCP, 1, 1]));
        }
        let file = boot.file.as_deref().unwrap_or("");
        if !file.is_empty() && req.options.requests(crate::wire::code::BOOTFILE) {
            o.bootfile = Some(Cow::Borrowed(file.as_bytes()));
        }
        let next_server = boot
            .next_server
            .or(subnet.next_server)
            .unwrap_or(input.local_addr);
        let reply = Repr {
            op: Op::Reply,
            htype: req.htype,
            hlen: req.hlen,
            hops: 0,
            xid: req.xid,
            secs: 0,
            flags: req.flags,
            ciaddr: if mt == MessageType::Ack {
                req.ciaddr
            } else {
                Ipv4Addr::UNSPECIFIED
            },
            yiaddr: yiaddr.unwrap_or(Ipv4Addr::UNSPECIFIED),
            siaddr: if file.is_empty() {
                Ipv4Addr::UNSPECIFIED
            } else {
                next_server
            },
            giaddr: req.giaddr,
            chaddr: req.chaddr,
            sname: Cow::Borrowed(&[]),
            // The `file` field carries the name for old ROMs too; a name longer than the field
            // travels only in option 67.
            file: Cow::Borrowed(if file.len() <= 128 {
                file.as_bytes()
            } else {
                &[]
            }),
            options: o,
        };
        if file.len() > 128 && reply.options.bootfile.is_none() {
            return Output::drop("boot file longer than 128 bytes and option 67 not requested");
        }
        let max = usize::from(req.options.max_message_size.unwrap_or(576))
            .clamp(576, 1500)
            .saturating_sub(28);
        let mut buf = vec![0u8; max];
        let n = match reply.emit(&mut buf) {
            Ok(n) => n,
            Err(_) => return Output::drop("reply does not fit"),
        };
        buf.truncate(n);
        let dest = destination(req, yiaddr);
        Output {
            reply: Some((buf, dest, mt)),
            lease,
            detail: yiaddr
                .or(Some(req.ciaddr))
                .map(|ip| (ip, boot.file.map(Cow::into_owned))),
            dropped: None,
        }
    }

    /// proxyDHCP (PXE 2.1 §2.2.4): boot information only. On 67 a PXE DISCOVER gets an offer
    /// without an address; a BIOS ROM takes the file from it, a UEFI one (arch ≥ 6) asks
    /// again on 4011 and gets the file in an ACK.
    fn handle_proxy(&self, input: &Incoming<'_>, req: &Repr<'_>, mt: MessageType) -> Output {
        let vendor = req.options.vendor_class.as_deref().unwrap_or(&[]);
        if !vendor.starts_with(b"PXEClient") {
            return Output::drop("proxy mode: not a PXE client");
        }
        let on_4011 = input.local_port == PXE_PORT;
        let reply_type = match (mt, on_4011) {
            (MessageType::Discover, false) => MessageType::Offer,
            (MessageType::Request | MessageType::Inform, true) => MessageType::Ack,
            _ => return Output::drop("proxy mode: not ours to answer"),
        };
        let boot = self.boot(req, input);
        let uefi = req.options.client_arches().any(|a| a != 0);
        // UEFI ROMs ignore a file in the :67 proxy offer and use the 4011 exchange.
        let give_file = on_4011 || !uefi;
        let file = if give_file {
            boot.file.as_deref().unwrap_or("")
        } else {
            ""
        };
        let o = Options {
            message_type: Some(reply_type),
            server_id: Some(input.local_addr),
            vendor_class: Some(Cow::Borrowed(b"PXEClient")),
            // No option 43 for UEFI: that is what makes EDK2 take the offer for a BINL proxy
            // and ask port 4011 (with 43 it starts a boot server discovery and gives up).
            // A boot server answer (4011, a menu entry chosen) always echoes sub-option 71.
            vendor_specific: (!uefi || boot.pxe.boot_item.is_some())
                .then(|| Cow::Owned(boot.pxe.to_bytes())),
            client_uuid: req.options.client_uuid.clone(),
            bootfile: (!file.is_empty() && req.options.requests(crate::wire::code::BOOTFILE))
                .then_some(Cow::Borrowed(file.as_bytes())),
            ..Default::default()
        };
        let reply = Repr {
            op: Op::Reply,
            htype: req.htype,
            hlen: req.hlen,
            xid: req.xid,
            flags: req.flags,
            ciaddr: if on_4011 {
                req.ciaddr
            } else {
                Ipv4Addr::UNSPECIFIED
            },
            siaddr: boot.next_server.unwrap_or(input.local_addr),
            giaddr: req.giaddr,
            chaddr: req.chaddr,
            file: Cow::Borrowed(if file.len() <= 128 {
                file.as_bytes()
            } else {
                &[]
            }),
            options: o,
            ..Default::default()
        };
        let mut buf = vec![0u8; DEFAULT_MAX_MESSAGE];
        let Ok(n) = reply.emit(&mut buf) else {
            return Output::drop("reply does not fit");
        };
        buf.truncate(n);
        let dest = if on_4011 {
            // Back to where the request came from: EDK2 sends from port 4011, other ROMs
            // from 68; a client without a usable source gets its ciaddr:68.
            if input.src.ip().is_unspecified() || input.src.port() == 0 {
                Destination::Unicast(SocketAddrV4::new(req.ciaddr, CLIENT_PORT))
            } else {
                Destination::Unicast(input.src)
            }
        } else {
            destination(req, None)
        };
        Output {
            reply: Some((buf, dest, reply_type)),
            lease: None,
            detail: Some((Ipv4Addr::UNSPECIFIED, boot.file.map(Cow::into_owned))),
            dropped: None,
        }
    }
}

/// Option 43 for PXE clients: "boot the file in this packet", plus a one-entry menu when the
/// rule asks for one (with a zero-second prompt, so nobody waits for a key).
fn pxe_vendor_options(menu: Option<&str>) -> VendorOptions<'_> {
    VendorOptions {
        discovery_control: Some(USE_BOOTFILE),
        menu: menu
            .map(|m| {
                vec![crate::pxe::MenuItem {
                    server_type: 0,
                    description: Cow::Borrowed(m.as_bytes()),
                }]
            })
            .unwrap_or_default(),
        prompt: menu.map(|_| (0, Cow::Borrowed(&b"PXE"[..]))),
        ..Default::default()
    }
}

/// Option 43 with a boot menu: discovery by unicast to the listed boot servers only (bits
/// 0, 1 and 2 of sub-option 6; bit 3 clear, so the ROM shows the prompt and menu instead of
/// loading a file from this packet), a server for every entry that is not a local boot, the
/// entries, and the prompt.
fn menu_options<'c>(
    menu: &'c PxeMenu,
    shown: &[&'c MenuEntry],
    local: Ipv4Addr,
) -> VendorOptions<'c> {
    let mut servers = Vec::new();
    for e in shown.iter().filter(|e| e.server_type != 0) {
        servers.extend_from_slice(&e.server_type.to_be_bytes());
        servers.push(1);
        servers.extend_from_slice(&e.server.unwrap_or(local).octets());
    }
    VendorOptions {
        discovery_control: Some(0x07),
        boot_servers: (!servers.is_empty()).then_some(Cow::Owned(servers)),
        menu: shown
            .iter()
            .map(|e| crate::pxe::MenuItem {
                server_type: e.server_type,
                description: Cow::Borrowed(e.text.as_bytes()),
            })
            .collect(),
        prompt: Some((menu.timeout, Cow::Borrowed(menu.prompt.as_bytes()))),
        boot_item: None,
    }
}

/// RFC 2131 §4.1: relay first, then a configured client, then broadcast if asked, then
/// unicast to the new address.
fn destination(req: &Repr<'_>, yiaddr: Option<Ipv4Addr>) -> Destination {
    if !req.giaddr.is_unspecified() {
        Destination::Unicast(SocketAddrV4::new(req.giaddr, SERVER_PORT))
    } else if !req.ciaddr.is_unspecified() {
        Destination::Unicast(SocketAddrV4::new(req.ciaddr, CLIENT_PORT))
    } else if req.broadcast() {
        Destination::Broadcast
    } else {
        match yiaddr {
            Some(ip) if !ip.is_unspecified() => Destination::Hardware {
                ip,
                hw: req.chaddr,
                hlen: req.hlen,
            },
            _ => Destination::Broadcast,
        }
    }
}

#[cfg(test)]
mod tests;

//! The DHCPv4 wire format: a zero-copy [`Packet`] view, a raw option iterator that follows
//! option overload (RFC 2131 §4.1 option 52) and a typed [`Repr`] with `parse`, `buffer_len`
//! and `emit`.
//!
//! Values borrow from the received buffer. The one exception is RFC 3396: an option that the
//! sender split into several fragments (long options, or an option continued in `file`/`sname`)
//! is joined into an owned buffer, which is why byte values are [`Cow`]s.

use std::borrow::Cow;
use std::net::Ipv4Addr;

use thiserror::Error;

/// The fixed BOOTP header plus the 4-byte magic cookie.
pub const MIN_LEN: usize = 240;
/// RFC 2131 §3: the options field starts with 99.130.83.99.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// RFC 1542 §3.5: BOOTP relays and old clients expect at least 300 bytes; replies are padded.
pub const BOOTP_MIN_LEN: usize = 300;
/// RFC 2131 §2: every client must accept a 576-byte IP datagram, i.e. 548 bytes of DHCP.
pub const DEFAULT_MAX_MESSAGE: usize = 576 - 28;
/// The `flags` bit asking for a broadcast reply (RFC 2131 §2, figure 2).
pub const FLAG_BROADCAST: u16 = 0x8000;

const SNAME: core::ops::Range<usize> = 44..108;
const FILE: core::ops::Range<usize> = 108..236;

/// Option codes used by network boot (RFC 2132 unless noted).
pub mod code {
    /// 0: padding, no length byte.
    pub const PAD: u8 = 0;
    /// 1: subnet mask.
    pub const SUBNET_MASK: u8 = 1;
    /// 3: routers.
    pub const ROUTER: u8 = 3;
    /// 6: DNS servers.
    pub const DNS: u8 = 6;
    /// 12: host name.
    pub const HOSTNAME: u8 = 12;
    /// 15: domain name.
    pub const DOMAIN_NAME: u8 = 15;
    /// 28: broadcast address.
    pub const BROADCAST_ADDR: u8 = 28;
    /// 43: vendor-specific information (PXE sub-options for `PXEClient`).
    pub const VENDOR_SPECIFIC: u8 = 43;
    /// 50: requested IP address.
    pub const REQUESTED_IP: u8 = 50;
    /// 51: lease time in seconds, `0xffff_ffff` = infinite.
    pub const LEASE_TIME: u8 = 51;
    /// 52: option overload (1 `file`, 2 `sname`, 3 both).
    pub const OVERLOAD: u8 = 52;
    /// 53: DHCP message type.
    pub const MESSAGE_TYPE: u8 = 53;
    /// 54: server identifier.
    pub const SERVER_ID: u8 = 54;
    /// 55: parameter request list.
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    /// 56: message (text, used in NAKs).
    pub const MESSAGE: u8 = 56;
    /// 57: maximum DHCP message size.
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    /// 58: renewal (T1) time.
    pub const RENEWAL_TIME: u8 = 58;
    /// 59: rebinding (T2) time.
    pub const REBINDING_TIME: u8 = 59;
    /// 60: vendor class identifier (`PXEClient:…`, `HTTPClient:…`).
    pub const VENDOR_CLASS: u8 = 60;
    /// 61: client identifier.
    pub const CLIENT_ID: u8 = 61;
    /// 66: TFTP server name.
    pub const TFTP_SERVER: u8 = 66;
    /// 67: boot file name.
    pub const BOOTFILE: u8 = 67;
    /// 77: user class (RFC 3004), raw `iPXE` from iPXE.
    pub const USER_CLASS: u8 = 77;
    /// 80: rapid commit (RFC 4039).
    pub const RAPID_COMMIT: u8 = 80;
    /// 82: relay agent information (RFC 3046), echoed verbatim.
    pub const RELAY_AGENT: u8 = 82;
    /// 93: client system architectures (RFC 4578, IANA registry).
    pub const CLIENT_ARCH: u8 = 93;
    /// 94: client network device interface (RFC 4578).
    pub const CLIENT_NDI: u8 = 94;
    /// 97: client machine UUID (RFC 4578).
    pub const CLIENT_UUID: u8 = 97;
    /// 118: subnet selection (RFC 3011).
    pub const SUBNET_SELECTION: u8 = 118;
    /// 175: iPXE encapsulated options (feature flags).
    pub const IPXE: u8 = 175;
    /// 255: end of options.
    pub const END: u8 = 255;
}

/// Why a packet was rejected or could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// Shorter than the fixed header and cookie.
    #[error("packet of {0} bytes is shorter than the 240-byte BOOTP header")]
    Truncated(usize),
    /// The magic cookie is missing: plain BOOTP or garbage.
    #[error("no DHCP magic cookie")]
    NoCookie,
    /// An option's length byte runs past the end of its field.
    #[error("option {0} runs past the end of its field")]
    OptionOverrun(u8),
    /// A typed option has a length or value its RFC does not allow.
    #[error("option {0} has an invalid length or value")]
    BadOption(u8),
    /// A header field is out of range (`hlen` > 16, `sname`/`file` too long to emit).
    #[error("header field out of range")]
    BadHeader,
    /// The options do not fit the buffer even with `file` and `sname` overloaded.
    #[error("options do not fit in {0} bytes")]
    NoSpace(usize),
}

/// A checked view over a DHCP packet. After [`Packet::new_checked`] no accessor panics.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` after checking its length and magic cookie.
    pub fn new_checked(buffer: T) -> Result<Self, Error> {
        let b = buffer.as_ref();
        if b.len() < MIN_LEN {
            return Err(Error::Truncated(b.len()));
        }
        if b[236..240] != MAGIC_COOKIE {
            return Err(Error::NoCookie);
        }
        Ok(Packet { buffer })
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }
    /// `op`: 1 BOOTREQUEST, 2 BOOTREPLY.
    pub fn op(&self) -> u8 {
        self.b()[0]
    }
    /// `htype`: hardware type (1 = Ethernet).
    pub fn htype(&self) -> u8 {
        self.b()[1]
    }
    /// `hlen`: hardware address length (6 for Ethernet).
    pub fn hlen(&self) -> u8 {
        self.b()[2]
    }
    /// `hops`: incremented by each relay.
    pub fn hops(&self) -> u8 {
        self.b()[3]
    }
    /// `xid`: the transaction id chosen by the client.
    pub fn xid(&self) -> u32 {
        be32(self.b(), 4)
    }
    /// `secs`: seconds since the client began acquiring.
    pub fn secs(&self) -> u16 {
        u16::from_be_bytes([self.b()[8], self.b()[9]])
    }
    /// `flags`: bit 15 is [`FLAG_BROADCAST`].
    pub fn flags(&self) -> u16 {
        u16::from_be_bytes([self.b()[10], self.b()[11]])
    }
    /// `ciaddr`: the client's address, only when it is bound, renewing or rebinding.
    pub fn ciaddr(&self) -> Ipv4Addr {
        Ipv4Addr::from(be32(self.b(), 12))
    }
    /// `yiaddr`: "your" address, filled by the server.
    pub fn yiaddr(&self) -> Ipv4Addr {
        Ipv4Addr::from(be32(self.b(), 16))
    }
    /// `siaddr`: the next server (TFTP) address.
    pub fn siaddr(&self) -> Ipv4Addr {
        Ipv4Addr::from(be32(self.b(), 20))
    }
    /// `giaddr`: the relay agent's address, 0 when not relayed.
    pub fn giaddr(&self) -> Ipv4Addr {
        Ipv4Addr::from(be32(self.b(), 24))
    }
    /// `chaddr`: the client hardware address field (16 bytes, `hlen` of them meaningful).
    pub fn chaddr(&self) -> &[u8] {
        &self.b()[28..44]
    }
    /// `sname`: the raw 64-byte server host name field (or options when overloaded).
    pub fn sname(&self) -> &[u8] {
        &self.b()[SNAME]
    }
    /// `file`: the raw 128-byte boot file field (or options when overloaded).
    pub fn file(&self) -> &[u8] {
        &self.b()[FILE]
    }
    /// The options field after the magic cookie.
    pub fn options_field(&self) -> &[u8] {
        &self.b()[MIN_LEN..]
    }
    /// Every option entry in wire order, following option overload into `file` then `sname`
    /// (RFC 2131 §4.1). Fragments of a split option come out as separate entries.
    pub fn options(&self) -> AllOptions<'_> {
        let overload = RawOptions::new(self.options_field())
            .filter_map(Result::ok)
            .find(|(c, _)| *c == code::OVERLOAD)
            .and_then(|(_, v)| v.first().copied())
            .unwrap_or(0);
        let file = if overload & 1 != 0 { self.file() } else { &[] };
        let sname = if overload & 2 != 0 { self.sname() } else { &[] };
        AllOptions {
            regions: [self.options_field(), file, sname],
            current: RawOptions::new(&[]),
            next: 0,
        }
    }
}

/// Iterator over `(code, value)` entries of one options region; stops at END. Pads are skipped.
#[derive(Debug, Clone)]
pub struct RawOptions<'a> {
    data: &'a [u8],
}

impl<'a> RawOptions<'a> {
    /// Iterates the options in `data` (an options field, or an overloaded `file`/`sname`).
    pub fn new(data: &'a [u8]) -> Self {
        RawOptions { data }
    }
}

impl<'a> Iterator for RawOptions<'a> {
    type Item = Result<(u8, &'a [u8]), Error>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&c, rest) = self.data.split_first()?;
            match c {
                code::PAD => self.data = rest,
                code::END => {
                    self.data = &[];
                    return None;
                }
                _ => {
                    let Some((&len, rest)) = rest.split_first() else {
                        self.data = &[];
                        return Some(Err(Error::OptionOverrun(c)));
                    };
                    let len = usize::from(len);
                    if rest.len() < len {
                        self.data = &[];
                        return Some(Err(Error::OptionOverrun(c)));
                    }
                    let (value, rest) = rest.split_at(len);
                    self.data = rest;
                    return Some(Ok((c, value)));
                }
            }
        }
    }
}

/// Option entries from the options field, then `file`, then `sname` when overloaded.
#[derive(Debug, Clone)]
pub struct AllOptions<'a> {
    regions: [&'a [u8]; 3],
    current: RawOptions<'a>,
    next: usize,
}

impl<'a> Iterator for AllOptions<'a> {
    type Item = Result<(u8, &'a [u8]), Error>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.current.next() {
                return Some(item);
            }
            let region = *self.regions.get(self.next)?;
            self.next += 1;
            self.current = RawOptions::new(region);
        }
    }
}

/// BOOTP `op` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Op {
    /// 1: client (or relay) to server.
    #[default]
    Request,
    /// 2: server to client.
    Reply,
}

/// Option 53 (RFC 2132 §9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
}

impl MessageType {
    /// The wire value.
    pub fn to_u8(self) -> u8 {
        self as u8 + 1
    }
    /// From the wire value; `None` for values this crate does not handle (lease query etc.).
    pub fn from_u8(v: u8) -> Option<Self> {
        use MessageType::*;
        Some(match v {
            1 => Discover,
            2 => Offer,
            3 => Request,
            4 => Decline,
            5 => Ack,
            6 => Nak,
            7 => Release,
            8 => Inform,
            _ => return None,
        })
    }
}

/// Option 51: a lease time (RFC 2132 §9.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseTime {
    /// Seconds.
    Finite(u32),
    /// `0xffff_ffff`: the lease never expires.
    Infinite,
}

impl LeaseTime {
    /// The wire value.
    pub fn to_u32(self) -> u32 {
        match self {
            LeaseTime::Finite(s) => s.min(u32::MAX - 1),
            LeaseTime::Infinite => u32::MAX,
        }
    }
    /// From the wire value.
    pub fn from_u32(v: u32) -> Self {
        if v == u32::MAX {
            LeaseTime::Infinite
        } else {
            LeaseTime::Finite(v)
        }
    }
}

/// A list of IPv4 addresses (options 3, 6), kept as its wire bytes (a multiple of 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addrs<'a>(Cow<'a, [u8]>);

impl<'a> Addrs<'a> {
    /// Checks that `bytes` is a non-empty multiple of 4.
    pub fn from_wire(bytes: Cow<'a, [u8]>) -> Option<Self> {
        (!bytes.is_empty() && bytes.len().is_multiple_of(4)).then_some(Addrs(bytes))
    }
    /// From addresses.
    pub fn new(addrs: &[Ipv4Addr]) -> Addrs<'static> {
        Addrs(Cow::Owned(addrs.iter().flat_map(|a| a.octets()).collect()))
    }
    /// The addresses.
    pub fn iter(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.0
            .chunks_exact(4)
            .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
    }
    /// The wire bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The typed options a network-boot server reads or writes. Unknown options are skipped by
/// [`Repr::parse`] (reach them through [`Packet::options`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Options<'a> {
    /// 53.
    pub message_type: Option<MessageType>,
    /// 1.
    pub subnet_mask: Option<Ipv4Addr>,
    /// 3.
    pub routers: Option<Addrs<'a>>,
    /// 6.
    pub dns_servers: Option<Addrs<'a>>,
    /// 12.
    pub hostname: Option<Cow<'a, [u8]>>,
    /// 15.
    pub domain_name: Option<Cow<'a, [u8]>>,
    /// 28.
    pub broadcast_addr: Option<Ipv4Addr>,
    /// 43, raw; decode PXE sub-options with [`crate::pxe::VendorOptions::parse`].
    pub vendor_specific: Option<Cow<'a, [u8]>>,
    /// 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// 51.
    pub lease_time: Option<LeaseTime>,
    /// 54.
    pub server_id: Option<Ipv4Addr>,
    /// 55: option codes the client wants.
    pub parameter_request_list: Option<Cow<'a, [u8]>>,
    /// 56.
    pub message: Option<Cow<'a, [u8]>>,
    /// 57 (≥ 576 per RFC 2132 §9.10).
    pub max_message_size: Option<u16>,
    /// 58.
    pub renewal_time: Option<u32>,
    /// 59.
    pub rebinding_time: Option<u32>,
    /// 60.
    pub vendor_class: Option<Cow<'a, [u8]>>,
    /// 61.
    pub client_id: Option<Cow<'a, [u8]>>,
    /// 66.
    pub tftp_server: Option<Cow<'a, [u8]>>,
    /// 67: trailing NULs are stripped on parse; one NUL is appended on emit because some PXE
    /// ROMs read the name as a C string.
    pub bootfile: Option<Cow<'a, [u8]>>,
    /// 77, raw (RFC 3004 counted items, or iPXE's bare `iPXE`); see [`is_ipxe_user_class`].
    pub user_class: Option<Cow<'a, [u8]>>,
    /// 80: present (it has no value).
    pub rapid_commit: bool,
    /// 82, raw; a server echoes it verbatim (RFC 3046 §2.2) and writes it last.
    pub relay_agent: Option<Cow<'a, [u8]>>,
    /// 93, raw (a list of big-endian u16); see [`Options::client_arches`].
    pub client_arch: Option<Cow<'a, [u8]>>,
    /// 94: type, major, minor.
    pub client_ndi: Option<[u8; 3]>,
    /// 97: type 0 + 16-byte UUID (not length-checked: firmware sends odd ones).
    pub client_uuid: Option<Cow<'a, [u8]>>,
    /// 118.
    pub subnet_selection: Option<Ipv4Addr>,
    /// 175, raw; see [`IpxeFeatures::parse`].
    pub ipxe: Option<Cow<'a, [u8]>>,
}

fn own(v: Option<Cow<'_, [u8]>>) -> Option<Cow<'static, [u8]>> {
    v.map(|c| Cow::Owned(c.into_owned()))
}

impl Options<'_> {
    /// Detaches the options from the packet buffer.
    pub fn into_owned(self) -> Options<'static> {
        let addrs = |a: Option<Addrs<'_>>| a.map(|a| Addrs(Cow::Owned(a.0.into_owned())));
        Options {
            message_type: self.message_type,
            subnet_mask: self.subnet_mask,
            routers: addrs(self.routers),
            dns_servers: addrs(self.dns_servers),
            hostname: own(self.hostname),
            domain_name: own(self.domain_name),
            broadcast_addr: self.broadcast_addr,
            vendor_specific: own(self.vendor_specific),
            requested_ip: self.requested_ip,
            lease_time: self.lease_time,
            server_id: self.server_id,
            parameter_request_list: own(self.parameter_request_list),
            message: own(self.message),
            max_message_size: self.max_message_size,
            renewal_time: self.renewal_time,
            rebinding_time: self.rebinding_time,
            vendor_class: own(self.vendor_class),
            client_id: own(self.client_id),
            tftp_server: own(self.tftp_server),
            bootfile: own(self.bootfile),
            user_class: own(self.user_class),
            rapid_commit: self.rapid_commit,
            relay_agent: own(self.relay_agent),
            client_arch: own(self.client_arch),
            client_ndi: self.client_ndi,
            client_uuid: own(self.client_uuid),
            subnet_selection: self.subnet_selection,
            ipxe: own(self.ipxe),
        }
    }

    /// The architectures of option 93 in the client's order.
    pub fn client_arches(&self) -> impl Iterator<Item = u16> + '_ {
        self.client_arch
            .as_deref()
            .unwrap_or(&[])
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
    }

    /// Whether the parameter request list (55) names `code`.
    pub fn requests(&self, code: u8) -> bool {
        self.parameter_request_list
            .as_deref()
            .is_some_and(|p| p.contains(&code))
    }
}

/// Whether option 77 says iPXE: iPXE sends the bare string `iPXE`; RFC 3004 clients send
/// counted items, one of which may be `iPXE`.
pub fn is_ipxe_user_class(uc: &[u8]) -> bool {
    if uc == b"iPXE" {
        return true;
    }
    let mut rest = uc;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len);
        if len == 0 || tail.len() < len {
            return false;
        }
        if &tail[..len] == b"iPXE" {
            return true;
        }
        rest = &tail[len..];
    }
    false
}

/// iPXE's feature flags from option 175 (`ipxe/ipxe: src/include/ipxe/features.h`): each
/// sub-option present with a non-zero first byte is a compiled-in feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IpxeFeatures([u64; 4]);

impl IpxeFeatures {
    /// 175.19: HTTP.
    pub const HTTP: u8 = 19;
    /// 175.24: bzImage.
    pub const BZIMAGE: u8 = 24;
    /// 175.33: PXE API.
    pub const PXE: u8 = 33;
    /// 175.36: EFI.
    pub const EFI: u8 = 36;
    /// 175.39: menu.
    pub const MENU: u8 = 39;
    /// 175.176: "no-pxedhcp" sent *to* iPXE so it stops waiting for ProxyDHCP offers.
    pub const NO_PXEDHCP: u8 = 176;

    /// Decodes the sub-options of option 175; malformed tails are ignored.
    pub fn parse(data: &[u8]) -> Self {
        let mut f = IpxeFeatures::default();
        for (c, v) in RawOptions::new(data).map_while(Result::ok) {
            if v.first().is_some_and(|&b| b != 0) {
                f.0[usize::from(c / 64)] |= 1 << (c % 64);
            }
        }
        f
    }
    /// Whether feature `code` is present.
    pub fn has(&self, code: u8) -> bool {
        self.0[usize::from(code / 64)] & (1 << (code % 64)) != 0
    }
    /// LTSP's test for an iPXE that can run a script: HTTP, menu and (PXE+bzImage or EFI).
    pub fn can_run_script(&self) -> bool {
        self.has(Self::HTTP)
            && self.has(Self::MENU)
            && ((self.has(Self::PXE) && self.has(Self::BZIMAGE)) || self.has(Self::EFI))
    }
}

/// A DHCP message as values. Borrowed from the packet where possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repr<'a> {
    /// `op`.
    pub op: Op,
    /// `htype`.
    pub htype: u8,
    /// `hlen` (≤ 16).
    pub hlen: u8,
    /// `hops`.
    pub hops: u8,
    /// `xid`.
    pub xid: u32,
    /// `secs`.
    pub secs: u16,
    /// `flags`.
    pub flags: u16,
    /// `ciaddr`.
    pub ciaddr: Ipv4Addr,
    /// `yiaddr`.
    pub yiaddr: Ipv4Addr,
    /// `siaddr`.
    pub siaddr: Ipv4Addr,
    /// `giaddr`.
    pub giaddr: Ipv4Addr,
    /// `chaddr` (all 16 bytes; `hlen` of them meaningful).
    pub chaddr: [u8; 16],
    /// `sname` up to its first NUL; empty when it carried options.
    pub sname: Cow<'a, [u8]>,
    /// `file` up to its first NUL; empty when it carried options.
    pub file: Cow<'a, [u8]>,
    /// The typed options.
    pub options: Options<'a>,
}

impl Default for Repr<'_> {
    fn default() -> Self {
        let z = Ipv4Addr::UNSPECIFIED;
        Repr {
            op: Op::Request,
            htype: 1,
            hlen: 6,
            hops: 0,
            xid: 0,
            secs: 0,
            flags: 0,
            ciaddr: z,
            yiaddr: z,
            siaddr: z,
            giaddr: z,
            chaddr: [0; 16],
            sname: Cow::Borrowed(&[]),
            file: Cow::Borrowed(&[]),
            options: Options::default(),
        }
    }
}

/// The option codes [`Repr`] types, in slot order: parsing collects only these, so the
/// scratch table is small instead of one slot per possible code.
const TYPED: [u8; 28] = [
    code::SUBNET_MASK,
    code::ROUTER,
    code::DNS,
    code::HOSTNAME,
    code::DOMAIN_NAME,
    code::BROADCAST_ADDR,
    code::VENDOR_SPECIFIC,
    code::REQUESTED_IP,
    code::LEASE_TIME,
    code::MESSAGE_TYPE,
    code::SERVER_ID,
    code::PARAMETER_REQUEST_LIST,
    code::MESSAGE,
    code::MAX_MESSAGE_SIZE,
    code::RENEWAL_TIME,
    code::REBINDING_TIME,
    code::VENDOR_CLASS,
    code::CLIENT_ID,
    code::TFTP_SERVER,
    code::BOOTFILE,
    code::USER_CLASS,
    code::RAPID_COMMIT,
    code::RELAY_AGENT,
    code::CLIENT_ARCH,
    code::CLIENT_NDI,
    code::CLIENT_UUID,
    code::SUBNET_SELECTION,
    code::IPXE,
];
const SLOTS: usize = TYPED.len();
const SLOT_OF: [u8; 256] = {
    let mut t = [u8::MAX; 256];
    let mut i = 0;
    while i < SLOTS {
        t[TYPED[i] as usize] = i as u8;
        i += 1;
    }
    t
};

fn slot(c: u8) -> Option<usize> {
    let s = SLOT_OF[usize::from(c)];
    (s != u8::MAX).then_some(usize::from(s))
}

fn until_nul(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |n| &b[..n])
}

/// Appends a fragment to an option slot: the first fragment is borrowed, later ones force an
/// owned concatenation (RFC 3396 §7: fragments join in the order they appear).
fn join<'a>(slot: &mut Option<Cow<'a, [u8]>>, data: &'a [u8]) {
    match slot {
        None => *slot = Some(Cow::Borrowed(data)),
        Some(prev) => prev.to_mut().extend_from_slice(data),
    }
}

fn addr(code: u8, v: &[u8]) -> Result<Ipv4Addr, Error> {
    <[u8; 4]>::try_from(v)
        .map(Ipv4Addr::from)
        .map_err(|_| Error::BadOption(code))
}

fn u32_of(code: u8, v: &[u8]) -> Result<u32, Error> {
    <[u8; 4]>::try_from(v)
        .map(u32::from_be_bytes)
        .map_err(|_| Error::BadOption(code))
}

impl<'a> Repr<'a> {
    /// Parses a checked packet. Option fragments are joined per RFC 3396; an option whose
    /// (joined) value is malformed for its type rejects the packet.
    pub fn parse(packet: &Packet<&'a [u8]>) -> Result<Repr<'a>, Error> {
        let b: &'a [u8] = packet.buffer;
        let p = *packet;
        let op = match p.op() {
            1 => Op::Request,
            2 => Op::Reply,
            _ => return Err(Error::BadHeader),
        };
        if p.hlen() > 16 {
            return Err(Error::BadHeader);
        }
        // Collect raw (joined) values first: a fixed table indexed by option code.
        let mut raw: [Option<Cow<'a, [u8]>>; SLOTS] = [const { None }; SLOTS];
        let mut overload = 0u8;
        for item in RawOptions::new(&b[MIN_LEN..]) {
            let (c, v) = item?;
            if c == code::OVERLOAD {
                overload = *v.first().ok_or(Error::BadOption(c))?;
                if v.len() != 1 || !(1..=3).contains(&overload) {
                    return Err(Error::BadOption(c));
                }
            }
            if let Some(slot) = slot(c) {
                join(&mut raw[slot], v);
            }
        }
        // RFC 2131 §4.1: `file` first, then `sname`. An option 52 inside them is ignored,
        // so a hostile "overload loop" cannot recurse.
        for (bit, range) in [(1, FILE), (2, SNAME)] {
            if overload & bit != 0 {
                for item in RawOptions::new(&b[range]) {
                    let (c, v) = item?;
                    if let Some(slot) = slot(c).filter(|_| c != code::OVERLOAD) {
                        join(&mut raw[slot], v);
                    }
                }
            }
        }
        let mut chaddr = [0u8; 16];
        chaddr.copy_from_slice(p.chaddr());
        let take =
            |c: u8, raw: &mut [Option<Cow<'a, [u8]>>; SLOTS]| slot(c).and_then(|i| raw[i].take());
        let mut o = Options::default();
        if let Some(v) = take(code::MESSAGE_TYPE, &mut raw) {
            let &[t] = &*v else {
                return Err(Error::BadOption(code::MESSAGE_TYPE));
            };
            o.message_type =
                Some(MessageType::from_u8(t).ok_or(Error::BadOption(code::MESSAGE_TYPE))?);
        }
        let a = |c: u8, raw: &mut [Option<Cow<'a, [u8]>>; SLOTS]| {
            take(c, raw).map(|v| addr(c, &v)).transpose()
        };
        o.subnet_mask = a(code::SUBNET_MASK, &mut raw)?;
        o.broadcast_addr = a(code::BROADCAST_ADDR, &mut raw)?;
        o.requested_ip = a(code::REQUESTED_IP, &mut raw)?;
        o.server_id = a(code::SERVER_ID, &mut raw)?;
        o.subnet_selection = a(code::SUBNET_SELECTION, &mut raw)?;
        for (c, slot) in [
            (code::ROUTER, &mut o.routers),
            (code::DNS, &mut o.dns_servers),
        ] {
            if let Some(v) = take(c, &mut raw) {
                *slot = Some(Addrs::from_wire(v).ok_or(Error::BadOption(c))?);
            }
        }
        let n = |c: u8, raw: &mut [Option<Cow<'a, [u8]>>; SLOTS]| {
            take(c, raw).map(|v| u32_of(c, &v)).transpose()
        };
        o.lease_time = n(code::LEASE_TIME, &mut raw)?.map(LeaseTime::from_u32);
        o.renewal_time = n(code::RENEWAL_TIME, &mut raw)?;
        o.rebinding_time = n(code::REBINDING_TIME, &mut raw)?;
        if let Some(v) = take(code::MAX_MESSAGE_SIZE, &mut raw) {
            let &[hi, lo] = &*v else {
                return Err(Error::BadOption(code::MAX_MESSAGE_SIZE));
            };
            o.max_message_size = Some(u16::from_be_bytes([hi, lo]));
        }
        if let Some(v) = take(code::RAPID_COMMIT, &mut raw) {
            if !v.is_empty() {
                return Err(Error::BadOption(code::RAPID_COMMIT));
            }
            o.rapid_commit = true;
        }
        if let Some(v) = take(code::CLIENT_NDI, &mut raw) {
            o.client_ndi =
                Some(<[u8; 3]>::try_from(&*v).map_err(|_| Error::BadOption(code::CLIENT_NDI))?);
        }
        if let Some(v) = take(code::CLIENT_ARCH, &mut raw) {
            if v.is_empty() || !v.len().is_multiple_of(2) {
                return Err(Error::BadOption(code::CLIENT_ARCH));
            }
            o.client_arch = Some(v);
        }
        if let Some(mut v) = take(code::BOOTFILE, &mut raw) {
            let trimmed = v.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
            match &mut v {
                Cow::Borrowed(s) => *s = &s[..trimmed],
                Cow::Owned(s) => s.truncate(trimmed),
            }
            o.bootfile = Some(v);
        }
        o.hostname = take(code::HOSTNAME, &mut raw);
        o.domain_name = take(code::DOMAIN_NAME, &mut raw);
        o.vendor_specific = take(code::VENDOR_SPECIFIC, &mut raw);
        o.parameter_request_list = take(code::PARAMETER_REQUEST_LIST, &mut raw);
        o.message = take(code::MESSAGE, &mut raw);
        o.vendor_class = take(code::VENDOR_CLASS, &mut raw);
        o.client_id = take(code::CLIENT_ID, &mut raw);
        o.tftp_server = take(code::TFTP_SERVER, &mut raw);
        o.user_class = take(code::USER_CLASS, &mut raw);
        o.relay_agent = take(code::RELAY_AGENT, &mut raw);
        o.client_uuid = take(code::CLIENT_UUID, &mut raw);
        o.ipxe = take(code::IPXE, &mut raw);
        Ok(Repr {
            op,
            htype: p.htype(),
            hlen: p.hlen(),
            hops: p.hops(),
            xid: p.xid(),
            secs: p.secs(),
            flags: p.flags(),
            ciaddr: p.ciaddr(),
            yiaddr: p.yiaddr(),
            siaddr: p.siaddr(),
            giaddr: p.giaddr(),
            chaddr,
            sname: if overload & 2 != 0 {
                Cow::Borrowed(&[])
            } else {
                Cow::Borrowed(until_nul(&b[SNAME]))
            },
            file: if overload & 1 != 0 {
                Cow::Borrowed(&[])
            } else {
                Cow::Borrowed(until_nul(&b[FILE]))
            },
            options: o,
        })
    }

    /// Detaches the message from the packet buffer.
    pub fn into_owned(self) -> Repr<'static> {
        Repr {
            op: self.op,
            htype: self.htype,
            hlen: self.hlen,
            hops: self.hops,
            xid: self.xid,
            secs: self.secs,
            flags: self.flags,
            ciaddr: self.ciaddr,
            yiaddr: self.yiaddr,
            siaddr: self.siaddr,
            giaddr: self.giaddr,
            chaddr: self.chaddr,
            sname: Cow::Owned(self.sname.into_owned()),
            file: Cow::Owned(self.file.into_owned()),
            options: self.options.into_owned(),
        }
    }

    /// The meaningful part of `chaddr` (`hlen` bytes, at most 16).
    pub fn hw_addr(&self) -> &[u8] {
        &self.chaddr[..usize::from(self.hlen.min(16))]
    }

    /// Whether the client asked for a broadcast reply.
    pub fn broadcast(&self) -> bool {
        self.flags & FLAG_BROADCAST != 0
    }

    /// Options in emission order: 53 and 54 first (some ROMs look there), 82 last (RFC 3046).
    fn entries(&self) -> Vec<(u8, Cow<'_, [u8]>)> {
        let o = &self.options;
        fn b<'x>(v: &'x Option<Cow<'_, [u8]>>) -> Option<Cow<'x, [u8]>> {
            v.as_deref().map(Cow::Borrowed)
        }
        let ip = |v: Option<Ipv4Addr>| v.map(|a| Cow::Owned(a.octets().to_vec()));
        let be = |v: Option<u32>| v.map(|a| Cow::Owned(a.to_be_bytes().to_vec()));
        let list: [(u8, Option<Cow<'_, [u8]>>); 28] = [
            (
                code::MESSAGE_TYPE,
                o.message_type.map(|t| Cow::Owned(vec![t.to_u8()])),
            ),
            (code::SERVER_ID, ip(o.server_id)),
            (code::LEASE_TIME, be(o.lease_time.map(LeaseTime::to_u32))),
            (code::RENEWAL_TIME, be(o.renewal_time)),
            (code::REBINDING_TIME, be(o.rebinding_time)),
            (code::SUBNET_MASK, ip(o.subnet_mask)),
            (
                code::ROUTER,
                o.routers.as_ref().map(|a| Cow::Borrowed(a.as_bytes())),
            ),
            (
                code::DNS,
                o.dns_servers.as_ref().map(|a| Cow::Borrowed(a.as_bytes())),
            ),
            (code::HOSTNAME, b(&o.hostname)),
            (code::DOMAIN_NAME, b(&o.domain_name)),
            (code::BROADCAST_ADDR, ip(o.broadcast_addr)),
            (code::VENDOR_SPECIFIC, b(&o.vendor_specific)),
            (code::REQUESTED_IP, ip(o.requested_ip)),
            (code::PARAMETER_REQUEST_LIST, b(&o.parameter_request_list)),
            (code::MESSAGE, b(&o.message)),
            (
                code::MAX_MESSAGE_SIZE,
                o.max_message_size
                    .map(|m| Cow::Owned(m.to_be_bytes().to_vec())),
            ),
            (code::VENDOR_CLASS, b(&o.vendor_class)),
            (code::CLIENT_ID, b(&o.client_id)),
            (code::TFTP_SERVER, b(&o.tftp_server)),
            (
                code::BOOTFILE,
                o.bootfile.as_deref().map(|f| {
                    let mut v = f.to_vec();
                    v.push(0);
                    Cow::Owned(v)
                }),
            ),
            (code::USER_CLASS, b(&o.user_class)),
            (
                code::RAPID_COMMIT,
                o.rapid_commit.then_some(Cow::Borrowed(&[][..])),
            ),
            (code::CLIENT_ARCH, b(&o.client_arch)),
            (
                code::CLIENT_NDI,
                o.client_ndi.map(|v| Cow::Owned(v.to_vec())),
            ),
            (code::CLIENT_UUID, b(&o.client_uuid)),
            (code::SUBNET_SELECTION, ip(o.subnet_selection)),
            (code::IPXE, b(&o.ipxe)),
            (code::RELAY_AGENT, b(&o.relay_agent)),
        ];
        list.into_iter()
            .filter_map(|(c, v)| v.map(|v| (c, v)))
            .collect()
    }

    /// Bytes the options take unsplit across regions (each long option as 255-byte fragments).
    fn options_len(entries: &[(u8, Cow<'_, [u8]>)]) -> usize {
        entries
            .iter()
            .map(|(_, v)| frag_len(v.len()))
            .sum::<usize>()
            + 1
    }

    /// The length [`Repr::emit`] writes when the options fit without overload: header,
    /// cookie, options and END, padded to the 300-byte BOOTP minimum.
    pub fn buffer_len(&self) -> usize {
        (MIN_LEN + Self::options_len(&self.entries())).max(BOOTP_MIN_LEN)
    }

    /// Writes the message into `buf` and returns the length used. `buf.len()` is the size
    /// limit (the client's maximum message size): when the options do not fit, they continue
    /// in `file` and then `sname` if those are empty, with option 52 saying so.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.len() < MIN_LEN + 1 {
            return Err(Error::NoSpace(buf.len()));
        }
        if self.sname.len() > 64 || self.file.len() > 128 || self.hlen > 16 {
            return Err(Error::BadHeader);
        }
        let entries = &self.entries()[..];
        let cap = buf.len();
        let wanted = (MIN_LEN + Self::options_len(entries)).max(BOOTP_MIN_LEN);
        let total = wanted.min(cap);
        buf[..total].fill(0);
        let (hdr, opts) = buf.split_at_mut(MIN_LEN);
        hdr[0] = match self.op {
            Op::Request => 1,
            Op::Reply => 2,
        };
        hdr[1] = self.htype;
        hdr[2] = self.hlen;
        hdr[3] = self.hops;
        hdr[4..8].copy_from_slice(&self.xid.to_be_bytes());
        hdr[8..10].copy_from_slice(&self.secs.to_be_bytes());
        hdr[10..12].copy_from_slice(&self.flags.to_be_bytes());
        for (at, a) in [
            (12, self.ciaddr),
            (16, self.yiaddr),
            (20, self.siaddr),
            (24, self.giaddr),
        ] {
            hdr[at..at + 4].copy_from_slice(&a.octets());
        }
        hdr[28..44].copy_from_slice(&self.chaddr);
        hdr[SNAME][..self.sname.len()].copy_from_slice(&self.sname);
        hdr[FILE][..self.file.len()].copy_from_slice(&self.file);
        hdr[236..240].copy_from_slice(&MAGIC_COOKIE);

        if MIN_LEN + Self::options_len(entries) <= cap {
            let mut w = Region { buf: opts, pos: 0 };
            for (c, v) in entries {
                w.put_fragments(*c, v);
            }
            w.buf[w.pos] = code::END;
            return Ok(total);
        }
        // Overload: the options field keeps 3 bytes for option 52 and 1 for END.
        let (sname_free, file_free) = (self.sname.is_empty(), self.file.is_empty());
        let (_, rest) = hdr.split_at_mut(SNAME.start);
        let (sname_buf, rest) = rest.split_at_mut(64);
        let (file_buf, _) = rest.split_at_mut(128);
        let opts_cap = opts.len().min(cap - MIN_LEN);
        let mut regions: [(u8, Region<'_>); 3] = [
            (
                0,
                Region {
                    buf: &mut opts[..opts_cap],
                    pos: 0,
                },
            ),
            (
                1,
                Region {
                    buf: file_buf,
                    pos: 0,
                },
            ),
            (
                2,
                Region {
                    buf: sname_buf,
                    pos: 0,
                },
            ),
        ];
        let usable = |bit: u8| bit == 0 || (bit == 1 && file_free) || (bit == 2 && sname_free);
        let reserve = |bit: u8| if bit == 0 { 4 } else { 1 };
        let mut used = 0u8;
        for (c, v) in entries {
            let chunks: Vec<&[u8]> = if v.is_empty() {
                vec![&[][..]]
            } else {
                v.chunks(255).collect()
            };
            // Fragments of one option must stay in region order (RFC 3396 joins options, then
            // file, then sname), so each fragment searches from where the previous one went.
            let mut from = 0;
            for chunk in chunks {
                // First fit: a later, smaller option may still fill a gap in an earlier region.
                let (i, (bit, region)) = regions
                    .iter_mut()
                    .enumerate()
                    .skip(from)
                    .find(|(_, (bit, region))| {
                        usable(*bit) && region.room() >= chunk.len() + 2 + reserve(*bit)
                    })
                    .ok_or(Error::NoSpace(cap))?;
                region.put(*c, chunk);
                used |= *bit;
                from = i;
            }
        }
        let opts_region = &mut regions[0].1;
        let at = opts_region.pos;
        opts_region.buf[at..at + 4].copy_from_slice(&[code::OVERLOAD, 1, used, code::END]);
        for (bit, region) in &mut regions[1..] {
            if used & *bit != 0 {
                let at = region.pos;
                region.buf[at] = code::END;
            }
        }
        Ok((MIN_LEN + at + 4).max(BOOTP_MIN_LEN).min(cap))
    }
}

/// Wire bytes of an option of `len` value bytes, split into 255-byte fragments (RFC 3396).
fn frag_len(len: usize) -> usize {
    if len == 0 {
        2
    } else {
        len + 2 * len.div_ceil(255)
    }
}

struct Region<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl Region<'_> {
    fn room(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn put(&mut self, c: u8, v: &[u8]) {
        let at = self.pos;
        self.buf[at] = c;
        self.buf[at + 1] = v.len() as u8;
        self.buf[at + 2..at + 2 + v.len()].copy_from_slice(v);
        self.pos += 2 + v.len();
    }
    fn put_fragments(&mut self, c: u8, v: &[u8]) {
        if v.is_empty() {
            self.put(c, v);
        }
        for chunk in v.chunks(255) {
            self.put(c, chunk);
        }
    }
}

#[cfg(test)]
mod tests;

//! The storm's network: one server namespace holding a bridge (the farm LAN, 198.18.0.1/22)
//! and a few rack namespaces, each joined to the bridge by a veth pair. Nodes in a rack share
//! the rack's interface but each has its own MAC (in `chaddr`) and, once leased, its own
//! address on that interface, so the servers see distinct clients on one broadcast domain.
//!
//! Everything lives in namespaces created here; dropping the [`Lab`] deletes them, which
//! also removes the veths and the bridge.

use netboot_testkit::{Netns, ip};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketType};
use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// The servers' address on the bridge.
pub const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// Prefix length of the farm LAN (198.18.0.0/22: the pool is 198.18.1.1–198.18.3.254).
pub const PREFIX: u8 = 22;
/// First and last pool address handed to nodes by both stacks.
pub const POOL: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 1, 1), Ipv4Addr::new(198, 18, 3, 254)];
/// How many nodes the pool can hold (with room for a second lease per node to spare).
pub const MAX_NODES: usize = 700;

/// One rack: a namespace and the interface its nodes share.
#[derive(Debug)]
pub struct Rack {
    /// The namespace.
    pub ns: Netns,
    /// The rack's veth end (inside `ns`).
    pub ifname: String,
}

impl Rack {
    /// The namespace's bind-mounted file, for `setns`.
    pub fn ns_path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(self.ns.name())
    }
}

/// The server namespace, its bridge and the racks.
#[derive(Debug)]
pub struct Lab {
    /// Where the servers run.
    pub server: Netns,
    /// The bridge (the servers' interface).
    pub bridge: String,
    /// The racks (dropped before `server`, so their veths go first).
    pub racks: Vec<Rack>,
}

impl Lab {
    /// Builds the server namespace with its bridge and `racks` rack namespaces.
    pub fn new(racks: usize) -> Lab {
        let server = Netns::new("storm");
        let stem = Netns::unique_ifname();
        let bridge = format!("{stem}br");
        let s = server.name().to_owned();
        ip(&[
            "-n",
            &s,
            "link",
            "add",
            &bridge,
            "type",
            "bridge",
            "forward_delay",
            "0",
        ]);
        let cidr = format!("{SERVER}/{PREFIX}");
        ip(&["-n", &s, "addr", "add", &cidr, "dev", &bridge]);
        ip(&["-n", &s, "link", "set", &bridge, "up"]);
        let mut lab = Lab {
            server,
            bridge,
            racks: Vec::new(),
        };
        for r in 0..racks {
            let ns = Netns::new(&format!("stormr{r}"));
            let (sif, rif) = (format!("{stem}s{r}"), format!("{stem}r{r}"));
            // Owned by `lab` before the link exists, so a failure below still cleans up.
            lab.racks.push(Rack {
                ns,
                ifname: rif.clone(),
            });
            let rack_ns = lab.racks[r].ns.name().to_owned();
            ip(&[
                "link", "add", &sif, "netns", &s, "type", "veth", "peer", "name", &rif, "netns",
                &rack_ns,
            ]);
            ip(&["-n", &s, "link", "set", &sif, "master", &lab.bridge]);
            ip(&["-n", &s, "link", "set", &sif, "up"]);
            ip(&["-n", &rack_ns, "link", "set", &rif, "up"]);
        }
        lab
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Racks first: their veth peers sit on the bridge in the server namespace.
        self.racks.clear();
    }
}

/// Moves the calling thread into the network namespace bind-mounted at `path`. Only this
/// thread moves: sockets it creates afterwards live in that namespace.
pub fn enter(path: &std::path::Path) -> io::Result<()> {
    let f = std::fs::File::open(path)?;
    rustix::thread::move_into_link_name_space(
        std::os::fd::AsFd::as_fd(&f),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )?;
    Ok(())
}

/// The index of interface `name` in the calling thread's namespace.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let fd = rustix::net::socket(AddressFamily::INET, SocketType::DGRAM, None)?;
    Ok(rustix::net::netdevice::name_to_index(&fd, name)?)
}

/// Adds `addr/prefix` to interface `index` (in the calling thread's namespace) with one
/// rtnetlink RTM_NEWADDR, as a booting node's network stack configures its lease. An address
/// already present is fine (a node leased the same address twice).
pub fn add_address(index: u32, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
    const RTM_NEWADDR: u16 = 20;
    const NLM_F_REQUEST: u16 = 0x1;
    const NLM_F_ACK: u16 = 0x4;
    const NLM_F_EXCL: u16 = 0x200;
    const NLM_F_CREATE: u16 = 0x400;
    const NLMSG_ERROR: u16 = 2;
    const IFA_ADDRESS: u16 = 1;
    const IFA_LOCAL: u16 = 2;
    const EEXIST: i32 = 17;
    let fd = rustix::net::socket(AddressFamily::NETLINK, SocketType::RAW, None)?;
    // nlmsghdr (16) + ifaddrmsg (8) + two 8-byte IPv4 attributes, all in host byte order
    // except the address itself.
    let mut msg = Vec::with_capacity(40);
    msg.extend_from_slice(&40u32.to_ne_bytes());
    msg.extend_from_slice(&RTM_NEWADDR.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    msg.extend_from_slice(&[2, prefix, 0, 0]); // AF_INET, prefix, flags, scope universe
    msg.extend_from_slice(&index.to_ne_bytes());
    for kind in [IFA_LOCAL, IFA_ADDRESS] {
        msg.extend_from_slice(&8u16.to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&addr.octets());
    }
    rustix::net::send(&fd, &msg, SendFlags::empty())?;
    let mut buf = [0u8; 256];
    let (_, n) = rustix::net::recv(&fd, &mut buf[..], RecvFlags::empty())?;
    let ty = buf.get(4..6).map(|b| u16::from_ne_bytes([b[0], b[1]]));
    let err = buf
        .get(16..20)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    match (n >= 20, ty, err) {
        (true, Some(NLMSG_ERROR), Some(0)) => Ok(()),
        (true, Some(NLMSG_ERROR), Some(e)) if -e == EEXIST => Ok(()),
        (true, Some(NLMSG_ERROR), Some(e)) => Err(io::Error::from_raw_os_error(-e)),
        _ => Err(io::Error::other("unexpected rtnetlink answer")),
    }
}

//! The server's UDP sockets: one per port on 0.0.0.0 with `SO_BROADCAST` and `IP_PKTINFO`.
//!
//! `IP_PKTINFO` tells, for every datagram, the interface it came in on and our address there
//! (the address a reply should come from: option 54, and what picks the subnet of a client
//! that is not relayed). Replies carry the same control message back, so a broadcast or a
//! unicast to a client without an address leaves by the interface the request came in on,
//! from the right source. One socket serves every interface; which interfaces are served is a
//! filter on the arrival interface ([`super::Links`]). Per-interface sockets with
//! `SO_BINDTODEVICE` would do the same filtering in the kernel, at the price of a socket and
//! a thread per interface; the filter costs one hash lookup per datagram, so one socket it is.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use anyhow::Context;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, recvmsg, sendmsg, setsockopt,
    sockopt,
};
use socket2::{Domain, Protocol, Socket, Type};

/// A datagram's size and where it came from.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// Bytes in the buffer.
    pub len: usize,
    /// The sender.
    pub src: SocketAddrV4,
    /// The interface it arrived on.
    pub ifindex: u32,
    /// Our address on that interface (or the address it was sent to, if unicast).
    pub local: Ipv4Addr,
}

/// A UDP socket on 0.0.0.0:`port`.
pub struct PortSocket {
    sock: UdpSocket,
    /// The local port.
    pub port: u16,
}

impl PortSocket {
    /// Binds 0.0.0.0:`port` with SO_BROADCAST and IP_PKTINFO; receives time out after a
    /// second so the caller can look at its shutdown flag.
    pub fn bind(port: u16) -> anyhow::Result<PortSocket> {
        let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_address(true)?;
        s.set_broadcast(true)?;
        // Room for a burst of clients while the engine or the journal is busy.
        let _ = s.set_recv_buffer_size(4 << 20);
        let _ = s.set_send_buffer_size(4 << 20);
        s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)).into())
            .with_context(|| format!("binding 0.0.0.0:{port}"))?;
        let sock: UdpSocket = s.into();
        setsockopt(&sock, sockopt::Ipv4PacketInfo, &true).context("IP_PKTINFO")?;
        sock.set_read_timeout(Some(Duration::from_secs(1)))?;
        Ok(PortSocket { sock, port })
    }

    /// Receives one datagram into `buf`; `wait = false` returns `Ok(None)` at once when none
    /// is queued, `wait = true` after the one-second timeout.
    pub fn recv(&self, buf: &mut [u8], wait: bool) -> io::Result<Option<Received>> {
        let mut cmsg = nix::cmsg_space!(nix::libc::in_pktinfo);
        let mut iov = [IoSliceMut::new(buf)];
        let flags = if wait {
            MsgFlags::empty()
        } else {
            MsgFlags::MSG_DONTWAIT
        };
        let msg =
            match recvmsg::<SockaddrIn>(self.sock.as_raw_fd(), &mut iov, Some(&mut cmsg), flags) {
                Ok(m) => m,
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
        let Some(src) = msg.address else {
            return Ok(None);
        };
        let (mut ifindex, mut local) = (0, Ipv4Addr::UNSPECIFIED);
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::Ipv4PacketInfo(pi) = c {
                    ifindex = u32::try_from(pi.ipi_ifindex).unwrap_or(0);
                    local = Ipv4Addr::from(u32::from_be(pi.ipi_spec_dst.s_addr));
                }
            }
        }
        Ok(Some(Received {
            len: msg.bytes,
            src: SocketAddrV4::new(src.ip(), src.port()),
            ifindex,
            local,
        }))
    }

    /// Sends `bytes` to `to` from `local`; out of interface `ifindex` when it is not 0
    /// (broadcasts, and clients reached before they have an address), else where the
    /// routing table says (relays and configured clients).
    pub fn send(
        &self,
        bytes: &[u8],
        to: SocketAddrV4,
        ifindex: u32,
        local: Ipv4Addr,
    ) -> io::Result<()> {
        let info = nix::libc::in_pktinfo {
            ipi_ifindex: i32::try_from(ifindex).unwrap_or(0),
            ipi_spec_dst: nix::libc::in_addr {
                s_addr: u32::from(local).to_be(),
            },
            ipi_addr: nix::libc::in_addr { s_addr: 0 },
        };
        let cmsg = [ControlMessage::Ipv4PacketInfo(&info)];
        let dst = SockaddrIn::from(to);
        sendmsg(
            self.sock.as_raw_fd(),
            &[IoSlice::new(bytes)],
            &cmsg,
            MsgFlags::empty(),
            Some(&dst),
        )?;
        Ok(())
    }
}

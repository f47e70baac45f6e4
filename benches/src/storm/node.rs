//! One simulated node: what its firmware and initramfs put on the wire, built with our own
//! crates' wire types acting as the client side.
//!
//! 1. DHCP as the PXE firmware (DISCOVER/OFFER/REQUEST/ACK; options 93, 60 `PXEClient`, 55,
//!    57, 94, 97), then the lease goes on the rack interface (rtnetlink);
//! 2. TFTP of the boot file the server named: OVMF's sequence for architecture 7, iPXE's
//!    (`blksize 1432, tsize 0`, lockstep) for architecture 0;
//! 3. DHCP again as iPXE / the boot loader (adds 77 `iPXE` and 175 feature flags);
//! 4. TFTP of the kernel and the initramfs with OVMF's sequence: RRQ `tsize 0, blksize 1468,
//!    windowsize 4`, ERROR 8 after the OACK, then the real RRQ `blksize 1468, windowsize 4`
//!    from a new port (`shared/research/tftp.md` §5);
//! 5. NBD_TO_RAM: fixed-newstyle handshake with `NBD_OPT_GO`, then READ of the whole export
//!    in 256 KiB requests with a few in flight.
//!
//! Every byte received is compared with the file it should be; any difference fails the node.
//! Timers follow the firmware: DHCP retransmits after 4, 8, 16, 32 s (EDK2 PxeBc, the PXE
//! spec) or 1, 2, 4, 8 s (iPXE); TFTP waits 4 s per packet and gives up after 6 tries.
//! Neither firmware's wait for further offers (EDK2's offer collection, iPXE's ProxyDHCP
//! wait) is modelled: the first OFFER is taken at once, on both stacks alike.

use netboot_dhcp::wire as dhcp;
use netboot_nbd::wire as nbd;
use netboot_tftp::wire as tftp;
use socket2::{Domain, Protocol, Socket, Type};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use super::lab;

/// Set by the signal handler: every loop checks it and gives up.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// The files a node fetches, by the name it asks for, and the NBD image.
#[derive(Debug)]
pub struct Payload {
    /// TFTP path → bytes.
    pub tftp: HashMap<String, Vec<u8>>,
    /// The NBD export's bytes.
    pub image: Vec<u8>,
}

/// TFTP paths of the farm's layout (`examples/farm/build.sh`).
pub const KERNEL: &str = "boot/vmlinuz";
/// The initramfs.
pub const INITRD: &str = "boot/initrd.img";
/// GRUB's PXE image for BIOS.
pub const CORE_BIOS: &str = "boot/grub/i386-pc/core.0";
/// GRUB's EFI image for architecture 7.
pub const CORE_EFI: &str = "boot/grub/x86_64-efi/core.efi";
/// The NBD export name (grub.cfg's `nbdroot=…/root`).
pub const EXPORT: &str = "root";
/// NBD port.
pub const NBD_PORT: u16 = 10809;

/// One node to boot.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Node number (0-based), for messages and unique `xid`s.
    pub index: usize,
    /// The NIC's MAC.
    pub mac: [u8; 6],
    /// DHCP client architecture: 0 (BIOS) or 7 (UEFI x64).
    pub arch: u16,
    /// The rack namespace's file under /run/netns.
    pub ns_path: PathBuf,
    /// The rack interface.
    pub ifname: String,
    /// Simulated loss on the LAN, per million datagrams: DHCP answers and TFTP datagrams in
    /// both directions are dropped at random (seeded per node), so both stacks' timers and
    /// our clients' retransmissions get exercised. 0 = the veth's own (no) loss.
    pub loss_ppm: u32,
}

/// What happened to one node.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Time in DHCP (both exchanges).
    pub dhcp: Duration,
    /// Time in TFTP (boot file, kernel, initramfs; the OVMF probes included).
    pub tftp: Duration,
    /// Time in NBD (connect, handshake, whole-image read).
    pub nbd: Duration,
    /// Power-on to the image in RAM.
    pub total: Duration,
    /// DHCP retransmissions (timeouts, NAK restarts).
    pub dhcp_retries: u32,
    /// TFTP retransmissions (timeouts).
    pub tftp_retries: u32,
    /// Why it did not boot.
    pub error: Option<String>,
}

type Res<T> = Result<T, String>;

/// Boots one node on the calling thread: moves into the rack namespace, waits at `start`
/// with every other node (power-on), then runs the whole sequence within `limit`.
pub fn boot(spec: &Spec, payload: &Payload, start: &Barrier, limit: Duration) -> Outcome {
    let setup = lab::enter(&spec.ns_path)
        .map_err(|e| format!("setns: {e}"))
        .and_then(|()| {
            let index = lab::ifindex(&spec.ifname).map_err(|e| format!("ifindex: {e}"))?;
            Ok((index, dhcp_socket(&spec.ifname)?))
        });
    // Every node reaches the barrier, also one whose setup failed: the others wait for it.
    start.wait();
    let mut out = Outcome::default();
    let t0 = Instant::now();
    let res = setup.and_then(|(index, sock)| {
        let mut node = Node {
            spec,
            payload,
            out: &mut out,
            deadline: t0 + limit,
            rng: 0x2545_f491_4f6c_dd1d
                ^ (spec.index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        };
        node.run(index, sock)
    });
    out.total = t0.elapsed();
    if let Err(e) = res {
        out.error = Some(format!("node {} ({}): {e}", spec.index, mac_str(&spec.mac)));
    }
    out
}

fn mac_str(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

struct Node<'a> {
    spec: &'a Spec,
    payload: &'a Payload,
    out: &'a mut Outcome,
    deadline: Instant,
    /// xorshift state for the simulated loss.
    rng: u64,
}

/// Which client is speaking DHCP.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dhcp {
    /// The firmware's PXE client.
    Firmware,
    /// iPXE (or the boot loader it runs).
    Ipxe,
}

/// A lease as the node uses it.
struct Lease {
    addr: Ipv4Addr,
    /// Next server (siaddr), else the server identifier.
    tftp_server: Ipv4Addr,
    bootfile: String,
}

/// How a TFTP transfer is requested.
#[derive(Clone, Copy)]
enum Tftp {
    /// OVMF: probe for `tsize`, abort with ERROR 8, fetch with `blksize 1468, windowsize 4`.
    Ovmf,
    /// iPXE: one RRQ `blksize 1432, tsize 0`, lockstep.
    Ipxe,
}

impl Node<'_> {
    fn run(&mut self, index: u32, sock: UdpSocket) -> Res<()> {
        let t = Instant::now();
        let lease = self.dhcp(&sock, Dhcp::Firmware)?;
        // Firmware keeps polling its NIC and throws away other clients' broadcasts; a socket
        // left unread during the transfers would instead fill with them and drop our own
        // answers later. So the firmware's socket closes here and iPXE opens its own.
        drop(sock);
        self.out.dhcp += t.elapsed();
        lab::add_address(index, lease.addr, lab::PREFIX)
            .map_err(|e| format!("adding {}: {e}", lease.addr))?;

        let t = Instant::now();
        let style = if self.spec.arch == 7 {
            Tftp::Ovmf
        } else {
            Tftp::Ipxe
        };
        let want = if self.spec.arch == 7 {
            CORE_EFI
        } else {
            CORE_BIOS
        };
        if lease.bootfile != want {
            return Err(format!(
                "architecture {} was offered boot file {:?}, expected {want:?}",
                self.spec.arch, lease.bootfile
            ));
        }
        self.tftp_get(lease.addr, lease.tftp_server, want, style)?;
        self.out.tftp += t.elapsed();

        let t = Instant::now();
        let lease2 = self.dhcp(&dhcp_socket(&self.spec.ifname)?, Dhcp::Ipxe)?;
        self.out.dhcp += t.elapsed();
        if lease2.addr != lease.addr {
            lab::add_address(index, lease2.addr, lab::PREFIX)
                .map_err(|e| format!("adding {}: {e}", lease2.addr))?;
        }

        let t = Instant::now();
        for file in [KERNEL, INITRD] {
            self.tftp_get(lease2.addr, lease2.tftp_server, file, Tftp::Ovmf)?;
        }
        self.out.tftp += t.elapsed();

        let t = Instant::now();
        // The NBD server is the one grub.cfg's `nbdroot=` names, not a DHCP answer.
        self.nbd_to_ram(lease2.addr, lab::SERVER)?;
        self.out.nbd += t.elapsed();
        Ok(())
    }

    /// Whether the simulated LAN loses this datagram.
    fn lost(&mut self) -> bool {
        if self.spec.loss_ppm == 0 {
            return false;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % 1_000_000) < u64::from(self.spec.loss_ppm)
    }

    fn check(&self) -> Res<()> {
        if STOP.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        if Instant::now() >= self.deadline {
            return Err("time limit reached".into());
        }
        Ok(())
    }

    // ---------------------------------------------------------------- DHCP

    fn dhcp(&mut self, sock: &UdpSocket, who: Dhcp) -> Res<Lease> {
        let mut secs_start = Instant::now();
        // A NAK restarts from DISCOVER, as both firmwares do; bounded. (dnsmasq may offer
        // one address to several clients at once and NAK all but the first REQUEST.)
        for round in 0..DHCP_ROUNDS {
            // A fresh xid per exchange, unique per node: node index in the high bits.
            let stage = if who == Dhcp::Firmware { 0 } else { 0x80 };
            let xid = ((self.spec.index as u32) << 8) | stage | round;
            let offer = self.exchange(
                sock,
                who,
                xid,
                dhcp::MessageType::Discover,
                None,
                secs_start,
            )?;
            let server_id = offer
                .options
                .server_id
                .ok_or("OFFER without a server identifier")?;
            let ack = self.exchange(
                sock,
                who,
                xid,
                dhcp::MessageType::Request,
                Some((offer.yiaddr, server_id)),
                secs_start,
            )?;
            if ack.options.message_type == Some(dhcp::MessageType::Nak) {
                self.out.dhcp_retries += 1;
                secs_start = Instant::now();
                continue;
            }
            let bootfile = match ack.options.bootfile.as_deref() {
                Some(f) if !f.is_empty() => f,
                _ => &ack.file[..],
            };
            let tftp_server = if ack.siaddr.is_unspecified() {
                server_id
            } else {
                ack.siaddr
            };
            return Ok(Lease {
                addr: ack.yiaddr,
                tftp_server,
                bootfile: String::from_utf8_lossy(bootfile).into_owned(),
            });
        }
        Err(format!("DHCP NAKed {DHCP_ROUNDS} times"))
    }

    /// Sends a DISCOVER (or REQUEST for `offered` from `server`) and waits for the matching
    /// OFFER (or ACK/NAK), retransmitting on the firmware's schedule.
    fn exchange(
        &mut self,
        sock: &UdpSocket,
        who: Dhcp,
        xid: u32,
        kind: dhcp::MessageType,
        offered: Option<(Ipv4Addr, Ipv4Addr)>,
        secs_start: Instant,
    ) -> Res<dhcp::Repr<'static>> {
        let timeouts: &[u64] = match who {
            Dhcp::Firmware => &[4, 8, 16, 32],
            Dhcp::Ipxe => &[1, 2, 4, 8],
        };
        let mut buf = [0u8; 1500];
        for (attempt, &secs) in timeouts.iter().enumerate() {
            if attempt > 0 {
                self.out.dhcp_retries += 1;
            }
            let msg = self.message(who, xid, kind, offered, secs_start);
            let mut out = vec![0u8; msg.buffer_len()];
            let n = msg.emit(&mut out).map_err(|e| format!("emit: {e}"))?;
            let bcast = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
            sock.send_to(&out[..n], bcast)
                .map_err(|e| format!("DHCP send: {e}"))?;
            let until = Instant::now() + Duration::from_secs(secs);
            while self.wait_until(until)? {
                let Ok(n) = sock.recv(&mut buf) else {
                    continue;
                };
                let Ok(packet) = dhcp::Packet::new_checked(&buf[..n]) else {
                    continue;
                };
                let Ok(reply) = dhcp::Repr::parse(&packet) else {
                    continue;
                };
                let wanted = match kind {
                    dhcp::MessageType::Discover => &[dhcp::MessageType::Offer][..],
                    _ => &[dhcp::MessageType::Ack, dhcp::MessageType::Nak][..],
                };
                if reply.op == dhcp::Op::Reply
                    && reply.xid == xid
                    && reply.chaddr[..6] == self.spec.mac
                    && reply
                        .options
                        .message_type
                        .is_some_and(|t| wanted.contains(&t))
                    && !self.lost()
                {
                    return Ok(reply.into_owned());
                }
            }
        }
        Err(format!(
            "no DHCP answer to {kind:?} after {} tries",
            timeouts.len()
        ))
    }

    /// Whether `until` is still ahead; errors on stop or deadline. Sockets wake up every
    /// [`POLL`] at the latest, so timers fire that late at most.
    fn wait_until(&self, until: Instant) -> Res<bool> {
        self.check()?;
        Ok(Instant::now() < until)
    }

    fn message(
        &self,
        who: Dhcp,
        xid: u32,
        kind: dhcp::MessageType,
        offered: Option<(Ipv4Addr, Ipv4Addr)>,
        secs_start: Instant,
    ) -> dhcp::Repr<'static> {
        let arch = self.spec.arch;
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&self.spec.mac);
        let mut uuid = vec![0u8; 17];
        uuid[1..9].copy_from_slice(&(self.spec.index as u64).to_be_bytes());
        uuid[9..].copy_from_slice(&0x5354_4f52_4d00_0000u64.to_be_bytes());
        let undi = if arch == 7 { "003016" } else { "002001" };
        let vendor = format!("PXEClient:Arch:{arch:05}:UNDI:{undi}");
        let prl: &[u8] = match who {
            // EDK2's PxeBc list (subnet, router, DNS, host and domain names, vendor info,
            // lease and server id, class, boot file, UUID, PXE 128–135).
            Dhcp::Firmware => &[
                1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54, 58,
                59, 60, 66, 67, 97, 128, 129, 130, 131, 132, 133, 134, 135,
            ],
            // iPXE's list, including its own 175 and 203.
            Dhcp::Ipxe => &[
                1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131, 132, 133, 134,
                135, 175, 203,
            ],
        };
        let mut options = dhcp::Options {
            message_type: Some(kind),
            parameter_request_list: Some(Cow::Owned(prl.to_vec())),
            max_message_size: Some(1472),
            vendor_class: Some(Cow::Owned(vendor.into_bytes())),
            client_arch: Some(Cow::Owned(arch.to_be_bytes().to_vec())),
            client_ndi: Some([1, 3, 16]),
            client_uuid: Some(Cow::Owned(uuid)),
            ..Default::default()
        };
        if who == Dhcp::Ipxe {
            options.user_class = Some(Cow::Borrowed(&b"iPXE"[..]));
            // 175 sub-options as iPXE sends them: HTTP, menu, and PXE + bzImage (BIOS
            // build) or EFI (UEFI build), each `code, 1, 1`.
            let feats: &[u8] = if arch == 7 {
                &[19, 1, 1, 36, 1, 1, 39, 1, 1]
            } else {
                &[19, 1, 1, 24, 1, 1, 33, 1, 1, 39, 1, 1]
            };
            options.ipxe = Some(Cow::Borrowed(feats));
        }
        if let Some((ip, server)) = offered {
            options.requested_ip = Some(ip);
            options.server_id = Some(server);
        }
        dhcp::Repr {
            op: dhcp::Op::Request,
            xid,
            secs: secs_start.elapsed().as_secs().min(u64::from(u16::MAX)) as u16,
            // No address yet: ask for broadcast answers (RFC 2131 §4.1), which every node
            // behind the shared rack interface can receive.
            flags: dhcp::FLAG_BROADCAST,
            chaddr,
            options,
            ..Default::default()
        }
    }

    // ---------------------------------------------------------------- TFTP

    fn tftp_get(&mut self, local: Ipv4Addr, server: Ipv4Addr, name: &str, style: Tftp) -> Res<()> {
        let expect = self
            .payload
            .tftp
            .get(name)
            .ok_or_else(|| format!("no local copy of {name}"))?;
        let server = SocketAddr::V4(SocketAddrV4::new(server, 69));
        let opts = match style {
            Tftp::Ovmf => {
                let probe = tftp::Options {
                    tsize: Some(0),
                    blksize: Some(1468),
                    windowsize: Some(4),
                    ..Default::default()
                };
                let size = self.tsize_probe(local, server, name, probe)?;
                if size != Some(expect.len() as u64) {
                    return Err(format!(
                        "{name}: tsize {size:?}, file has {} bytes",
                        expect.len()
                    ));
                }
                tftp::Options {
                    blksize: Some(1468),
                    windowsize: Some(4),
                    ..Default::default()
                }
            }
            Tftp::Ipxe => tftp::Options {
                blksize: Some(1432),
                tsize: Some(0),
                ..Default::default()
            },
        };
        self.tftp_fetch(local, server, name, opts, expect)
            .map_err(|e| format!("TFTP {name}: {e}"))
    }

    fn udp_socket(&self, local: Ipv4Addr) -> Res<UdpSocket> {
        let s = UdpSocket::bind(SocketAddrV4::new(local, 0))
            .map_err(|e| format!("bind {local}: {e}"))?;
        s.set_read_timeout(Some(POLL)).map_err(|e| e.to_string())?;
        Ok(s)
    }

    /// OVMF's first request: asks for the size, reads it from the OACK and aborts with
    /// ERROR 8 as EDK2 does.
    fn tsize_probe(
        &mut self,
        local: Ipv4Addr,
        server: SocketAddr,
        name: &str,
        opts: tftp::Options,
    ) -> Res<Option<u64>> {
        let sock = self.udp_socket(local)?;
        let rrq = rrq(name, &opts)?;
        let mut buf = vec![0u8; 2048];
        for attempt in 0..TFTP_TRIES {
            if attempt > 0 {
                self.out.tftp_retries += 1;
            }
            sock.send_to(&rrq, server).map_err(|e| e.to_string())?;
            let until = Instant::now() + TFTP_TIMEOUT;
            while self.wait_until(until)? {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if self.lost() {
                    continue;
                }
                match tftp::Repr::parse(&buf[..n]) {
                    Ok(tftp::Repr::Oack(list)) => {
                        let o = tftp::Options::from_oack(&list)
                            .map_err(|e| format!("{name}: bad OACK: {e}"))?;
                        let mut err = [0u8; 64];
                        let len = tftp::emit_error(
                            &mut err,
                            tftp::ErrorCode::OPTION_REFUSED,
                            "User aborted the transfer",
                        );
                        sock.send_to(&err[..len], from).map_err(|e| e.to_string())?;
                        return Ok(o.tsize);
                    }
                    Ok(tftp::Repr::Error { code, message }) => {
                        return Err(format!(
                            "{name}: ERROR {} {:?} to the probe",
                            code.0,
                            String::from_utf8_lossy(message)
                        ));
                    }
                    // A server that ignores options starts sending: abort it the same way.
                    Ok(tftp::Repr::Data { .. }) => {
                        let mut err = [0u8; 64];
                        let len = tftp::emit_error(&mut err, tftp::ErrorCode::OPTION_REFUSED, "");
                        sock.send_to(&err[..len], from).map_err(|e| e.to_string())?;
                        return Ok(None);
                    }
                    _ => {}
                }
            }
        }
        Err(format!("{name}: no answer to the tsize probe"))
    }

    /// Downloads `name`, comparing every block with `expect`. A windowed receiver per RFC
    /// 7440: ACK the last block of each window, re-ACK the last in-order block on a gap or
    /// when the server repeats it, re-send the last ACK (or the RRQ) on timeout.
    fn tftp_fetch(
        &mut self,
        local: Ipv4Addr,
        server: SocketAddr,
        name: &str,
        opts: tftp::Options,
        expect: &[u8],
    ) -> Res<()> {
        let sock = self.udp_socket(local)?;
        let rrq = rrq(name, &opts)?;
        let mut buf = vec![0u8; 65536];
        // What to send again on timeout: the RRQ until the server answers, then the last ACK.
        let mut last_sent = rrq.clone();
        let mut peer: Option<SocketAddr> = None;
        let (mut blksize, mut window) = (usize::from(tftp::DEFAULT_BLKSIZE), 1usize);
        let mut next: u64 = 1; // next block expected
        let mut offset = 0usize;
        let mut in_window = 0usize;
        let mut gap_acked = false;
        sock.send_to(&rrq, server).map_err(|e| e.to_string())?;
        let mut tries = 0;
        let mut until = Instant::now() + TFTP_TIMEOUT;
        loop {
            if !self.wait_until(until)? {
                tries += 1;
                if tries >= TFTP_TRIES {
                    return Err(format!("timed out at block {next}"));
                }
                self.out.tftp_retries += 1;
                match peer {
                    Some(_) => sock.send(&last_sent),
                    None => sock.send_to(&last_sent, server),
                }
                .map_err(|e| e.to_string())?;
                until = Instant::now() + TFTP_TIMEOUT;
                continue;
            }
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            if self.lost() {
                continue;
            }
            if peer.is_none() {
                // The server's transfer port: from now on the kernel drops anything else.
                sock.connect(from)
                    .map_err(|e| format!("connect {from}: {e}"))?;
                peer = Some(from);
            } else if peer != Some(from) {
                continue;
            }
            let ack = |block: u64| {
                let mut a = [0u8; 4];
                let _ = tftp::Repr::Ack {
                    block: block as u16,
                }
                .emit(&mut a);
                a.to_vec()
            };
            match tftp::Repr::parse(&buf[..n]) {
                Ok(tftp::Repr::Oack(list)) if next == 1 && offset == 0 => {
                    let o =
                        tftp::Options::from_oack(&list).map_err(|e| format!("bad OACK: {e}"))?;
                    blksize = usize::from(o.blksize.unwrap_or(tftp::DEFAULT_BLKSIZE));
                    window = usize::from(o.windowsize.unwrap_or(1));
                    if blksize > usize::from(opts.blksize.unwrap_or(tftp::DEFAULT_BLKSIZE)) {
                        return Err(format!("OACK blksize {blksize} above the request"));
                    }
                    if o.tsize.is_some_and(|t| t != expect.len() as u64) {
                        return Err(format!(
                            "OACK tsize {:?}, file has {}",
                            o.tsize,
                            expect.len()
                        ));
                    }
                    last_sent = ack(0);
                }
                Ok(tftp::Repr::Data { block, data }) => {
                    if block == next as u16 {
                        let end = offset + data.len();
                        if end > expect.len() || expect[offset..end] != *data {
                            return Err(format!("block {next} differs from the file"));
                        }
                        offset = end;
                        next += 1;
                        in_window += 1;
                        gap_acked = false;
                        tries = 0;
                        until = Instant::now() + TFTP_TIMEOUT;
                        if data.len() < blksize {
                            if !self.lost() {
                                sock.send(&ack(next - 1)).map_err(|e| e.to_string())?;
                            }
                            if offset != expect.len() {
                                return Err(format!(
                                    "ended after {offset} of {} bytes",
                                    expect.len()
                                ));
                            }
                            return Ok(());
                        }
                        if in_window < window {
                            continue;
                        }
                    } else if block.wrapping_sub(next as u16) < 0x8000 {
                        // A block is missing: say where we are, once per gap.
                        if std::mem::replace(&mut gap_acked, true) {
                            continue;
                        }
                    } else if block != (next - 1) as u16 {
                        // An older block of a window the server is repeating: its last
                        // block (the one we acknowledged) gets the answer.
                        continue;
                    }
                    in_window = 0;
                    last_sent = ack(next - 1);
                }
                Ok(tftp::Repr::Error { code, message }) => {
                    return Err(format!(
                        "ERROR {} {:?}",
                        code.0,
                        String::from_utf8_lossy(message)
                    ));
                }
                _ => continue,
            }
            if !self.lost() {
                sock.send(&last_sent).map_err(|e| e.to_string())?;
            }
        }
    }

    // ---------------------------------------------------------------- NBD

    /// Fills `buf` from the connection; fails when the server closes it, stays silent for
    /// [`NBD_TIMEOUT`], or the storm is stopped.
    fn read_full(&self, s: &mut TcpStream, buf: &mut [u8], what: &str) -> Res<()> {
        use std::io::ErrorKind::{Interrupted, TimedOut, WouldBlock};
        let (mut got, mut heard) = (0, Instant::now());
        while got < buf.len() {
            match s.read(&mut buf[got..]) {
                Ok(0) => return Err(format!("NBD {what}: server closed the connection")),
                Ok(n) => (got, heard) = (got + n, Instant::now()),
                Err(e) if matches!(e.kind(), WouldBlock | TimedOut | Interrupted) => {
                    self.check()?;
                    if heard.elapsed() > NBD_TIMEOUT {
                        return Err(format!("NBD {what}: server silent for {NBD_TIMEOUT:?}"));
                    }
                }
                Err(e) => return Err(format!("NBD {what}: {e}")),
            }
        }
        Ok(())
    }

    /// What LTSP_NBD_TO_RAM does: connect, `NBD_OPT_GO` for the export, read all of it.
    fn nbd_to_ram(&mut self, local: Ipv4Addr, server: Ipv4Addr) -> Res<()> {
        let e = |what: &'static str| move |err: std::io::Error| format!("NBD {what}: {err}");
        let sock =
            Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).map_err(e("socket"))?;
        sock.bind(&SocketAddrV4::new(local, 0).into())
            .map_err(e("bind"))?;
        sock.connect_timeout(
            &SocketAddrV4::new(server, NBD_PORT).into(),
            Duration::from_secs(10),
        )
        .map_err(e("connect"))?;
        let mut s: TcpStream = sock.into();
        s.set_nodelay(true).map_err(e("nodelay"))?;
        // Short reads wake up to notice a stop request; silence is bounded in `read_full`.
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .map_err(e("timeout"))?;
        s.set_write_timeout(Some(NBD_TIMEOUT))
            .map_err(e("timeout"))?;

        let mut greeting = [0u8; nbd::GREETING_LEN];
        self.read_full(&mut s, &mut greeting, "greeting")?;
        let g = nbd::Greeting::parse(&greeting).map_err(|x| format!("NBD greeting: {x}"))?;
        if g.flags & nbd::handshake_flags::FIXED_NEWSTYLE == 0 {
            return Err("NBD server is not fixed-newstyle".into());
        }
        let flags =
            nbd::handshake_flags::FIXED_NEWSTYLE | (g.flags & nbd::handshake_flags::NO_ZEROES);
        let mut msg = vec![0u8; nbd::CLIENT_FLAGS_LEN];
        nbd::ClientFlags {
            flags: u32::from(flags),
        }
        .emit(&mut msg);
        let info = nbd::InfoRequest {
            name: EXPORT.as_bytes(),
            raw_requests: &[],
        };
        let mut data = vec![0u8; info.buffer_len()];
        info.emit(&mut data);
        let go = nbd::OptionRequest {
            option: nbd::opt::GO,
            data: &data,
        };
        let at = msg.len();
        msg.resize(at + go.buffer_len(), 0);
        go.emit(&mut msg[at..]);
        s.write_all(&msg).map_err(e("option"))?;

        let mut size = None;
        loop {
            self.check()?;
            let mut head = [0u8; nbd::OPTION_REPLY_HEADER_LEN];
            self.read_full(&mut s, &mut head, "option reply")?;
            let len = u32::from_be_bytes([head[16], head[17], head[18], head[19]]) as usize;
            if len > 64 * 1024 {
                return Err(format!("NBD option reply of {len} bytes"));
            }
            let mut whole = head.to_vec();
            whole.resize(head.len() + len, 0);
            self.read_full(&mut s, &mut whole[head.len()..], "option reply")?;
            let reply = nbd::OptionReply::parse(&whole).map_err(|x| format!("NBD reply: {x}"))?;
            match reply.reply_type {
                nbd::rep::INFO if reply.data.len() >= 12 => {
                    let d = reply.data;
                    if u16::from_be_bytes([d[0], d[1]]) == nbd::info::EXPORT {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&d[2..10]);
                        size = Some(u64::from_be_bytes(b));
                    }
                }
                nbd::rep::ACK => break,
                t if t & nbd::rep::FLAG_ERROR != 0 => {
                    return Err(format!("NBD_OPT_GO refused ({t:#x})"));
                }
                _ => {}
            }
        }
        let expect = &self.payload.image[..];
        if size != Some(expect.len() as u64) {
            return Err(format!(
                "NBD export size {size:?}, image has {}",
                expect.len()
            ));
        }

        // READs: NBD_CHUNK bytes each, NBD_IN_FLIGHT outstanding; replies may come in any
        // order, so the cookie says which request a reply answers.
        let total = expect.len() as u64;
        let mut sent: u64 = 0;
        let mut outstanding: HashMap<u64, (u64, usize)> = HashMap::new();
        let mut cookie = 0u64;
        let mut buf = vec![0u8; NBD_CHUNK];
        let mut req = [0u8; nbd::REQUEST_LEN];
        let mut received: u64 = 0;
        while received < total {
            self.check()?;
            while outstanding.len() < NBD_IN_FLIGHT && sent < total {
                let len = (total - sent).min(NBD_CHUNK as u64);
                cookie += 1;
                nbd::Request {
                    flags: 0,
                    command: nbd::cmd::READ,
                    cookie,
                    offset: sent,
                    length: len,
                    extended: false,
                }
                .emit(&mut req);
                s.write_all(&req).map_err(e("READ"))?;
                outstanding.insert(cookie, (sent, len as usize));
                sent += len;
            }
            let mut head = [0u8; nbd::SIMPLE_REPLY_LEN];
            self.read_full(&mut s, &mut head, "reply")?;
            let r = nbd::SimpleReply::parse(&head).map_err(|x| format!("NBD reply: {x}"))?;
            if r.error != 0 {
                return Err(format!("NBD READ error {}", r.error));
            }
            let (off, len) = outstanding
                .remove(&r.cookie)
                .ok_or_else(|| format!("NBD reply to unknown cookie {}", r.cookie))?;
            self.read_full(&mut s, &mut buf[..len], "READ data")?;
            let o = off as usize;
            if buf[..len] != expect[o..o + len] {
                return Err(format!("NBD bytes at {off} differ from the image"));
            }
            received += len as u64;
        }
        let mut disc = [0u8; nbd::REQUEST_LEN];
        nbd::Request {
            flags: 0,
            command: nbd::cmd::DISC,
            cookie: cookie + 1,
            offset: 0,
            length: 0,
            extended: false,
        }
        .emit(&mut disc);
        let _ = s.write_all(&disc);
        Ok(())
    }
}

/// DISCOVER rounds a node tries when its REQUESTs are NAKed.
const DHCP_ROUNDS: u32 = 8;
/// How long a socket read blocks before the node looks at its timers and the stop flag.
const POLL: Duration = Duration::from_millis(250);
/// TFTP timer and tries (EDK2 PxeBc: 4 s, 6 tries).
const TFTP_TIMEOUT: Duration = Duration::from_secs(4);
const TFTP_TRIES: u32 = 6;
/// NBD: a server silent this long fails the node.
const NBD_TIMEOUT: Duration = Duration::from_secs(30);
/// READ size and queue depth of the NBD_TO_RAM copy.
const NBD_CHUNK: usize = 256 * 1024;
const NBD_IN_FLIGHT: usize = 4;

/// An octet-mode RRQ for `name` with `opts`.
fn rrq(name: &str, opts: &tftp::Options) -> Res<Vec<u8>> {
    let mut list = vec![0u8; opts.oack_len()];
    let n = opts
        .emit_request_options(&mut list)
        .map_err(|e| e.to_string())?;
    let list = tftp::OptionList::parse(&list[..n]).map_err(|e| e.to_string())?;
    let req = tftp::Repr::Rrq(tftp::Request {
        filename: name.as_bytes(),
        mode: tftp::Mode::Octet,
        options: list,
    });
    let mut out = vec![0u8; req.buffer_len()];
    let n = req.emit(&mut out).map_err(|e| e.to_string())?;
    out.truncate(n);
    Ok(out)
}

/// The DHCP client socket: port 68 on the rack interface, broadcast allowed, shared with
/// the rack's other nodes (each sees every broadcast answer and keeps its own by `xid`).
fn dhcp_socket(ifname: &str) -> Res<UdpSocket> {
    let e = |what: &'static str| move |err: std::io::Error| format!("DHCP socket {what}: {err}");
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(e("create"))?;
    s.set_reuse_address(true).map_err(e("SO_REUSEADDR"))?;
    s.set_broadcast(true).map_err(e("SO_BROADCAST"))?;
    s.bind_device(Some(ifname.as_bytes()))
        .map_err(e("SO_BINDTODEVICE"))?;
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68).into())
        .map_err(e("bind"))?;
    s.set_read_timeout(Some(POLL)).map_err(e("SO_RCVTIMEO"))?;
    // Room for every other node's broadcast answers of one storm (the kernel caps it at
    // net.core.rmem_max).
    s.set_recv_buffer_size(4 << 20).map_err(e("SO_RCVBUF"))?;
    Ok(s.into())
}

/// Boots every node of `specs` on its own thread, all powered on at once; returns the
/// outcomes (in `specs` order) and the time from power-on until the last node finished.
pub fn storm(specs: &[Spec], payload: &Arc<Payload>, limit: Duration) -> (Vec<Outcome>, Duration) {
    let start = Arc::new(Barrier::new(specs.len() + 1));
    let mut handles = Vec::with_capacity(specs.len());
    for spec in specs {
        let (spec, payload, start) = (spec.clone(), Arc::clone(payload), Arc::clone(&start));
        let h = std::thread::Builder::new()
            .name(format!("node{}", spec.index))
            .stack_size(256 * 1024)
            .spawn(move || boot(&spec, &payload, &start, limit));
        match h {
            Ok(h) => handles.push(Some(h)),
            Err(e) => {
                // No thread: stand in for it at the barrier so the others are not stuck.
                eprintln!("compare-storm: cannot start node thread: {e}");
                handles.push(None);
            }
        }
    }
    for _ in handles.iter().filter(|h| h.is_none()) {
        let start = Arc::clone(&start);
        std::thread::spawn(move || start.wait());
    }
    start.wait();
    let t0 = Instant::now();
    let outcomes = handles
        .into_iter()
        .map(|h| {
            h.and_then(|h| h.join().ok()).unwrap_or_else(|| Outcome {
                error: Some("node thread failed".into()),
                ..Default::default()
            })
        })
        .collect();
    (outcomes, t0.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node<'a>(spec: &'a Spec, payload: &'a Payload, out: &'a mut Outcome) -> Node<'a> {
        Node {
            spec,
            payload,
            out,
            deadline: Instant::now() + Duration::from_secs(30),
            rng: 1,
        }
    }

    fn spec() -> Spec {
        Spec {
            index: 3,
            mac: [0x52, 0x54, 0, 0x5e, 0, 3],
            arch: 7,
            ns_path: PathBuf::new(),
            ifname: String::new(),
            loss_ppm: 0,
        }
    }

    #[test]
    fn ovmf_rrq_carries_its_options() {
        let opts = tftp::Options {
            tsize: Some(0),
            blksize: Some(1468),
            windowsize: Some(4),
            ..Default::default()
        };
        let bytes = rrq(KERNEL, &opts).unwrap();
        let Ok(tftp::Repr::Rrq(req)) = tftp::Repr::parse(&bytes) else {
            panic!("not an RRQ: {bytes:?}");
        };
        assert_eq!(req.filename, KERNEL.as_bytes());
        assert_eq!(req.mode, tftp::Mode::Octet);
        assert_eq!(tftp::Options::from_request(&req.options), opts);
    }

    /// A scripted server on loopback: OACK with windowsize 4, then the first window loses
    /// block 2. The client must acknowledge block 1 as soon as block 3 shows the gap, take
    /// the window again from block 2, and end with every byte right.
    #[test]
    fn windowed_fetch_acks_a_gap_and_finishes() {
        let file: Vec<u8> = (0..10 * 1468 + 100).map(|i| (i * 7 % 251) as u8).collect();
        let listen = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = listen.local_addr().unwrap();
        let expect = file.clone();
        let script = std::thread::spawn(move || -> Vec<u16> {
            let mut buf = [0u8; 2048];
            listen
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let (n, client) = listen.recv_from(&mut buf).unwrap();
            let Ok(tftp::Repr::Rrq(req)) = tftp::Repr::parse(&buf[..n]) else {
                panic!("expected an RRQ");
            };
            let asked = tftp::Options::from_request(&req.options);
            assert_eq!((asked.blksize, asked.windowsize), (Some(1468), Some(4)));
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.connect(client).unwrap();
            let mut oack = [0u8; 64];
            let n = asked.emit_oack(&mut oack).unwrap();
            s.send(&oack[..n]).unwrap();
            let mut acks = Vec::new();
            let recv_ack = |acks: &mut Vec<u16>| {
                let mut b = [0u8; 16];
                let n = s.recv(&mut b).unwrap();
                let Ok(tftp::Repr::Ack { block }) = tftp::Repr::parse(&b[..n]) else {
                    panic!("expected an ACK");
                };
                acks.push(block);
                block
            };
            assert_eq!(recv_ack(&mut acks), 0);
            let blocks = file.len() / 1468 + 1;
            let send = |b: usize| {
                let data = &file[(b - 1) * 1468..(b * 1468).min(file.len())];
                let mut d = vec![0u8; 4 + data.len()];
                let n = tftp::Repr::Data {
                    block: b as u16,
                    data,
                }
                .emit(&mut d)
                .unwrap();
                s.send(&d[..n]).unwrap();
            };
            // First window with block 2 lost: 1, 3, 4.
            for b in [1, 3, 4] {
                send(b);
            }
            let mut next = recv_ack(&mut acks) as usize + 1;
            while next <= blocks {
                let end = (next + 3).min(blocks);
                for b in next..=end {
                    send(b);
                }
                next = recv_ack(&mut acks) as usize + 1;
            }
            acks
        });
        let (spec, payload) = (
            spec(),
            Payload {
                tftp: HashMap::new(),
                image: Vec::new(),
            },
        );
        let mut out = Outcome::default();
        let opts = tftp::Options {
            blksize: Some(1468),
            windowsize: Some(4),
            ..Default::default()
        };
        node(&spec, &payload, &mut out)
            .tftp_fetch(Ipv4Addr::LOCALHOST, server, "f", opts, &expect)
            .unwrap();
        let acks = script.join().unwrap();
        // ACK 0 for the OACK, ACK 1 at the gap, then one per window, the last one 11.
        assert_eq!(acks, vec![0, 1, 5, 9, 11]);
        assert_eq!(out.tftp_retries, 0);
    }

    /// A file that differs from the local copy fails the node.
    #[test]
    fn a_wrong_byte_fails_the_fetch() {
        let file = vec![7u8; 1000];
        let listen = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = listen.local_addr().unwrap();
        let mut expect = file.clone();
        expect[500] = 8;
        let script = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            listen
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let (_, client) = listen.recv_from(&mut buf).unwrap();
            // No OACK: options refused, plain 512-byte lockstep (RFC 2347).
            let mut d = vec![0u8; 4 + 512];
            let n = tftp::Repr::Data {
                block: 1,
                data: &file[..512],
            }
            .emit(&mut d)
            .unwrap();
            listen.send_to(&d[..n], client).unwrap();
        });
        let (spec, payload) = (
            spec(),
            Payload {
                tftp: HashMap::new(),
                image: Vec::new(),
            },
        );
        let mut out = Outcome::default();
        let err = node(&spec, &payload, &mut out)
            .tftp_fetch(
                Ipv4Addr::LOCALHOST,
                server,
                "f",
                tftp::Options::default(),
                &expect,
            )
            .unwrap_err();
        script.join().unwrap();
        assert!(err.contains("block 1 differs"), "{err}");
    }
}

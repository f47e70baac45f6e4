//! Engine scenarios on a virtual clock.

use super::*;
use crate::fuzzing::test_server;
use crate::lease::ClientKey;
use crate::wire::code;

const IPXE_BIOS: &[u8] = include_bytes!("../../tests/data/ipxe-bios-discover.bin");
const EDK2_UEFI: &[u8] = include_bytes!("../../tests/data/edk2-uefi-discover.bin");
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const T0: u64 = 1_700_000_000;

fn mac(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x02, 0, b[0], b[1], b[2], b[3]]
}

fn msg(mt: MessageType, hw: [u8; 6], edit: impl FnOnce(&mut Repr<'static>)) -> Vec<u8> {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&hw);
    let mut r = Repr {
        xid: 0x1234,
        chaddr,
        options: Options {
            message_type: Some(mt),
            ..Default::default()
        },
        ..Default::default()
    };
    edit(&mut r);
    let mut buf = vec![0u8; 1500];
    let n = r.emit(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

fn send(s: &mut Server, now: u64, data: &[u8]) -> Output {
    s.handle(
        now,
        &Incoming {
            data,
            src: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
            local_addr: SERVER,
            local_port: 67,
        },
    )
}

fn reply(out: &Output) -> (Repr<'static>, Destination, MessageType) {
    let (bytes, dest, mt) = out.reply.as_ref().expect("a reply");
    let r = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap())
        .unwrap()
        .into_owned();
    assert_eq!(r.options.message_type, Some(*mt));
    (r, *dest, *mt)
}

/// DISCOVER then REQUEST (selecting); returns the bound address.
fn dora(s: &mut Server, now: u64, hw: [u8; 6]) -> Ipv4Addr {
    let out = send(s, now, &msg(MessageType::Discover, hw, |_| {}));
    let (offer, _, mt) = reply(&out);
    assert_eq!(mt, MessageType::Offer);
    let ip = offer.yiaddr;
    let out = send(
        s,
        now,
        &msg(MessageType::Request, hw, |r| {
            r.options.server_id = Some(SERVER);
            r.options.requested_ip = Some(ip);
        }),
    );
    let (ack, _, mt) = reply(&out);
    assert_eq!((mt, ack.yiaddr), (MessageType::Ack, ip));
    assert_eq!(out.lease.as_ref().unwrap().0, LeaseEvent::Bound);
    ip
}

#[test]
fn edk2_uefi_gets_core_efi_with_option_43_and_broadcast() {
    let mut s = test_server();
    let out = send(&mut s, T0, EDK2_UEFI);
    let (offer, dest, mt) = reply(&out);
    assert_eq!(mt, MessageType::Offer);
    assert_eq!(dest, Destination::Broadcast, "EDK2 set the broadcast flag");
    assert_eq!(&*offer.file, b"core.efi");
    assert_eq!(offer.options.bootfile.as_deref(), Some(&b"core.efi"[..]));
    assert_eq!(offer.siaddr, SERVER);
    assert_eq!(offer.options.server_id, Some(SERVER));
    assert_eq!(
        offer.options.vendor_class.as_deref(),
        Some(&b"PXEClient"[..])
    );
    let v43 = crate::pxe::VendorOptions::parse(offer.options.vendor_specific.as_deref().unwrap())
        .unwrap();
    assert_eq!(v43.discovery_control, Some(USE_BOOTFILE));
    assert_eq!(
        offer.options.client_uuid.as_deref().map(<[u8]>::len),
        Some(17)
    );
    assert!(out.lease.is_none(), "an offer is not durable");
    assert_eq!(offer.options.lease_time, Some(LeaseTime::Finite(600)));
    assert_eq!(
        (offer.options.renewal_time, offer.options.rebinding_time),
        (Some(300), Some(525))
    );
}

#[test]
fn ipxe_gets_its_script_and_no_pxedhcp() {
    let mut s = test_server();
    let (offer, dest, _) = reply(&send(&mut s, T0, IPXE_BIOS));
    assert_eq!(&*offer.file, b"boot.ipxe");
    assert_eq!(offer.options.ipxe.as_deref(), Some(&[176, 1, 1][..]));
    assert!(
        matches!(dest, Destination::Hardware { ip, .. } if ip == offer.yiaddr),
        "no broadcast flag: unicast to yiaddr"
    );
    // The same ROM without the iPXE markers (a plain BIOS PXE ROM) gets core.0.
    let plain = msg(MessageType::Discover, mac(7), |r| {
        r.options.client_arch = Some(Cow::Borrowed(&[0, 0]));
        r.options.vendor_class = Some(Cow::Borrowed(b"PXEClient:Arch:00000:UNDI:002001"));
    });
    let (offer, _, _) = reply(&send(&mut s, T0, &plain));
    assert_eq!(&*offer.file, b"core.0");
    assert!(offer.options.ipxe.is_none());
}

#[test]
fn arch_9_is_x64_uefi_too_and_http_boot_echoes_httpclient() {
    let mut s = test_server();
    let d = msg(MessageType::Discover, mac(9), |r| {
        r.options.client_arch = Some(Cow::Borrowed(&[0, 9]));
    });
    assert_eq!(&*reply(&send(&mut s, T0, &d)).0.file, b"core.efi");
    let mut cfg = s.config().clone();
    cfg.boot.rules.insert(
        0,
        BootRule {
            arch: vec![16],
            file: "http://198.18.0.1/ipxe.efi".into(),
            ..Default::default()
        },
    );
    let mut s = Server::new(cfg);
    let d = msg(MessageType::Discover, mac(16), |r| {
        r.options.client_arch = Some(Cow::Borrowed(&[0, 16]));
        r.options.vendor_class = Some(Cow::Borrowed(b"HTTPClient:Arch:00016:UNDI:003001"));
    });
    let (offer, _, _) = reply(&send(&mut s, T0, &d));
    assert_eq!(&*offer.file, b"http://198.18.0.1/ipxe.efi");
    assert_eq!(
        offer.options.vendor_class.as_deref(),
        Some(&b"HTTPClient"[..])
    );
}

#[test]
fn same_mac_same_address_across_boot_stages_release_and_expiry() {
    let mut s = test_server();
    let ip = dora(&mut s, T0, mac(1));
    // The next boot stage sends a different client-id: same lease (keyed by MAC).
    let d = msg(MessageType::Discover, mac(1), |r| {
        r.options.client_id = Some(Cow::Borrowed(b"\xff\x00\x01stage2"));
    });
    assert_eq!(reply(&send(&mut s, T0 + 5, &d)).0.yiaddr, ip);
    let rel = send(
        &mut s,
        T0 + 10,
        &msg(MessageType::Release, mac(1), |r| {
            r.ciaddr = ip;
            r.options.server_id = Some(SERVER);
        }),
    );
    assert!(rel.reply.is_none());
    assert_eq!(rel.lease.unwrap().0, LeaseEvent::Released);
    assert_eq!(
        dora(&mut s, T0 + 20, mac(1)),
        ip,
        "released address comes back"
    );
    // Long after expiry, with other clients around, it still comes back.
    dora(&mut s, T0 + 30, mac(2));
    assert_eq!(dora(&mut s, T0 + 100_000, mac(1)), ip);
}

#[test]
fn static_host_gets_reserved_address_and_hostname() {
    let mut s = test_server();
    let hw = [0x52, 0x54, 0, 0, 0, 1];
    let (offer, _, _) = reply(&send(&mut s, T0, &msg(MessageType::Discover, hw, |_| {})));
    assert_eq!(offer.yiaddr, Ipv4Addr::new(198, 18, 0, 5));
    assert_eq!(offer.options.hostname.as_deref(), Some(&b"node1"[..]));
    // Nobody else is given the reserved address, even when asking for it.
    let d = msg(MessageType::Discover, mac(3), |r| {
        r.options.requested_ip = Some(Ipv4Addr::new(198, 18, 0, 5));
    });
    assert_ne!(
        reply(&send(&mut s, T0, &d)).0.yiaddr,
        Ipv4Addr::new(198, 18, 0, 5)
    );
}

#[test]
fn request_for_another_server_frees_our_offer() {
    let mut s = test_server();
    let (offer, _, _) = reply(&send(
        &mut s,
        T0,
        &msg(MessageType::Discover, mac(4), |_| {}),
    ));
    let out = send(
        &mut s,
        T0,
        &msg(MessageType::Request, mac(4), |r| {
            r.options.server_id = Some(Ipv4Addr::new(198, 18, 0, 2));
            r.options.requested_ip = Some(offer.yiaddr);
        }),
    );
    assert!(out.reply.is_none() && out.lease.is_none());
    assert!(!s.table.by_ip.contains_key(&offer.yiaddr));
}

#[test]
fn init_reboot_renew_rebind_and_nak() {
    let mut s = test_server();
    let ip = dora(&mut s, T0, mac(5));
    // INIT-REBOOT with the right address: ACK.
    let ok = send(
        &mut s,
        T0 + 1,
        &msg(MessageType::Request, mac(5), |r| {
            r.options.requested_ip = Some(ip)
        }),
    );
    assert_eq!(reply(&ok).2, MessageType::Ack);
    // INIT-REBOOT from another network: NAK, broadcast.
    let bad = send(
        &mut s,
        T0 + 1,
        &msg(MessageType::Request, mac(5), |r| {
            r.options.requested_ip = Some(Ipv4Addr::new(10, 0, 0, 9))
        }),
    );
    let (nak, dest, mt) = reply(&bad);
    assert_eq!((mt, dest), (MessageType::Nak, Destination::Broadcast));
    assert_eq!(nak.yiaddr, Ipv4Addr::UNSPECIFIED);
    // Someone else's address: NAK.
    let other = dora(&mut s, T0, mac(6));
    let steal = send(
        &mut s,
        T0 + 1,
        &msg(MessageType::Request, mac(5), |r| {
            r.options.requested_ip = Some(other)
        }),
    );
    assert_eq!(reply(&steal).2, MessageType::Nak);
    // RENEWING: unicast to ciaddr, lease extended from the new time.
    let renew = send(
        &mut s,
        T0 + 300,
        &msg(MessageType::Request, mac(5), |r| r.ciaddr = ip),
    );
    let (ack, dest, _) = reply(&renew);
    assert_eq!(dest, Destination::Unicast(SocketAddrV4::new(ip, 68)));
    assert_eq!(ack.ciaddr, ip);
    let (event, lease) = renew.lease.unwrap();
    assert_eq!(event, LeaseEvent::Renewed);
    assert_eq!(
        lease.state,
        LeaseState::Bound {
            expires: Some(T0 + 900)
        }
    );
    // REBINDING after the lease expired and the address went to someone else: NAK.
    let later = T0 + 10_000;
    s.table.set(
        ip,
        &ClientKey::hardware(1, &mac(77)),
        Slot::Durable(LeaseState::Bound { expires: None }),
    );
    let rebind = send(
        &mut s,
        later,
        &msg(MessageType::Request, mac(5), |r| {
            r.ciaddr = ip;
            r.flags = FLAG_BROADCAST;
        }),
    );
    assert_eq!(reply(&rebind).2, MessageType::Nak);
}

#[test]
fn non_authoritative_server_stays_silent() {
    let mut cfg = test_server().config().clone();
    cfg.authoritative = false;
    let mut s = Server::new(cfg);
    let out = send(
        &mut s,
        T0,
        &msg(MessageType::Request, mac(8), |r| {
            r.options.requested_ip = Some(Ipv4Addr::new(198, 18, 0, 12))
        }),
    );
    assert!(out.reply.is_none());
}

#[test]
fn decline_puts_the_address_on_probation() {
    let mut s = test_server();
    let ip = dora(&mut s, T0, mac(10));
    let out = send(
        &mut s,
        T0 + 1,
        &msg(MessageType::Decline, mac(10), |r| {
            r.options.requested_ip = Some(ip);
            r.options.server_id = Some(SERVER);
        }),
    );
    assert!(out.reply.is_none());
    assert_eq!(out.lease.unwrap().0, LeaseEvent::Declined);
    let next = dora(&mut s, T0 + 2, mac(10));
    assert_ne!(
        next, ip,
        "declined address is not offered again during probation"
    );
    // A DECLINE from a client that does not hold the address changes nothing.
    let forged = send(
        &mut s,
        T0 + 3,
        &msg(MessageType::Decline, mac(11), |r| {
            r.options.requested_ip = Some(next)
        }),
    );
    assert!(forged.lease.is_none());
    assert_eq!(
        s.bound_address(&ClientKey::hardware(1, &mac(10)), T0 + 3),
        Some(next)
    );
}

#[test]
fn inform_gets_options_without_a_lease() {
    let mut s = test_server();
    let ci = Ipv4Addr::new(198, 18, 0, 77);
    let out = send(
        &mut s,
        T0,
        &msg(MessageType::Inform, mac(12), |r| r.ciaddr = ci),
    );
    let (ack, dest, mt) = reply(&out);
    assert_eq!(mt, MessageType::Ack);
    assert_eq!(dest, Destination::Unicast(SocketAddrV4::new(ci, 68)));
    assert_eq!(ack.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert!(ack.options.lease_time.is_none() && ack.options.renewal_time.is_none());
    assert_eq!(ack.options.domain_name.as_deref(), Some(&b"lab"[..]));
    assert!(out.lease.is_none());
}

#[test]
fn rapid_commit_acks_a_discover() {
    let mut s = test_server();
    let out = send(
        &mut s,
        T0,
        &msg(MessageType::Discover, mac(13), |r| {
            r.options.rapid_commit = true
        }),
    );
    let (ack, _, mt) = reply(&out);
    assert_eq!(mt, MessageType::Ack);
    assert!(ack.options.rapid_commit);
    assert_eq!(out.lease.unwrap().1.ip, ack.yiaddr);
}

#[test]
fn relayed_request_goes_back_to_the_relay_with_option_82_last() {
    let mut s = test_server();
    let relay = Ipv4Addr::new(198, 18, 0, 254);
    let agent: &[u8] = &[1, 4, b'p', b'o', b'r', b't'];
    let d = msg(MessageType::Discover, mac(14), |r| {
        r.giaddr = relay;
        r.hops = 1;
        r.options.relay_agent = Some(Cow::Borrowed(agent));
    });
    let out = send(&mut s, T0, &d);
    let (offer, dest, _) = reply(&out);
    assert_eq!(dest, Destination::Unicast(SocketAddrV4::new(relay, 67)));
    assert_eq!(offer.giaddr, relay);
    let (bytes, _, _) = out.reply.as_ref().unwrap();
    let p = Packet::new_checked(&bytes[..]).unwrap();
    let last = p.options().map(Result::unwrap).last().unwrap();
    assert_eq!(last, (code::RELAY_AGENT, agent));
    // A relay on a network we do not serve gets nothing.
    let foreign = msg(MessageType::Discover, mac(15), |r| {
        r.giaddr = Ipv4Addr::new(10, 9, 9, 9)
    });
    assert!(send(&mut s, T0, &foreign).reply.is_none());
}

#[test]
fn offers_are_held_briefly() {
    let mut s = test_server();
    let a = reply(&send(
        &mut s,
        T0,
        &msg(MessageType::Discover, mac(20), |_| {}),
    ))
    .0
    .yiaddr;
    let b = reply(&send(
        &mut s,
        T0 + 1,
        &msg(MessageType::Discover, mac(21), |r| {
            r.options.requested_ip = Some(a);
        }),
    ))
    .0
    .yiaddr;
    assert_ne!(a, b, "an address on offer is not offered to another client");
    // After the hold, the first client's REQUEST is still honoured if nobody took it …
    let late = send(
        &mut s,
        T0 + 100,
        &msg(MessageType::Request, mac(20), |r| {
            r.options.server_id = Some(SERVER);
            r.options.requested_ip = Some(a);
        }),
    );
    assert_eq!(reply(&late).2, MessageType::Ack);
}

#[test]
fn pool_exhaustion_and_reclaim_after_expiry() {
    let mut s = test_server(); // 11 addresses: .10 to .20
    let ips: Vec<Ipv4Addr> = (100..111).map(|n| dora(&mut s, T0, mac(n))).collect();
    let mut sorted = ips.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 11);
    let out = send(&mut s, T0, &msg(MessageType::Discover, mac(200), |_| {}));
    assert_eq!(out.dropped, Some("no free address"));
    // 600 s leases: after they expire, a new client gets one.
    assert!(sorted.contains(&dora(&mut s, T0 + 601, mac(200))));
}

#[test]
fn storm_of_ten_thousand_clients() {
    let mut cfg = test_server().config().clone();
    cfg.subnets[0].prefix_len = 16;
    cfg.subnets[0].pool = Some((
        Ipv4Addr::new(198, 18, 1, 0),
        Ipv4Addr::new(198, 18, 63, 255),
    ));
    let mut s = Server::new(cfg);
    let mut seen = std::collections::HashSet::new();
    for n in 0..10_000 {
        assert!(seen.insert(dora(&mut s, T0 + u64::from(n) / 1000, mac(n))));
    }
    assert_eq!(s.leases().count(), 10_000);
    // Everyone comes back to the same address after a restart from the journal records.
    let mut again = Server::new(s.config().clone());
    for l in s.leases() {
        again.restore(&l);
    }
    for n in (0..10_000).step_by(97) {
        let key = ClientKey::hardware(1, &mac(n));
        assert_eq!(
            again.bound_address(&key, T0 + 20),
            s.bound_address(&key, T0 + 20)
        );
        assert!(again.bound_address(&key, T0 + 20).is_some());
    }
}

#[test]
fn infinite_lease_has_no_t1_t2_and_never_expires() {
    let mut cfg = test_server().config().clone();
    cfg.subnets[0].lease_time = LeaseTime::Infinite;
    let mut s = Server::new(cfg);
    let ip = dora(&mut s, T0, mac(30));
    let (offer, _, _) = reply(&send(
        &mut s,
        T0,
        &msg(MessageType::Discover, mac(30), |_| {}),
    ));
    assert_eq!(offer.options.lease_time, Some(LeaseTime::Infinite));
    assert!(offer.options.renewal_time.is_none() && offer.options.rebinding_time.is_none());
    assert_eq!(
        s.bound_address(&ClientKey::hardware(1, &mac(30)), u64::MAX / 2),
        Some(ip)
    );
}

#[test]
fn proxy_dhcp_offers_boot_info_only_then_answers_on_4011() {
    let mut cfg = test_server().config().clone();
    cfg.proxy = true;
    let mut s = Server::new(cfg);
    // UEFI on 67: no address, no file, PXEClient + 43, siaddr = us.
    let (offer, dest, mt) = reply(&send(&mut s, T0, EDK2_UEFI));
    assert_eq!((mt, dest), (MessageType::Offer, Destination::Broadcast));
    assert_eq!(offer.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert!(offer.file.is_empty());
    assert_eq!(offer.siaddr, SERVER);
    assert_eq!(
        offer.options.vendor_class.as_deref(),
        Some(&b"PXEClient"[..])
    );
    assert!(offer.options.lease_time.is_none());
    assert!(
        offer.options.vendor_specific.is_none(),
        "no 43 for UEFI: EDK2 must see a BINL proxy and go to 4011"
    );
    // Then the REQUEST to 4011 with its address from the other server.
    let ci = Ipv4Addr::new(198, 18, 0, 150);
    let req = msg(MessageType::Request, mac(40), |r| {
        r.ciaddr = ci;
        r.options.client_arch = Some(Cow::Borrowed(&[0, 7]));
        r.options.vendor_class = Some(Cow::Borrowed(b"PXEClient:Arch:00007:UNDI:003000"));
    });
    let out = s.handle(
        T0,
        &Incoming {
            data: &req,
            src: SocketAddrV4::new(ci, 68),
            local_addr: SERVER,
            local_port: PXE_PORT,
        },
    );
    let (ack, dest, mt) = reply(&out);
    assert_eq!(mt, MessageType::Ack);
    assert_eq!(dest, Destination::Unicast(SocketAddrV4::new(ci, 68)));
    assert_eq!(&*ack.file, b"core.efi");
    assert!(out.lease.is_none());
    // EDK2 sends its 4011 request from port 4011: the answer goes back there.
    let out = s.handle(
        T0,
        &Incoming {
            data: &req,
            src: SocketAddrV4::new(ci, PXE_PORT),
            local_addr: SERVER,
            local_port: PXE_PORT,
        },
    );
    assert_eq!(
        reply(&out).1,
        Destination::Unicast(SocketAddrV4::new(ci, PXE_PORT))
    );
    // BIOS gets the file right in the :67 offer; non-PXE clients get nothing.
    let bios = msg(MessageType::Discover, mac(41), |r| {
        r.options.client_arch = Some(Cow::Borrowed(&[0, 0]));
        r.options.vendor_class = Some(Cow::Borrowed(b"PXEClient:Arch:00000:UNDI:002001"));
    });
    assert_eq!(&*reply(&send(&mut s, T0, &bios)).0.file, b"core.0");
    assert!(
        send(&mut s, T0, &msg(MessageType::Discover, mac(42), |_| {}))
            .reply
            .is_none()
    );
}

#[test]
fn hostile_packets_do_not_reply_or_change_leases() {
    let mut s = test_server();
    let ip = dora(&mut s, T0, mac(50));
    let mut bad = msg(MessageType::Discover, mac(51), |_| {});
    bad.truncate(242); // inside option 53
    let mut reply_to_reply = msg(MessageType::Offer, mac(51), |_| {});
    reply_to_reply[0] = 2;
    for data in [&bad[..], &reply_to_reply, &[0u8; 100], &[1u8; 300]] {
        let out = send(&mut s, T0, data);
        assert!(out.reply.is_none() && out.lease.is_none());
    }
    assert_eq!(
        s.bound_address(&ClientKey::hardware(1, &mac(50)), T0),
        Some(ip)
    );
}

#[test]
fn raspberry_pi_is_told_apart_by_oui_and_gets_its_menu() {
    let mut cfg = test_server().config().clone();
    cfg.boot.rules.insert(
        0,
        BootRule {
            hw_prefix: vec![0xb8, 0x27, 0xeb],
            file: "bootcode.bin".into(),
            pxe_menu: Some("Raspberry Pi Boot   ".into()),
            ..Default::default()
        },
    );
    let mut s = Server::new(cfg);
    let pxe = |r: &mut Repr<'static>| {
        r.options.client_arch = Some(Cow::Borrowed(&[0, 0]));
        r.options.vendor_class = Some(Cow::Borrowed(b"PXEClient:Arch:00000:UNDI:002001"));
    };
    let pi = msg(MessageType::Discover, [0xb8, 0x27, 0xeb, 1, 2, 3], pxe);
    let (offer, _, _) = reply(&send(&mut s, T0, &pi));
    assert_eq!(&*offer.file, b"bootcode.bin");
    let v = crate::pxe::VendorOptions::parse(offer.options.vendor_specific.as_deref().unwrap())
        .unwrap();
    assert_eq!(&*v.menu[0].description, b"Raspberry Pi Boot   ");
    // A BIOS PC with the same arch and vendor class is not a Pi.
    let pc = msg(MessageType::Discover, mac(60), pxe);
    let (offer, _, _) = reply(&send(&mut s, T0, &pc));
    assert_eq!(&*offer.file, b"core.0");
    let v = crate::pxe::VendorOptions::parse(offer.options.vendor_specific.as_deref().unwrap())
        .unwrap();
    assert!(v.menu.is_empty());
}

#[test]
fn option_51_is_honoured_within_the_configured_bounds() {
    let ask = |s: &mut Server, n: u32, want: Option<LeaseTime>| {
        let out = send(
            s,
            T0,
            &msg(MessageType::Discover, mac(n), |r| {
                r.options.lease_time = want
            }),
        );
        let (offer, _, _) = reply(&out);
        let out = send(
            s,
            T0,
            &msg(MessageType::Request, mac(n), |r| {
                r.options.server_id = Some(SERVER);
                r.options.requested_ip = Some(offer.yiaddr);
                r.options.lease_time = want;
            }),
        );
        let (ack, _, _) = reply(&out);
        assert_eq!(offer.options.lease_time, ack.options.lease_time);
        (ack.options.lease_time.unwrap(), out.lease.unwrap().1.state)
    };
    let fin = LeaseTime::Finite;
    // Default 600, no maximum: a client may shorten its lease, not lengthen it.
    let mut s = test_server();
    assert_eq!(ask(&mut s, 40, None).0, fin(600));
    let (t, state) = ask(&mut s, 41, Some(fin(300)));
    assert_eq!(t, fin(300));
    assert_eq!(
        state,
        LeaseState::Bound {
            expires: Some(T0 + 300)
        }
    );
    assert_eq!(ask(&mut s, 42, Some(fin(3600))).0, fin(600));
    assert_eq!(ask(&mut s, 43, Some(LeaseTime::Infinite)).0, fin(600));
    assert_eq!(ask(&mut s, 44, Some(fin(1))).0, fin(MIN_LEASE));
    // A maximum above the default: asked-for time up to it; infinite only if configured.
    let mut cfg = test_server().config().clone();
    cfg.subnets[0].max_lease_time = Some(fin(7200));
    let mut s = Server::new(cfg.clone());
    let (t, state) = ask(&mut s, 45, Some(fin(3600)));
    assert_eq!(t, fin(3600));
    assert_eq!(
        state,
        LeaseState::Bound {
            expires: Some(T0 + 3600)
        }
    );
    let key = ClientKey::hardware(1, &mac(45));
    assert!(s.bound_address(&key, T0 + 3599).is_some());
    assert!(s.bound_address(&key, T0 + 3600).is_none());
    assert_eq!(ask(&mut s, 46, Some(LeaseTime::Infinite)).0, fin(7200));
    assert_eq!(ask(&mut s, 47, None).0, fin(600));
    cfg.subnets[0].max_lease_time = Some(LeaseTime::Infinite);
    let mut s = Server::new(cfg);
    let (t, state) = ask(&mut s, 48, Some(LeaseTime::Infinite));
    assert_eq!(t, LeaseTime::Infinite);
    assert_eq!(state, LeaseState::Bound { expires: None });
    assert_eq!(ask(&mut s, 49, None).0, fin(600));
}

fn menu_server() -> Server {
    let mut cfg = test_server().config().clone();
    cfg.boot.menu = Some(PxeMenu {
        prompt: "Press F8 for the boot menu".into(),
        timeout: 10,
        entries: vec![
            MenuEntry {
                text: "Install the farm image".into(),
                server_type: 0x8001,
                arch: vec![0],
                file: Some("install.0".into()),
                server: Some(Ipv4Addr::new(198, 18, 0, 9)),
            },
            MenuEntry {
                text: "Rescue shell".into(),
                server_type: 0x8002,
                arch: vec![0],
                file: Some("rescue.0".into()),
                server: None,
            },
            MenuEntry {
                text: "Boot from local disk".into(),
                arch: vec![0],
                ..Default::default()
            },
        ],
    });
    Server::new(cfg)
}

fn pxe_bios(mt: MessageType, edit: impl FnOnce(&mut Repr<'static>)) -> Vec<u8> {
    msg(mt, mac(60), |r| {
        r.options.vendor_class = Some(Cow::Borrowed(b"PXEClient:Arch:00000:UNDI:002001"));
        r.options.client_arch = Some(Cow::Borrowed(&[0, 0]));
        edit(r);
    })
}

#[test]
fn a_pxe_menu_is_offered_then_the_chosen_entry_answered_on_4011() {
    let mut s = menu_server();
    let (offer, _, _) = reply(&send(&mut s, T0, &pxe_bios(MessageType::Discover, |_| {})));
    assert!(
        offer.file.is_empty(),
        "the file comes from the chosen entry"
    );
    let v = crate::pxe::VendorOptions::parse(offer.options.vendor_specific.as_deref().unwrap())
        .unwrap();
    assert_eq!(
        v.discovery_control,
        Some(0x07),
        "unicast to listed servers, no file here"
    );
    assert_eq!(
        v.boot_servers.as_deref(),
        Some(&[0x80, 0x01, 1, 198, 18, 0, 9, 0x80, 0x02, 1, 198, 18, 0, 1][..])
    );
    let menu: Vec<(u16, &[u8])> = v
        .menu
        .iter()
        .map(|m| (m.server_type, &*m.description))
        .collect();
    assert_eq!(
        menu,
        [
            (0x8001, &b"Install the farm image"[..]),
            (0x8002, b"Rescue shell"),
            (0, b"Boot from local disk")
        ]
    );
    assert_eq!(
        v.prompt,
        Some((10, Cow::Borrowed(&b"Press F8 for the boot menu"[..])))
    );
    // The ROM asks the boot server for entry 0x8002, layer 0, from its new address.
    let ci = Ipv4Addr::new(198, 18, 0, 77);
    let item = crate::pxe::VendorOptions {
        boot_item: Some((0x8002, 0)),
        ..Default::default()
    }
    .to_bytes();
    let req = pxe_bios(MessageType::Request, |r| {
        r.ciaddr = ci;
        r.options.vendor_specific = Some(Cow::Owned(item));
    });
    let out = s.handle(
        T0,
        &Incoming {
            data: &req,
            src: SocketAddrV4::new(ci, 68),
            local_addr: SERVER,
            local_port: PXE_PORT,
        },
    );
    let (ack, dest, mt) = reply(&out);
    assert_eq!(mt, MessageType::Ack);
    assert_eq!(dest, Destination::Unicast(SocketAddrV4::new(ci, 68)));
    assert_eq!(&*ack.file, b"rescue.0");
    assert_eq!(ack.siaddr, SERVER);
    let v =
        crate::pxe::VendorOptions::parse(ack.options.vendor_specific.as_deref().unwrap()).unwrap();
    assert_eq!(v.boot_item, Some((0x8002, 0)), "sub-option 71 echoed");
    assert!(out.lease.is_none());
    // An x64 UEFI client (no entries for arch 7) still gets its file from the rules.
    let (offer, _, _) = reply(&send(&mut s, T0, EDK2_UEFI));
    assert_eq!(&*offer.file, b"core.efi");
    // A client that is not a PXE ROM never sees the menu.
    let (offer, _, _) = reply(&send(
        &mut s,
        T0,
        &msg(MessageType::Discover, mac(61), |r| {
            r.options.client_arch = Some(Cow::Borrowed(&[0, 0]));
        }),
    ));
    assert_eq!(&*offer.file, b"core.0");
    assert!(offer.options.vendor_specific.is_none());
}

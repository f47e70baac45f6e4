use super::*;
use proptest::prelude::*;

const IPXE_BIOS: &[u8] = include_bytes!("../../tests/data/ipxe-bios-discover.bin");
const EDK2_UEFI: &[u8] = include_bytes!("../../tests/data/edk2-uefi-discover.bin");

fn parse(b: &[u8]) -> Repr<'_> {
    Repr::parse(&Packet::new_checked(b).unwrap()).unwrap()
}

#[test]
fn header_fields_and_rejections() {
    let mut buf = [0u8; 300];
    buf[0] = 1;
    buf[4..8].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
    buf[28..34].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    buf[236..240].copy_from_slice(&MAGIC_COOKIE);
    let p = Packet::new_checked(&buf[..]).unwrap();
    assert_eq!((p.op(), p.xid()), (1, 0xdead_beef));
    assert_eq!(&p.chaddr()[..6], &[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    assert_eq!(
        Packet::new_checked(&buf[..100]).unwrap_err(),
        Error::Truncated(100)
    );
    buf[236] = 0;
    assert_eq!(Packet::new_checked(&buf[..]).unwrap_err(), Error::NoCookie);
}

#[test]
fn edk2_uefi_discover_captured_from_ovmf() {
    let r = parse(EDK2_UEFI);
    assert_eq!(r.op, Op::Request);
    assert_eq!(r.hw_addr(), &[0x52, 0x54, 0, 0xe2, 0xe2, 0x01]);
    assert!(r.broadcast(), "EDK2 sets the broadcast flag");
    let o = &r.options;
    assert_eq!(o.message_type, Some(MessageType::Discover));
    assert_eq!(o.max_message_size, Some(1472));
    assert_eq!(o.client_arches().collect::<Vec<_>>(), [7]);
    assert_eq!(o.client_ndi, Some([1, 3, 0]));
    assert_eq!(
        o.vendor_class.as_deref(),
        Some(&b"PXEClient:Arch:00007:UNDI:003000"[..])
    );
    assert_eq!(o.client_uuid.as_deref().map(<[u8]>::len), Some(17));
    assert!(o.requests(code::BOOTFILE) && o.requests(code::VENDOR_SPECIFIC));
    assert!(o.user_class.is_none() && o.ipxe.is_none());
    assert!(matches!(r.file, Cow::Borrowed(b"")));
}

#[test]
fn ipxe_discover_captured_from_seabios_rom() {
    let r = parse(IPXE_BIOS);
    assert!(!r.broadcast());
    let o = &r.options;
    assert_eq!(o.client_arches().collect::<Vec<_>>(), [0]);
    assert!(is_ipxe_user_class(o.user_class.as_deref().unwrap()));
    assert_eq!(
        o.client_id.as_deref(),
        Some(&[1, 0x52, 0x54, 0, 0xe2, 0xe2, 2][..])
    );
    let f = IpxeFeatures::parse(o.ipxe.as_deref().unwrap());
    for feature in [
        IpxeFeatures::HTTP,
        IpxeFeatures::MENU,
        IpxeFeatures::PXE,
        IpxeFeatures::BZIMAGE,
    ] {
        assert!(f.has(feature), "feature {feature}");
    }
    assert!(!f.has(IpxeFeatures::EFI));
    assert!(f.can_run_script());
    // The raw iterator sees the same options in wire order.
    let codes: Vec<u8> = Packet::new_checked(IPXE_BIOS)
        .unwrap()
        .options()
        .map(|o| o.unwrap().0)
        .collect();
    assert_eq!(codes, [53, 57, 93, 94, 60, 77, 55, 175, 61, 97]);
}

#[test]
fn captured_packets_round_trip() {
    for bytes in [IPXE_BIOS, EDK2_UEFI] {
        let r = parse(bytes);
        let mut buf = vec![0u8; r.buffer_len()];
        let n = r.emit(&mut buf).unwrap();
        assert_eq!(parse(&buf[..n]), r);
    }
}

#[test]
fn user_class_forms() {
    assert!(is_ipxe_user_class(b"iPXE"));
    assert!(is_ipxe_user_class(b"\x03foo\x04iPXE"));
    assert!(!is_ipxe_user_class(b"\x05iPXEx"));
    assert!(!is_ipxe_user_class(b"\x09iPXE"));
    assert!(!is_ipxe_user_class(b""));
}

fn base(options: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 240];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[236..240].copy_from_slice(&MAGIC_COOKIE);
    b.extend_from_slice(options);
    b
}

#[test]
fn long_options_are_joined_rfc3396() {
    // Option 43 sent as two fragments with another option between them.
    let mut opts = vec![53, 1, 1, 43, 3, 1, 2, 3, 12, 1, b'h', 43, 2, 4, 5, 255];
    let b = base(&opts);
    let r = parse(&b);
    assert_eq!(
        r.options.vendor_specific.as_deref(),
        Some(&[1, 2, 3, 4, 5][..])
    );
    assert!(matches!(r.options.hostname, Some(Cow::Borrowed(b"h"))));
    // A split fixed-length option joins before it is checked.
    opts = vec![53, 1, 1, 50, 2, 198, 18, 50, 2, 0, 7, 255];
    assert_eq!(
        parse(&base(&opts)).options.requested_ip,
        Some(Ipv4Addr::new(198, 18, 0, 7))
    );
}

#[test]
fn long_options_are_split_on_emit() {
    let big: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
    let r = Repr {
        options: Options {
            message_type: Some(MessageType::Ack),
            vendor_specific: Some(Cow::Borrowed(&big)),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut buf = vec![0u8; 1500];
    let n = r.emit(&mut buf).unwrap();
    let lens: Vec<usize> = Packet::new_checked(&buf[..n])
        .unwrap()
        .options()
        .map(|o| o.unwrap())
        .filter(|(c, _)| *c == code::VENDOR_SPECIFIC)
        .map(|(_, v)| v.len())
        .collect();
    assert_eq!(lens, [255, 255, 90]);
    assert_eq!(parse(&buf[..n]), r);
}

#[test]
fn overload_parses_file_then_sname() {
    let mut b = base(&[53, 1, 5, 52, 1, 3, 255]);
    // file: option 67, sname: option 66 (each region terminated by END).
    b[108..108 + 10].copy_from_slice(&[67, 7, b'c', b'o', b'r', b'e', b'.', b'0', 0, 255]);
    b[44..44 + 6].copy_from_slice(&[66, 3, b't', b'f', b'p', 255]);
    let r = parse(&b);
    assert_eq!(r.options.bootfile.as_deref(), Some(&b"core.0"[..]));
    assert_eq!(r.options.tftp_server.as_deref(), Some(&b"tfp"[..]));
    assert!(r.file.is_empty() && r.sname.is_empty());
}

#[test]
fn overload_loop_and_bad_values_are_harmless() {
    // An option 52 inside `file` is ignored (no recursion); bad 52 values reject.
    let mut b = base(&[53, 1, 1, 52, 1, 1, 255]);
    b[108..114].copy_from_slice(&[52, 1, 3, 12, 1, b'x']);
    assert_eq!(parse(&b).options.hostname.as_deref(), Some(&b"x"[..]));
    assert!(Repr::parse(&Packet::new_checked(&base(&[52, 1, 9, 255])[..]).unwrap()).is_err());
    assert_eq!(
        Repr::parse(&Packet::new_checked(&base(&[53, 1, 1, 12, 9, b'x'])[..]).unwrap()),
        Err(Error::OptionOverrun(12))
    );
    assert_eq!(
        Repr::parse(&Packet::new_checked(&base(&[53, 2, 1, 1])[..]).unwrap()),
        Err(Error::BadOption(53))
    );
    assert_eq!(
        Repr::parse(&Packet::new_checked(&base(&[93, 3, 0, 0, 7])[..]).unwrap()),
        Err(Error::BadOption(93))
    );
}

#[test]
fn emit_overloads_when_short_of_space() {
    let dns: Vec<Ipv4Addr> = (0..60).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
    let r = Repr {
        op: Op::Reply,
        options: Options {
            message_type: Some(MessageType::Offer),
            dns_servers: Some(Addrs::new(&dns)),
            domain_name: Some(Cow::Borrowed(&[b'd'; 100])),
            bootfile: Some(Cow::Borrowed(b"boot/grub/x86_64-efi/core.efi")),
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(r.buffer_len() > DEFAULT_MAX_MESSAGE);
    let mut buf = vec![0u8; DEFAULT_MAX_MESSAGE];
    let n = r.emit(&mut buf).unwrap();
    assert!(n <= DEFAULT_MAX_MESSAGE);
    let p = Packet::new_checked(&buf[..n]).unwrap();
    let ov = RawOptions::new(p.options_field())
        .map(Result::unwrap)
        .find(|(c, _)| *c == code::OVERLOAD)
        .expect("option 52 written");
    assert_ne!(ov.1[0] & 1, 0, "file used");
    assert_eq!(parse(&buf[..n]), r);
    // Too much for every region: an error, not a panic or a truncated packet.
    let huge = Repr {
        options: Options {
            vendor_specific: Some(Cow::Owned(vec![7; 2000])),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(
        huge.emit(&mut buf),
        Err(Error::NoSpace(DEFAULT_MAX_MESSAGE))
    );
}

#[test]
fn bootfile_is_sent_nul_terminated_and_read_without_it() {
    let r = Repr {
        options: Options {
            bootfile: Some(Cow::Borrowed(b"core.0")),
            ..Default::default()
        },
        ..Default::default()
    };
    let mut buf = vec![0u8; 600];
    let n = r.emit(&mut buf).unwrap();
    let p = Packet::new_checked(&buf[..n]).unwrap();
    let (_, v) = p
        .options()
        .map(Result::unwrap)
        .find(|(c, _)| *c == code::BOOTFILE)
        .unwrap();
    assert_eq!(v, b"core.0\0");
    assert_eq!(n, BOOTP_MIN_LEN, "short replies are padded to 300 bytes");
}

#[test]
fn infinite_lease() {
    assert_eq!(LeaseTime::from_u32(u32::MAX), LeaseTime::Infinite);
    assert_eq!(LeaseTime::Infinite.to_u32(), u32::MAX);
    assert_eq!(LeaseTime::Finite(u32::MAX).to_u32(), u32::MAX - 1);
}

fn bytes(max: usize) -> impl Strategy<Value = Option<Cow<'static, [u8]>>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..max).prop_map(Cow::Owned))
}
fn nonempty(max: usize) -> impl Strategy<Value = Option<Cow<'static, [u8]>>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 1..max).prop_map(Cow::Owned))
}
fn ip() -> impl Strategy<Value = Option<Ipv4Addr>> {
    proptest::option::of(any::<u32>().prop_map(Ipv4Addr::from))
}
fn addrs() -> impl Strategy<Value = Option<Addrs<'static>>> {
    proptest::option::of(
        proptest::collection::vec(any::<u32>().prop_map(Ipv4Addr::from), 1..80)
            .prop_map(|v| Addrs::new(&v)),
    )
}

prop_compose! {
    fn options()(
        mt in proptest::option::of(1u8..=8).prop_map(|m| m.and_then(MessageType::from_u8)),
        (subnet_mask, broadcast_addr, requested_ip, server_id, subnet_selection) in (ip(), ip(), ip(), ip(), ip()),
        (routers, dns_servers) in (addrs(), addrs()),
        (hostname, domain_name, vendor_specific, message) in (bytes(40), bytes(300), bytes(700), bytes(20)),
        (parameter_request_list, vendor_class, client_id, tftp_server) in (bytes(60), bytes(40), bytes(30), bytes(30)),
        bootfile in proptest::option::of("[a-z/._]{0,40}".prop_map(|s| Cow::Owned(s.into_bytes()))),
        (user_class, relay_agent, client_uuid, ipxe) in (bytes(20), bytes(40), bytes(20), bytes(60)),
        client_arch in nonempty(6).prop_map(|o| o.map(|v| { let mut v = v.into_owned(); v.push(0); if v.len() % 2 == 1 { v.push(7) } Cow::Owned(v) })),
        lease_time in proptest::option::of(any::<u32>().prop_map(LeaseTime::from_u32)),
        (renewal_time, rebinding_time, max_message_size) in (proptest::option::of(any::<u32>()), proptest::option::of(any::<u32>()), proptest::option::of(any::<u16>())),
        rapid_commit in any::<bool>(),
        client_ndi in proptest::option::of(any::<[u8; 3]>()),
    ) -> Options<'static> {
        Options {
            message_type: mt, subnet_mask, routers, dns_servers, hostname, domain_name, broadcast_addr,
            vendor_specific, requested_ip, lease_time, server_id, parameter_request_list, message,
            max_message_size, renewal_time, rebinding_time, vendor_class, client_id, tftp_server,
            bootfile, user_class, rapid_commit, relay_agent, client_arch, client_ndi, client_uuid,
            subnet_selection, ipxe,
        }
    }
}

prop_compose! {
    fn repr()(
        options in options(),
        reply in any::<bool>(),
        (htype, hlen, hops, xid, secs, flags) in (any::<u8>(), 0u8..=16, any::<u8>(), any::<u32>(), any::<u16>(), any::<u16>()),
        addrs in any::<[u32; 4]>(),
        chaddr in any::<[u8; 16]>(),
        sname in "[a-z]{0,64}",
        file in "[a-z/.]{0,128}",
    ) -> Repr<'static> {
        Repr {
            op: if reply { Op::Reply } else { Op::Request },
            htype, hlen, hops, xid, secs, flags,
            ciaddr: addrs[0].into(), yiaddr: addrs[1].into(), siaddr: addrs[2].into(), giaddr: addrs[3].into(),
            chaddr,
            sname: Cow::Owned(sname.into_bytes()),
            file: Cow::Owned(file.into_bytes()),
            options,
        }
    }
}

proptest! {
    /// parse(emit(x)) == x, at a roomy size and at the 548-byte minimum (where overload and
    /// splitting kick in; running out of room is an error, never a wrong packet).
    #[test]
    fn emit_then_parse_is_identity(r in repr(), small in any::<bool>()) {
        let cap = if small { DEFAULT_MAX_MESSAGE } else { 4096 };
        let mut buf = vec![0u8; cap];
        match r.emit(&mut buf) {
            Ok(n) => {
                prop_assert!(n <= cap);
                let back = Repr::parse(&Packet::new_checked(&buf[..n]).unwrap()).unwrap();
                prop_assert_eq!(back, r);
            }
            Err(e) => prop_assert_eq!(e, Error::NoSpace(cap)),
        }
    }

    /// Arbitrary bytes after a valid header never panic the parser or the iterator.
    #[test]
    fn arbitrary_options_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..400), ov in 0u8..4) {
        let mut b = base(&[52, 1, ov]);
        b.extend_from_slice(&tail);
        crate::fuzzing::packet(&b);
    }
}

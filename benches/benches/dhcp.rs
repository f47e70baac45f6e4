//! criterion benchmarks for netboot-dhcp: parse and emit of real boot packets, and a whole
//! DORA (DISCOVER→OFFER, REQUEST→ACK) through the sans-IO engine.

use std::net::{Ipv4Addr, SocketAddrV4};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use netboot_dhcp::server::{BootPolicy, BootRule, Config, Incoming, Server, Subnet};
use netboot_dhcp::wire::{LeaseTime, MessageType, Options, Packet, Repr};
use std::hint::black_box;

const UEFI: &[u8] = include_bytes!("../../dhcp/tests/data/edk2-uefi-discover.bin");
const IPXE: &[u8] = include_bytes!("../../dhcp/tests/data/ipxe-bios-discover.bin");
const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);

fn server() -> Server {
    Server::new(Config {
        subnets: vec![Subnet {
            network: Ipv4Addr::new(198, 19, 0, 0),
            prefix_len: 16,
            pool: Some((
                Ipv4Addr::new(198, 19, 1, 0),
                Ipv4Addr::new(198, 19, 255, 250),
            )),
            routers: vec![LOCAL],
            dns_servers: vec![LOCAL],
            domain_name: Some("farm.example".into()),
            lease_time: LeaseTime::Finite(3600),
            max_lease_time: None,
            next_server: None,
        }],
        boot: BootPolicy {
            rules: vec![BootRule {
                arch: vec![7, 9],
                file: "boot/grub/x86_64-efi/core.efi".into(),
                ..Default::default()
            }],
            default_file: Some("boot/grub/i386-pc/core.0".into()),
            ..Default::default()
        },
        ..Default::default()
    })
}

fn request(mt: MessageType, n: u32, edit: impl FnOnce(&mut Options<'static>)) -> Vec<u8> {
    let mut chaddr = [0u8; 16];
    chaddr[..6].copy_from_slice(&[2, 0, 0, 0, 0, 0]);
    chaddr[2..6].copy_from_slice(&n.to_be_bytes());
    let mut r = Repr {
        xid: n,
        chaddr,
        giaddr: Ipv4Addr::new(198, 19, 0, 2),
        options: Options {
            message_type: Some(mt),
            client_arch: Some(std::borrow::Cow::Borrowed(&[0, 7])),
            vendor_class: Some(std::borrow::Cow::Borrowed(
                b"PXEClient:Arch:00007:UNDI:003000",
            )),
            ..Default::default()
        },
        ..Default::default()
    };
    edit(&mut r.options);
    let mut buf = vec![0u8; 600];
    let len = r.emit(&mut buf).expect("fits");
    buf.truncate(len);
    buf
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("dhcp/wire");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse uefi discover", |b| {
        b.iter(|| Repr::parse(&Packet::new_checked(black_box(UEFI)).unwrap()).unwrap())
    });
    g.bench_function("parse ipxe discover", |b| {
        b.iter(|| Repr::parse(&Packet::new_checked(black_box(IPXE)).unwrap()).unwrap())
    });
    let mut s = server();
    let out = s.handle(
        0,
        &Incoming {
            data: UEFI,
            src: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68),
            local_addr: LOCAL,
            local_port: 67,
        },
    );
    let offer_bytes = out.reply.expect("offer").0;
    let offer = Repr::parse(&Packet::new_checked(&offer_bytes[..]).unwrap()).unwrap();
    let mut buf = [0u8; 1500];
    g.bench_function("emit pxe offer", |b| {
        b.iter(|| black_box(&offer).emit(&mut buf).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("dhcp/engine");
    g.throughput(Throughput::Elements(1));
    // 60,000 relayed clients cycling through a /16 pool: the first pass allocates, later
    // passes find the client's existing lease (as a reboot storm of a known lab would).
    const CLIENTS: u32 = 60_000;
    let discovers: Vec<Vec<u8>> = (0..CLIENTS)
        .map(|n| request(MessageType::Discover, n, |_| {}))
        .collect();
    let mut s = server();
    let mut n = 0usize;
    let mut now = 1_700_000_000u64;
    g.bench_function("dora", |b| {
        b.iter(|| {
            let i = n % CLIENTS as usize;
            n += 1;
            now += u64::from(n.is_multiple_of(1024));
            let src = SocketAddrV4::new(Ipv4Addr::new(198, 19, 0, 2), 67);
            let out = s.handle(
                now,
                &Incoming {
                    data: &discovers[i],
                    src,
                    local_addr: LOCAL,
                    local_port: 67,
                },
            );
            let (bytes, _, _) = out.reply.expect("offer");
            let yiaddr = Ipv4Addr::new(bytes[16], bytes[17], bytes[18], bytes[19]);
            let req = request(MessageType::Request, i as u32, |o| {
                o.server_id = Some(LOCAL);
                o.requested_ip = Some(yiaddr);
            });
            let ack = s.handle(
                now,
                &Incoming {
                    data: &req,
                    src,
                    local_addr: LOCAL,
                    local_port: 67,
                },
            );
            black_box(ack.reply.expect("ack"));
        })
    });
    g.finish();
}

criterion_group!(group, benches);
criterion_main!(group);

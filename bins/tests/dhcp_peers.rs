//! netboot-dhcpd against real clients inside a namespace pair: ISC dhclient, busybox udhcpc
//! (as a UEFI and as a BIOS PXE client), perfdhcp, and a scripted relay-mode client built on
//! the crate's own wire types for what the stock clients cannot send (iPXE, option 82,
//! DECLINE, INFORM, NAK, rapid commit, overload, proxyDHCP, hostile packets). Also: kill -9
//! under load and check that every logged lease survived in the journal.
//!
//! The server runs in namespace `a`, clients in `b`. The configured subnet is 198.18.0.0/15,
//! which contains both veth ends (so relayed traffic from `b` is on a served link); the pool
//! sits in 198.19.250.0/24.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use netboot_dhcp::wire::{MessageType, Op, Options, Packet, Repr, code};
use netboot_testkit::{Background, NetPair, Netns, Proto, Scratch, require_tool};
use std::borrow::Cow;

const BIN: &str = env!("CARGO_BIN_EXE_netboot-dhcpd");
const IPXE_BIOS: &[u8] = include_bytes!("../../dhcp/tests/data/ipxe-bios-discover.bin");
const EDK2_UEFI: &[u8] = include_bytes!("../../dhcp/tests/data/edk2-uefi-discover.bin");
const STATIC_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 0x01];
const STATIC_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 250, 5);

fn config(net: &NetPair, dir: &Scratch, extra_server: &str, lease_time: &str) -> PathBuf {
    let text = format!(
        r#"[server]
interfaces = ["{if_a}"]
lease_file = "{journal}"
{extra_server}

[boot]
default = "boot/grub/i386-pc/core.0"
ipxe_script = "http://{a}/boot.ipxe"

[[boot.rule]]
arch = [7, 9]
file = "boot/grub/x86_64-efi/core.efi"

[[subnet]]
network = "198.18.0.0/15"
range = ["198.19.250.10", "198.19.250.250"]
routers = ["{a}"]
dns = ["{a}", "198.18.0.53"]
domain = "farm.test"
lease_time = {lease_time}
next_server = "{a}"

[[host]]
mac = "52:54:00:00:00:01"
ip = "{STATIC_IP}"
hostname = "node01"
"#,
        if_a = net.a_if,
        a = net.a_addr,
        journal = dir.path("leases.journal").display(),
    );
    let p = dir.path("dhcpd.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Starts the server in `a` with its log in `log`; waits for port 67 (and 4011 in proxy mode).
fn start(net: &NetPair, cfg: &Path, log: &Path, proxy: bool) -> Background {
    let check = Command::new(BIN)
        .args(["--check-config", "-c"])
        .arg(cfg)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    let script = format!(
        "RUST_LOG=${{RUST_LOG:-info}} NO_COLOR=1 exec {BIN} -c {} 2>>{}",
        cfg.display(),
        log.display()
    );
    let bg = net.a.spawn("sh", ["-c", &script]);
    net.a
        .wait_for_port(Proto::Udp, 67, Duration::from_secs(10))
        .unwrap();
    if proxy {
        net.a
            .wait_for_port(Proto::Udp, 4011, Duration::from_secs(10))
            .unwrap();
    }
    bg
}

fn read_log(log: &Path) -> String {
    let raw = std::fs::read_to_string(log).unwrap_or_default();
    // Strip ANSI colour in case the subscriber ignores NO_COLOR.
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits until `file` contains `needle` (a client script's output), bounded.
fn wait_for_text(file: &Path, needle: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or("")
}

#[test]
fn dhclient_gets_address_options_reboots_and_releases() {
    let dhclient = require_tool("dhclient");
    let net = NetPair::new("dhcl");
    let dir = Scratch::new("dhclient");
    let cfg = config(&net, &dir, "", "600");
    let log = dir.path("server.log");
    let _server = start(&net, &cfg, &log, false);
    let out = dir.path("script.out");
    let script = dir.path("script.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"reason=$reason ip=$new_ip_address routers=$new_routers dns=$new_domain_name_servers domain=$new_domain_name lease=$new_dhcp_lease_time file=$new_filename next=$new_next_server\" >> {}\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (lf, pf) = (dir.path("dhclient.leases"), dir.path("dhclient.pid"));
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec!["-4".into(), "-v".into(), "-sf".into()];
        v.push(script.display().to_string());
        v.extend(["-lf".into(), lf.display().to_string()]);
        v.extend(["-pf".into(), pf.display().to_string()]);
        v.extend(extra.iter().map(|s| s.to_string()));
        v.push(net.b_if.clone());
        v
    };
    // INIT: full DORA.
    let c = net.b.spawn(&dhclient, args(&["-1", "-d"]));
    let text = wait_for_text(&out, "reason=BOUND", Duration::from_secs(30));
    drop(c);
    let bound = text
        .lines()
        .find(|l| l.starts_with("reason=BOUND"))
        .unwrap_or_else(|| panic!("dhclient never bound: {text}\n{}", read_log(&log)));
    let ip: Ipv4Addr = field(bound, "ip").parse().unwrap();
    assert!(ip.octets()[..3] == [198, 19, 250], "{bound}");
    assert_eq!(field(bound, "routers"), net.a_addr.to_string());
    assert_eq!(
        field(bound, "dns"),
        format!("{} 198.18.0.53", net.a_addr)
            .split(' ')
            .next()
            .unwrap()
    );
    assert!(
        bound.contains(&format!("dns={} 198.18.0.53", net.a_addr)),
        "{bound}"
    );
    assert_eq!(field(bound, "domain"), "farm.test");
    assert_eq!(field(bound, "lease"), "600");
    assert_eq!(field(bound, "file"), "boot/grub/i386-pc/core.0");
    assert_eq!(field(bound, "next"), net.a_addr.to_string());
    // INIT-REBOOT from the lease file: the same address is confirmed.
    let c = net.b.spawn(&dhclient, args(&["-1", "-d"]));
    let text = wait_for_text(&out, "reason=REBOOT", Duration::from_secs(30));
    drop(c);
    let reboot = text
        .lines()
        .find(|l| l.starts_with("reason=REBOOT"))
        .unwrap_or_else(|| panic!("no REBOOT: {text}"));
    assert_eq!(field(reboot, "ip"), ip.to_string());
    // RELEASE.
    let r = net.b.run(&dhclient, args(&["-r"]), Duration::from_secs(20));
    assert!(r.status.success(), "{r:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !read_log(&log).contains("lease released") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let server_log = read_log(&log);
    let lines: Vec<&str> = server_log
        .lines()
        .filter(|l| l.contains(" lease "))
        .collect();
    assert_eq!(lines.len(), 3, "bound, bound again, released: {server_log}");
    assert!(lines[2].contains("lease released") && lines[2].contains(&format!("ip={ip}")));
}

/// Runs udhcpc in `b` until bound, then makes it renew (SIGUSR1) and release (SIGUSR2),
/// checking the server logged each; returns the environment its script saw on `bound`.
fn udhcpc(net: &NetPair, dir: &Scratch, log: &Path, tag: &str, extra: &[&str]) -> String {
    let udhcpc = require_tool("udhcpc");
    let script = dir.path(&format!("{tag}.sh"));
    let out = dir.path(&format!("{tag}.env"));
    std::fs::write(
        &script,
        // Bind the address (as /32): udhcpc sends its unicast renew and release from it.
        format!(
            "#!/bin/sh\nif [ \"$1\" = bound ]; then env > {}.tmp; mv {0}.tmp {0}; ip addr replace $ip/32 dev $interface; fi\nexit 0\n",
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let s = script.display().to_string();
    let mut args = vec!["-i", &net.b_if, "-f", "-t", "5", "-T", "1", "-s", &s];
    args.extend(extra);
    let count = |what: &str| read_log(log).matches(what).count();
    let (renewed, released) = (count("lease renewed"), count("lease released"));
    let client = net.b.spawn(udhcpc, &args);
    let env = wait_for_text(&out, "ip=", Duration::from_secs(30));
    assert!(env.contains("ip="), "udhcpc never bound: {}", read_log(log));
    let wait_log = |what: &str, before: usize| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while count(what) <= before {
            assert!(Instant::now() < deadline, "no {what}: {}", read_log(log));
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    client.signal(rustix::process::Signal::USR1);
    wait_log("lease renewed", renewed);
    client.signal(rustix::process::Signal::USR2);
    wait_log("lease released", released);
    drop(client);
    env
}

fn env_var<'a>(env: &'a str, key: &str) -> &'a str {
    env.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("{key} missing from udhcpc env:\n{env}"))
}

#[test]
fn udhcpc_as_uefi_and_bios_gets_the_right_boot_file() {
    let net = NetPair::new("udhc");
    let dir = Scratch::new("udhcpc");
    let cfg = config(&net, &dir, "", "\"infinite\"");
    let log = dir.path("server.log");
    let _server = start(&net, &cfg, &log, false);
    let a = net.a_addr.to_string();
    let uefi = udhcpc(
        &net,
        &dir,
        &log,
        "uefi",
        &["-x", "0x5d:0007", "-V", "PXEClient:Arch:00007:UNDI:003016"],
    );
    assert_eq!(env_var(&uefi, "boot_file"), "boot/grub/x86_64-efi/core.efi");
    assert_eq!(env_var(&uefi, "siaddr"), a);
    assert_eq!(env_var(&uefi, "serverid"), a);
    assert_eq!(env_var(&uefi, "router"), a);
    assert_eq!(env_var(&uefi, "domain"), "farm.test");
    assert_eq!(env_var(&uefi, "lease"), "4294967295", "infinite lease");
    let ip: Ipv4Addr = env_var(&uefi, "ip").parse().unwrap();
    let bios = udhcpc(
        &net,
        &dir,
        &log,
        "bios",
        &["-x", "0x5d:0000", "-V", "PXEClient:Arch:00000:UNDI:002001"],
    );
    assert_eq!(env_var(&bios, "boot_file"), "boot/grub/i386-pc/core.0");
    assert_eq!(env_var(&bios, "siaddr"), a);
    // Same MAC, so the same address, even though the first run released it.
    assert_eq!(env_var(&bios, "ip"), ip.to_string());
    let server_log = read_log(&log);
    assert_eq!(server_log.matches("lease bound").count(), 2, "{server_log}");
    assert_eq!(
        server_log.matches("lease released").count(),
        2,
        "{server_log}"
    );
}

// ---------------------------------------------------------------------------------------
// The scripted client. The test binary re-runs itself inside namespace `b` with
// `--ignored --exact role_scripted_client` and NETBOOT_DHCP_SCRIPT set; that "test" is then
// the client and panics on any wrong answer. It is `#[ignore]`d so it never counts as a pass
// on its own, and without the variable it refuses to run.

#[test]
#[ignore = "a role run inside a namespace by the scripted-client tests, not a test"]
fn role_scripted_client() {
    let spec = std::env::var("NETBOOT_DHCP_SCRIPT")
        .expect("run by the scripted-client tests with NETBOOT_DHCP_SCRIPT set");
    let mut it = spec.split(',');
    let (scenario, server, me) = (
        it.next().unwrap().to_owned(),
        it.next().unwrap().parse().unwrap(),
        it.next().unwrap().parse().unwrap(),
    );
    let c = Relay::new(server, me);
    match scenario.as_str() {
        "full" => scripted_full(&c),
        "proxy" => scripted_proxy(&c),
        "menu" => scripted_menu(&c),
        other => panic!("unknown scenario {other}"),
    }
    println!("SCRIPTED-CLIENT-DONE");
}

fn run_scripted(net: &NetPair, scenario: &str) {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = net.b.command(exe);
    cmd.args([
        "--ignored",
        "--exact",
        "role_scripted_client",
        "--nocapture",
    ]);
    cmd.env(
        "NETBOOT_DHCP_SCRIPT",
        format!("{scenario},{},{}", net.a_addr, net.b_addr),
    );
    let out = netboot_testkit::run_with_timeout(&mut cmd, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("SCRIPTED-CLIENT-DONE"),
        "scripted client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A client that talks like a relay agent: giaddr = its address, replies come to its :67.
struct Relay {
    sock: UdpSocket,
    server: Ipv4Addr,
    me: Ipv4Addr,
}

impl Relay {
    fn new(server: Ipv4Addr, me: Ipv4Addr) -> Relay {
        let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 67)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        Relay { sock, server, me }
    }

    fn send_raw(&self, data: &[u8]) {
        self.sock.send_to(data, (self.server, 67)).unwrap();
    }

    /// Sends `data` and returns the reply with the same xid, if one comes.
    fn exchange(&self, data: &[u8]) -> Option<Repr<'static>> {
        self.send_raw(data);
        let xid = &data[4..8];
        let mut buf = [0u8; 1500];
        loop {
            let Ok((n, _)) = self.sock.recv_from(&mut buf) else {
                return None;
            };
            if buf[4..8] == *xid {
                let p = Packet::new_checked(&buf[..n]).expect("reply has a header");
                return Some(Repr::parse(&p).expect("reply parses").into_owned());
            }
        }
    }

    fn msg(
        &self,
        mt: MessageType,
        mac: [u8; 6],
        xid: u32,
        edit: impl FnOnce(&mut Repr<'static>),
    ) -> Vec<u8> {
        let mut chaddr = [0u8; 16];
        chaddr[..6].copy_from_slice(&mac);
        let mut r = Repr {
            op: Op::Request,
            xid,
            hops: 1,
            giaddr: self.me,
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

    fn relayed(&self, captured: &[u8], xid: u32) -> Vec<u8> {
        let mut b = captured.to_vec();
        b[3] = 1;
        b[4..8].copy_from_slice(&xid.to_be_bytes());
        b[24..28].copy_from_slice(&self.me.octets());
        b
    }

    fn dora(&self, mac: [u8; 6], xid: u32) -> Ipv4Addr {
        let offer = self
            .exchange(&self.msg(MessageType::Discover, mac, xid, |_| {}))
            .expect("offer");
        assert_eq!(offer.options.message_type, Some(MessageType::Offer));
        let ack = self
            .exchange(&self.msg(MessageType::Request, mac, xid + 1, |r| {
                r.options.server_id = offer.options.server_id;
                r.options.requested_ip = Some(offer.yiaddr);
            }))
            .expect("ack");
        assert_eq!(ack.options.message_type, Some(MessageType::Ack));
        assert_eq!(ack.yiaddr, offer.yiaddr);
        ack.yiaddr
    }
}

fn scripted_full(c: &Relay) {
    // iPXE (captured from the SeaBIOS iPXE ROM) gets the script and 175.176 = 1.
    let offer = c
        .exchange(&c.relayed(IPXE_BIOS, 0x100))
        .expect("iPXE offer");
    assert_eq!(
        &*offer.file,
        format!("http://{}/boot.ipxe", c.server).as_bytes()
    );
    assert_eq!(offer.options.ipxe.as_deref(), Some(&[176, 1, 1][..]));
    assert_eq!(offer.giaddr, c.me);
    println!("ok ipxe");
    // EDK2 UEFI (captured from OVMF) gets core.efi with 60 + 43 (no proxy detour).
    let offer = c
        .exchange(&c.relayed(EDK2_UEFI, 0x200))
        .expect("UEFI offer");
    assert_eq!(&*offer.file, b"boot/grub/x86_64-efi/core.efi");
    assert_eq!(
        offer.options.bootfile.as_deref(),
        Some(&b"boot/grub/x86_64-efi/core.efi"[..])
    );
    assert_eq!(
        offer.options.vendor_class.as_deref(),
        Some(&b"PXEClient"[..])
    );
    assert!(offer.options.vendor_specific.is_some());
    assert_eq!(offer.siaddr, c.server);
    println!("ok uefi");
    // Relay agent information is echoed verbatim, last.
    let agent: &[u8] = &[1, 6, b'r', b'a', b'c', b'k', b'0', b'7', 2, 2, 0xab, 0xcd];
    let d = c.msg(MessageType::Discover, [2, 0, 0, 0, 0x82, 1], 0x300, |r| {
        r.options.relay_agent = Some(Cow::Borrowed(agent));
    });
    c.send_raw(&d);
    let mut buf = [0u8; 1500];
    let (n, _) = c
        .sock
        .recv_from(&mut buf)
        .expect("reply to the option 82 DISCOVER");
    let p = Packet::new_checked(&buf[..n]).unwrap();
    let last = p.options().map(Result::unwrap).last().unwrap();
    assert_eq!(last, (code::RELAY_AGENT, agent));
    println!("ok option-82");
    // A static host gets its address and name.
    let offer = c
        .exchange(&c.msg(MessageType::Discover, STATIC_MAC, 0x400, |_| {}))
        .expect("static offer");
    assert_eq!(offer.yiaddr, STATIC_IP);
    assert_eq!(offer.options.hostname.as_deref(), Some(&b"node01"[..]));
    println!("ok static-host");
    // DECLINE: the address goes on probation, the next DORA gets another one.
    let mac = [2, 0, 0, 0, 0xdc, 1];
    let first = c.dora(mac, 0x500);
    c.send_raw(&c.msg(MessageType::Decline, mac, 0x510, |r| {
        r.options.requested_ip = Some(first);
        r.options.server_id = Some(c.server);
    }));
    std::thread::sleep(Duration::from_millis(200));
    let second = c.dora(mac, 0x520);
    assert_ne!(first, second);
    println!("ok decline");
    // INFORM: configuration without a lease.
    let ack = c
        .exchange(
            &c.msg(MessageType::Inform, [2, 0, 0, 0, 0x1f, 1], 0x600, |r| {
                r.ciaddr = c.me;
            }),
        )
        .expect("INFORM answer");
    assert_eq!(ack.options.message_type, Some(MessageType::Ack));
    assert_eq!(ack.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert!(ack.options.lease_time.is_none());
    assert_eq!(ack.options.domain_name.as_deref(), Some(&b"farm.test"[..]));
    println!("ok inform");
    // NAK: INIT-REBOOT for an address on another network.
    let nak = c
        .exchange(
            &c.msg(MessageType::Request, [2, 0, 0, 0, 0x4a, 1], 0x700, |r| {
                r.options.requested_ip = Some(Ipv4Addr::new(10, 1, 2, 3));
            }),
        )
        .expect("NAK");
    assert_eq!(nak.options.message_type, Some(MessageType::Nak));
    assert_ne!(nak.flags & 0x8000, 0, "relayed NAK sets the broadcast bit");
    println!("ok nak");
    // Rapid commit: DISCOVER with option 80 gets an ACK.
    let ack = c
        .exchange(
            &c.msg(MessageType::Discover, [2, 0, 0, 0, 0x80, 1], 0x800, |r| {
                r.options.rapid_commit = true;
            }),
        )
        .expect("rapid commit ACK");
    assert_eq!(ack.options.message_type, Some(MessageType::Ack));
    assert!(ack.options.rapid_commit);
    println!("ok rapid-commit");
    // Option 51: a client asking for 300 s (less than the subnet's 600) gets 300 s, one
    // asking for a day gets the configured 600.
    for (n, want, got) in [(1u8, 300, 300), (2, 86_400, 600)] {
        let mac = [2, 0, 0, 0, 0x51, n];
        let ask = |r: &mut Repr<'static>| {
            r.options.lease_time = Some(netboot_dhcp::wire::LeaseTime::Finite(want))
        };
        let offer = c
            .exchange(&c.msg(MessageType::Discover, mac, 0x850 + u32::from(n) * 2, ask))
            .expect("offer");
        let ack = c
            .exchange(
                &c.msg(MessageType::Request, mac, 0x851 + u32::from(n) * 2, |r| {
                    ask(r);
                    r.options.server_id = offer.options.server_id;
                    r.options.requested_ip = Some(offer.yiaddr);
                }),
            )
            .expect("ack");
        let got = Some(netboot_dhcp::wire::LeaseTime::Finite(got));
        assert_eq!(
            (offer.options.lease_time, ack.options.lease_time),
            (got, got)
        );
    }
    println!("ok option-51");
    // Overload: option 93 = 7 travels in the `file` field (option 52 = 1).
    let mut d = c.msg(MessageType::Discover, [2, 0, 0, 0, 0x52, 1], 0x900, |_| {});
    let end = 240 + d[240..].iter().position(|&b| b == 255).unwrap();
    d[end..end + 4].copy_from_slice(&[52, 1, 1, 255]);
    d[108..113].copy_from_slice(&[93, 2, 0, 7, 255]);
    let offer = c.exchange(&d).expect("overloaded DISCOVER answered");
    assert_eq!(&*offer.file, b"boot/grub/x86_64-efi/core.efi");
    println!("ok overload");
    // Hostile input: none of it gets an answer, and the server keeps serving.
    let good = c.msg(MessageType::Discover, [2, 0, 0, 0, 0xba, 1], 0xa00, |_| {});
    let mut hostile: Vec<Vec<u8>> = vec![
        good[..100].to_vec(),                                     // truncated header
        good[..242].to_vec(),                                     // truncated option 53
        [&good[..240], &[53, 200, 1][..]].concat(),               // length past the end
        [&good[..240], &[52, 1, 3][..], &[0; 1000][..]].concat(), // pad flood, empty overload
    ];
    let mut flood = good[..240].to_vec();
    for i in 0..300u32 {
        flood.extend_from_slice(&[12, 4]);
        flood.extend_from_slice(&i.to_be_bytes());
    }
    hostile.push(flood);
    let mut spoofed = c.msg(MessageType::Discover, [2, 0, 0, 0, 0xba, 2], 0xa01, |_| {});
    spoofed[24..28].copy_from_slice(&[10, 66, 0, 1]); // giaddr on no served network
    hostile.push(spoofed);
    let mut loop52 = good.clone();
    let end = 240 + loop52[240..].iter().position(|&b| b == 255).unwrap();
    loop52[end..end + 4].copy_from_slice(&[52, 1, 3, 255]);
    loop52[108..112].copy_from_slice(&[52, 1, 3, 255]);
    loop52[44..48].copy_from_slice(&[52, 1, 3, 255]);
    loop52[4..8].copy_from_slice(&0xa02u32.to_be_bytes());
    let loop_offer = c.exchange(&loop52);
    assert!(
        loop_offer.is_some(),
        "option 52 inside file/sname is ignored, the request is still valid"
    );
    for h in &hostile {
        c.send_raw(h);
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut buf = [0u8; 1500];
    c.sock
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    if let Ok((n, _)) = c.sock.recv_from(&mut buf) {
        panic!("hostile packet got an answer: {:02x?}", &buf[..n.min(16)]);
    }
    c.sock
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    c.dora([2, 0, 0, 0, 0xba, 3], 0xb00);
    println!("ok hostile");
}

fn scripted_proxy(c: &Relay) {
    // UEFI: the :67 answer carries no address and no file, PXEClient and us as siaddr.
    let offer = c
        .exchange(&c.relayed(EDK2_UEFI, 0x4011))
        .expect("proxy offer");
    assert_eq!(offer.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert!(offer.file.is_empty());
    assert_eq!(
        offer.options.vendor_class.as_deref(),
        Some(&b"PXEClient"[..])
    );
    assert_eq!(offer.options.server_id, Some(c.server));
    assert!(offer.options.lease_time.is_none());
    println!("ok proxy-offer");
    // Then the REQUEST to :4011 from :68 with the address the other server gave.
    let s68 = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 68)).unwrap();
    s68.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut req = c.msg(
        MessageType::Request,
        [0x52, 0x54, 0, 0xe2, 0xe2, 1],
        0x4012,
        |r| {
            r.giaddr = Ipv4Addr::UNSPECIFIED;
            r.ciaddr = c.me;
            r.options.client_arch = Some(Cow::Borrowed(&[0, 7]));
            r.options.vendor_class = Some(Cow::Borrowed(b"PXEClient:Arch:00007:UNDI:003000"));
            r.options.parameter_request_list = Some(Cow::Borrowed(&[1, 3, 43, 60, 66, 67]));
        },
    );
    req[3] = 0;
    s68.send_to(&req, SocketAddrV4::new(c.server, 4011))
        .unwrap();
    let mut buf = [0u8; 1500];
    let (n, from) = s68.recv_from(&mut buf).expect("ACK from :4011");
    assert_eq!(from.port(), 4011, "answered from the PXE port");
    let ack = Repr::parse(&Packet::new_checked(&buf[..n]).unwrap()).unwrap();
    assert_eq!(ack.options.message_type, Some(MessageType::Ack));
    assert_eq!(&*ack.file, b"boot/grub/x86_64-efi/core.efi");
    assert_eq!(
        ack.options.bootfile.as_deref(),
        Some(&b"boot/grub/x86_64-efi/core.efi"[..])
    );
    assert_eq!(ack.siaddr, c.server);
    println!("ok proxy-4011");
    // A client that is not PXE gets nothing from a proxy.
    assert!(
        c.exchange(&c.msg(MessageType::Discover, [2, 0, 0, 0, 0x99, 9], 0x4013, |_| {}))
            .is_none()
    );
    println!("ok proxy-ignores-non-pxe");
}

fn scripted_menu(c: &Relay) {
    let mac = [0x52, 0x54, 0, 0xe3, 0, 1];
    let bios = |r: &mut Repr<'static>| {
        r.options.vendor_class = Some(Cow::Borrowed(b"PXEClient:Arch:00000:UNDI:002001"));
        r.options.client_arch = Some(Cow::Borrowed(&[0, 0]));
    };
    // The BIOS ROM's DISCOVER (relayed): an address, no file, and the menu in option 43.
    let offer = c
        .exchange(&c.msg(MessageType::Discover, mac, 0x4100, bios))
        .expect("menu offer");
    assert!(offer.file.is_empty());
    let v =
        netboot_dhcp::pxe::VendorOptions::parse(offer.options.vendor_specific.as_deref().unwrap())
            .unwrap();
    assert_eq!(v.discovery_control, Some(7));
    let s = c.server.octets();
    assert_eq!(
        v.boot_servers.as_deref(),
        Some(
            &[
                0x80, 0x01, 1, s[0], s[1], s[2], s[3], 0x80, 0x02, 1, s[0], s[1], s[2], s[3]
            ][..]
        )
    );
    let texts: Vec<&[u8]> = v.menu.iter().map(|m| &*m.description).collect();
    assert_eq!(texts, [&b"Install"[..], b"Rescue", b"Local disk"]);
    assert_eq!(
        v.prompt.as_ref().map(|p| (p.0, &*p.1)),
        Some((7, &b"Press F8"[..]))
    );
    println!("ok menu-offer");
    // The user picks "Rescue": the ROM asks the boot server on 4011 for type 0x8002.
    let s68 = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 68)).unwrap();
    s68.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let item = netboot_dhcp::pxe::VendorOptions {
        boot_item: Some((0x8002, 0)),
        ..Default::default()
    }
    .to_bytes();
    let mut req = c.msg(MessageType::Request, mac, 0x4101, |r| {
        bios(r);
        r.giaddr = Ipv4Addr::UNSPECIFIED;
        r.ciaddr = c.me;
        r.options.vendor_specific = Some(Cow::Owned(item));
    });
    req[3] = 0;
    s68.send_to(&req, SocketAddrV4::new(c.server, 4011))
        .unwrap();
    let mut buf = [0u8; 1500];
    let (n, from) = s68.recv_from(&mut buf).expect("ACK from :4011");
    assert_eq!(from.port(), 4011);
    let ack = Repr::parse(&Packet::new_checked(&buf[..n]).unwrap()).unwrap();
    assert_eq!(ack.options.message_type, Some(MessageType::Ack));
    assert_eq!(&*ack.file, b"rescue.0");
    let v =
        netboot_dhcp::pxe::VendorOptions::parse(ack.options.vendor_specific.as_deref().unwrap())
            .unwrap();
    assert_eq!(v.boot_item, Some((0x8002, 0)));
    println!("ok menu-4011");
}

#[test]
fn a_pxe_menu_is_offered_and_the_chosen_entry_served_on_4011() {
    let net = NetPair::new("dhmn");
    let dir = Scratch::new("menu");
    let cfg = config(&net, &dir, "", "600");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(
        "\n[boot.menu]\nprompt = \"Press F8\"\ntimeout = 7\n\
         [[boot.menu.item]]\ntext = \"Install\"\narch = [0]\nfile = \"install.0\"\n\
         [[boot.menu.item]]\ntext = \"Rescue\"\narch = [0]\nfile = \"rescue.0\"\n\
         [[boot.menu.item]]\ntext = \"Local disk\"\narch = [0]\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let log = dir.path("server.log");
    let _server = start(&net, &cfg, &log, true);
    run_scripted(&net, "menu");
}

#[test]
fn scripted_client_covers_pxe_relay_decline_inform_nak_rapid_overload_hostile() {
    let net = NetPair::new("dhsc");
    let dir = Scratch::new("scripted");
    let cfg = config(&net, &dir, "rapid_commit = true", "600");
    let log = dir.path("server.log");
    let mut server = start(&net, &cfg, &log, false);
    run_scripted(&net, "full");
    assert!(
        !server.has_exited(),
        "server still running: {}",
        read_log(&log)
    );
    let text = read_log(&log);
    assert!(text.contains("lease declined"), "{text}");
}

#[test]
fn proxy_dhcp_answers_pxe_clients_on_67_and_4011() {
    let net = NetPair::new("dhpx");
    let dir = Scratch::new("proxy");
    let cfg = config(&net, &dir, "proxy = true", "600");
    let log = dir.path("server.log");
    let _server = start(&net, &cfg, &log, true);
    run_scripted(&net, "proxy");
    assert!(
        !read_log(&log).contains("lease bound"),
        "a proxy never leases"
    );
}

/// Runs perfdhcp from `b` against the server in `a`; returns (output, exit ok).
fn perfdhcp(net: &Netns, server: Ipv4Addr, local: Ipv4Addr, rate: u32, secs: u32) -> String {
    let perf = require_tool("perfdhcp");
    let out = net.run(
        perf,
        [
            "-4",
            "-l",
            &local.to_string(),
            "-r",
            &rate.to_string(),
            // An answer counts as lost after 3 s, not perfdhcp's default 1 s: this machine's
            // two cores are shared with other test suites and scheduling stalls of several
            // hundred milliseconds happen; a lost answer is still a failure.
            "-d",
            "3",
            // Wait 1 s for answers still in flight when the run ends; without it perfdhcp
            // counts them as drops.
            "-W",
            "1000000",
            "-R",
            "100000",
            "-p",
            &secs.to_string(),
            &server.to_string(),
        ],
        Duration::from_secs(u64::from(secs) + 30),
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text + &String::from_utf8_lossy(&out.stderr)
}

fn stat(text: &str, key: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(key))
        .filter_map(|v| v.trim().parse().ok())
        .collect()
}

#[test]
fn perfdhcp_dora_without_drops_at_a_modest_rate() {
    let net = NetPair::new("dhpf");
    let dir = Scratch::new("perf");
    let cfg = big_pool(config(&net, &dir, "", "600"));
    let log = dir.path("server.log");
    // Warn level: a log line per lease at this rate is the test's business only below.
    let _ = std::fs::write(&log, "");
    let _server = start_with_env(&net, &cfg, &log, "warn");
    let text = perfdhcp(&net.b, net.a_addr, net.b_addr, 150, 4);
    let sent = stat(&text, "sent packets:");
    let received = stat(&text, "received packets:");
    let drops = stat(&text, "drops:");
    assert_eq!(sent.len(), 2, "DO and RA statistics: {text}");
    assert!(sent[0] >= 300 && sent[1] >= 300, "{text}");
    assert_eq!(sent, received, "{text}");
    assert_eq!(drops, [0, 0], "{text}");
}

/// Widens the pool to 198.19.0.10–198.19.200.250 for perfdhcp's many distinct clients.
fn big_pool(cfg: PathBuf) -> PathBuf {
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("198.19.250.10", "198.19.0.10")
        .replace("198.19.250.250", "198.19.200.250");
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn start_with_env(net: &NetPair, cfg: &Path, log: &Path, level: &str) -> Background {
    let script = format!(
        "RUST_LOG={level} NO_COLOR=1 exec {BIN} -c {} 2>>{}",
        cfg.display(),
        log.display()
    );
    let bg = net.a.spawn("sh", ["-c", &script]);
    net.a
        .wait_for_port(Proto::Udp, 67, Duration::from_secs(10))
        .unwrap();
    bg
}

/// Reads the journal's records (framing: len u16 LE, crc32 u32 LE, payload).
fn journal_leases(path: &Path) -> Vec<netboot_dhcp::lease::Lease> {
    let data = std::fs::read(path).unwrap();
    let mut at = 0;
    let mut out = Vec::new();
    while let Some(h) = data.get(at..at + 6) {
        let len = usize::from(u16::from_le_bytes([h[0], h[1]]));
        let Some(p) = data.get(at + 6..at + 6 + len) else {
            break;
        };
        match netboot_dhcp::lease::Lease::decode(p) {
            Some(l) => out.push(l),
            None => break,
        }
        at += 6 + len;
    }
    out
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_lease() {
    let net = NetPair::new("dhk9");
    let dir = Scratch::new("kill9");
    let cfg = big_pool(config(&net, &dir, "", "600"));
    let log = dir.path("server.log");
    let server = start(&net, &cfg, &log, false);
    let perf = {
        let mut cmd = net.b.command(require_tool("perfdhcp"));
        cmd.args([
            "-4",
            "-l",
            &net.b_addr.to_string(),
            "-r",
            "300",
            "-R",
            "100000",
            "-p",
            "6",
        ])
        .arg(net.a_addr.to_string());
        Background::spawn(cmd)
    };
    std::thread::sleep(Duration::from_millis(2500));
    server.signal(rustix::process::Signal::KILL);
    let _ = server.finish(Duration::from_secs(5));
    drop(perf);
    let logged: Vec<(String, String)> = read_log(&log)
        .lines()
        .filter(|l| l.contains("lease bound"))
        .map(|l| (field(l, "ip").to_owned(), field(l, "client").to_owned()))
        .collect();
    assert!(
        logged.len() > 100,
        "load reached the server: {}",
        logged.len()
    );
    let journal = journal_leases(&dir.path("leases.journal"));
    let mut durable = std::collections::HashMap::new();
    for l in &journal {
        durable.insert(l.ip.to_string(), l.client.to_string());
    }
    for (ip, client) in &logged {
        assert_eq!(
            durable.get(ip),
            Some(client),
            "ACKed lease {ip} for {client} survived"
        );
    }
    // A restart replays them all.
    let _ = std::fs::write(&log, "");
    let _again = start(&net, &cfg, &log, false);
    let restored = read_log(&log);
    let line = restored
        .lines()
        .find(|l| l.contains("leases restored"))
        .unwrap_or_else(|| panic!("{restored}"));
    let n: usize = field(line, "records").parse().unwrap();
    assert!(n >= logged.len(), "{line} vs {} logged", logged.len());
}

#[test]
fn check_config_reports_problems_with_lines() {
    let dir = Scratch::new("check");
    let p = dir.path("bad.toml");
    std::fs::write(
        &p,
        "[server]\nport = 67\n\n[[subnet]]\nnetwork = \"10.0.0.0/33\"\n\n[[host]]\nmac = \"nope\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["--check-config", "-c"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:5:11: network"), "{err}");
    assert!(err.contains("bad.toml:8:7: mac"), "{err}");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dhcp/examples/netboot-dhcpd.toml");
    let ok = Command::new(BIN)
        .args(["--check-config", "-c"])
        .arg(example)
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
}

//! netboot-dhcpd's driver: how replies reach a client that has no address (unicast after
//! seeding the neighbour table, seen on the wire by a scapy client in the other namespace),
//! a clean stop on SIGTERM/SIGINT, and configuration reloads through the library.
//!
//! Server in namespace `a`, clients in `b`, as in dhcp_peers.rs.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use netboot_testkit::{Background, NetPair, Proto, Scratch, require_tool};

const BIN: &str = env!("CARGO_BIN_EXE_netboot-dhcpd");
const PYTHON: &str = "/usr/bin/python3";

fn config(net: &NetPair, dir: &Scratch, extra: &str) -> PathBuf {
    let text = format!(
        r#"[server]
interfaces = ["{if_a}"]
lease_file = "{journal}"

[boot]
default = "core.0"

[[subnet]]
network = "198.18.0.0/15"
range = ["198.19.250.10", "198.19.250.250"]
routers = ["{a}"]
lease_time = 600
{extra}
"#,
        if_a = net.a_if,
        a = net.a_addr,
        journal = dir.path("leases.journal").display(),
    );
    let p = dir.path("dhcpd.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn start(net: &NetPair, cfg: &Path, log: &Path) -> Background {
    let script = format!(
        "RUST_LOG=${{RUST_LOG:-info}} NO_COLOR=1 exec {BIN} -c {} 2>>{}",
        cfg.display(),
        log.display()
    );
    let bg = net.a.spawn("sh", ["-c", &script]);
    net.a
        .wait_for_port(Proto::Udp, 67, Duration::from_secs(10))
        .unwrap();
    bg
}

fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// A client without an address, on the wire: sends DISCOVER and REQUEST from 0.0.0.0 as
/// Ethernet broadcasts with the given BOOTP flags, and prints where each reply was sent
/// (Ethernet and IP destination) as the frame arrived in namespace `b`. No BPF filter (that
/// would need tcpdump): replies are picked by xid in Python.
const SCAPY_CLIENT: &str = r#"
import sys, threading
from scapy.all import Ether, IP, UDP, BOOTP, DHCP, AsyncSniffer, sendp, conf, mac2str
conf.verb = 0
iface, mac, flags, xid = sys.argv[1], sys.argv[2], int(sys.argv[3], 0), int(sys.argv[4], 0)

def exchange(options, xid):
    ready = threading.Event()
    sn = AsyncSniffer(iface=iface, count=1, timeout=8, started_callback=ready.set,
        lfilter=lambda p: BOOTP in p and p[BOOTP].op == 2 and p[BOOTP].xid == xid)
    sn.start()
    ready.wait(5)
    sendp(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67) / BOOTP(chaddr=mac2str(mac), xid=xid, flags=flags)
        / DHCP(options=options + ["end"]), iface=iface)
    sn.join()
    if not sn.results:
        print("NOREPLY", xid)
        sys.exit(1)
    p = sn.results[0]
    opts = dict(o for o in p[DHCP].options if isinstance(o, tuple))
    file = p[BOOTP].file.rstrip(b"\0").decode() or "-"
    print("REPLY type=%s mac=%s ip=%s yiaddr=%s file=%s sid=%s" % (opts.get("message-type"), p[Ether].dst, p[IP].dst, p[BOOTP].yiaddr, file, opts.get("server_id")))
    return p, opts

if len(sys.argv) > 5:
    # INIT-REBOOT: confirm a remembered address.
    exchange([("message-type", "request"), ("requested_addr", sys.argv[5])], xid)
else:
    offer, o = exchange([("message-type", "discover")], xid)
    exchange([("message-type", "request"), ("server_id", o["server_id"]),
              ("requested_addr", offer[BOOTP].yiaddr)], xid + 1)
"#;

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or("")
}

/// Runs the scapy client in `b`; returns its reply lines (OFFER, ACK).
fn scapy_exchange(net: &NetPair, dir: &Scratch, mac: &str, flags: u16, xid: u32) -> Vec<String> {
    scapy(
        net,
        dir,
        &[mac, &format!("{flags:#x}"), &format!("{xid:#x}")],
    )
}

/// Runs the scapy client in `b` with `args` after the interface; returns its reply lines.
fn scapy(net: &NetPair, dir: &Scratch, args: &[&str]) -> Vec<String> {
    let (ok, lines) = scapy_on(net, &net.b_if, dir, args);
    assert!(ok, "scapy client: {lines:?}");
    lines
}

/// Runs the scapy client on interface `iface` of `b`; returns whether it got every reply,
/// and its output lines.
fn scapy_on(net: &NetPair, iface: &str, dir: &Scratch, args: &[&str]) -> (bool, Vec<String>) {
    let script = dir.path("client.py");
    std::fs::write(&script, SCAPY_CLIENT).unwrap();
    let mut argv = vec![script.display().to_string(), iface.to_owned()];
    argv.extend(args.iter().map(|a| a.to_string()));
    let out = net.b.run(PYTHON, argv, Duration::from_secs(60));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let lines = text
        .lines()
        .filter(|l| l.starts_with("REPLY") || !out.status.success())
        .map(str::to_owned)
        .collect();
    (out.status.success(), lines)
}

#[test]
fn a_client_without_an_address_gets_unicast_unless_it_asks_for_broadcast() {
    assert!(Path::new(PYTHON).exists(), "{PYTHON} (with scapy) missing");
    let net = NetPair::new("dhuc");
    let dir = Scratch::new("unicast");
    let cfg = config(&net, &dir, "");
    let log = dir.path("server.log");
    let _server = start(&net, &cfg, &log);

    // Broadcast bit clear: both replies are unicast to the new address and the client's MAC.
    let mac = "02:00:00:00:5e:01";
    let lines = scapy_exchange(&net, &dir, mac, 0, 0x5e01);
    assert_eq!(lines.len(), 2, "{lines:?}\n{}", read_log(&log));
    let yiaddr: Ipv4Addr = field(&lines[0], "yiaddr").parse().unwrap();
    assert!(yiaddr.octets()[..3] == [198, 19, 250], "{lines:?}");
    for (line, kind) in lines.iter().zip(["2", "5"]) {
        assert_eq!(field(line, "type"), kind, "OFFER then ACK: {line}");
        assert_eq!(field(line, "mac"), mac, "unicast frame: {line}");
        assert_eq!(field(line, "ip"), yiaddr.to_string(), "to yiaddr: {line}");
    }
    // The server's neighbour table holds what it seeded.
    let neigh = net.a.run(
        require_tool("ip"),
        ["neigh", "show", &yiaddr.to_string()],
        Duration::from_secs(5),
    );
    let neigh = String::from_utf8_lossy(&neigh.stdout);
    assert!(
        neigh.contains(&format!("lladdr {mac}")),
        "neighbour entry: {neigh}"
    );

    // Broadcast bit set: both replies are broadcast.
    let lines = scapy_exchange(&net, &dir, "02:00:00:00:5e:02", 0x8000, 0x5e10);
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        assert_eq!(field(line, "mac"), "ff:ff:ff:ff:ff:ff", "{line}");
        assert_eq!(field(line, "ip"), "255.255.255.255", "{line}");
    }
}

/// Counts records in the journal (framing: len u16 LE, crc32 u32 LE, payload).
fn journal_records(path: &Path) -> usize {
    let data = std::fs::read(path).unwrap_or_default();
    let (mut at, mut n) = (0, 0);
    while let Some(h) = data.get(at..at + 6) {
        let len = usize::from(u16::from_le_bytes([h[0], h[1]]));
        if data.len() < at + 6 + len {
            break;
        }
        at += 6 + len;
        n += 1;
    }
    n
}

#[test]
fn sigterm_and_sigint_stop_cleanly_with_the_journal_flushed() {
    let net = NetPair::new("dhst");
    let dir = Scratch::new("stop");
    let cfg = config(&net, &dir, "");
    for (round, signal) in [rustix::process::Signal::TERM, rustix::process::Signal::INT]
        .into_iter()
        .enumerate()
    {
        let log = dir.path(&format!("server-{round}.log"));
        let server = start(&net, &cfg, &log);
        // Some leases first (perfdhcp acts as a relay from `b`): 40 DORAs.
        let perf = net.b.run(
            require_tool("perfdhcp"),
            [
                "-4",
                "-l",
                &net.b_addr.to_string(),
                "-r",
                "100",
                "-n",
                "40",
                "-R",
                "1000",
                &net.a_addr.to_string(),
            ],
            Duration::from_secs(30),
        );
        let bound = read_log(&log).matches("lease bound").count();
        assert!(bound >= 30, "{perf:?}\n{}", read_log(&log));
        let t = Instant::now();
        server.signal(signal);
        let (out, exited) = server.finish(Duration::from_secs(5));
        assert!(exited, "still running 5 s after {signal:?}");
        assert_eq!(out.status.code(), Some(0), "{signal:?}: {out:?}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        let text = read_log(&log);
        assert!(text.contains("lease journal flushed"), "{text}");
        assert!(text.contains("stopped"), "{text}");
        // Every lease bound in either round is in the journal.
        let total: usize = (0..=round)
            .map(|r| {
                read_log(&dir.path(&format!("server-{r}.log")))
                    .matches("lease bound")
                    .count()
            })
            .sum();
        assert!(
            journal_records(&dir.path("leases.journal")) >= total,
            "journal has every bound lease"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Reloads through the library: the test binary re-runs itself inside namespace `a` as
// `role_reload_server`, which calls `dhcpd::run_reloadable` and, like netbootd, sends the
// re-read configuration on SIGHUP and stops on SIGTERM. It is `#[ignore]`d so it never counts
// as a pass on its own, and without NETBOOT_DHCP_RELOAD it refuses to run.

#[test]
#[ignore = "a role run inside a namespace by the reload test, not a test"]
fn role_reload_server() {
    use netboot_bins::dhcpd;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let path = std::env::var("NETBOOT_DHCP_RELOAD").expect("run by the reload test");
    let _log = netboot_bins::init_logging();
    let load = || {
        dhcpd::load(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|p| panic!("{p:?}"))
    };
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(load()));
    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&shutdown);
    let server = std::thread::spawn(move || dhcpd::run_reloadable(rx, flag));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup()).unwrap();
        let mut term = signal(SignalKind::terminate()).unwrap();
        loop {
            tokio::select! {
                _ = hup.recv() => { tx.send(Arc::new(load())).unwrap(); }
                _ = term.recv() => break,
            }
        }
    });
    shutdown.store(true, Ordering::SeqCst);
    server.join().unwrap().unwrap();
    tracing::info!("role stopped");
}

fn reload_config(net: &NetPair, dir: &Scratch, pool: u8, file: &str, journal: &str) -> PathBuf {
    let text = format!(
        r#"[server]
interfaces = ["{if_a}"]
lease_file = "{journal}"

[boot]
default = "{file}"

[[subnet]]
network = "198.18.0.0/15"
range = ["198.19.{pool}.10", "198.19.{pool}.250"]
lease_time = 600
"#,
        if_a = net.a_if,
        journal = dir.path(journal).display(),
    );
    let p = dir.path("reload.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn reload_swaps_pools_and_boot_policy_and_keeps_granted_leases() {
    assert!(Path::new(PYTHON).exists(), "{PYTHON} (with scapy) missing");
    let net = NetPair::new("dhrl");
    let dir = Scratch::new("reload");
    let cfg = reload_config(&net, &dir, 250, "v1.0", "leases.journal");
    let log = dir.path("server.log");
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        "NETBOOT_DHCP_RELOAD={} RUST_LOG=info NO_COLOR=1 exec {} --ignored --exact role_reload_server --nocapture 2>>{}",
        cfg.display(),
        exe.display(),
        log.display()
    );
    let server = net.a.spawn("sh", ["-c", &script]);
    net.a
        .wait_for_port(Proto::Udp, 67, Duration::from_secs(10))
        .unwrap();
    let reply = |lines: &[String], kind: &str| -> (Ipv4Addr, String) {
        let l = lines
            .iter()
            .find(|l| field(l, "type") == kind)
            .unwrap_or_else(|| panic!("no type {kind}: {lines:?}\n{}", read_log(&log)));
        (
            field(l, "yiaddr").parse().unwrap(),
            field(l, "file").to_owned(),
        )
    };
    // Before: pool 198.19.250.x, file v1.0.
    let first = scapy(&net, &dir, &["02:00:00:00:71:01", "0x8000", "0x7100"]);
    let (ip1, file) = reply(&first, "5");
    assert_eq!((ip1.octets()[2], file.as_str()), (250, "v1.0"), "{first:?}");
    // Reload: another pool, another boot file, and a new lease file (not applied: warned).
    reload_config(&net, &dir, 251, "v2.0", "other.journal");
    server.signal(rustix::process::Signal::HUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !read_log(&log).contains("dhcp configuration reloaded") {
        assert!(Instant::now() < deadline, "no reload: {}", read_log(&log));
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = read_log(&log);
    assert!(
        text.contains("lease_file changed; kept as started"),
        "{text}"
    );
    // A new client: the new pool and file.
    let second = scapy(&net, &dir, &["02:00:00:00:71:02", "0x8000", "0x7200"]);
    let (ip2, file) = reply(&second, "5");
    assert_eq!(
        (ip2.octets()[2], file.as_str()),
        (251, "v2.0"),
        "{second:?}"
    );
    // The first client's lease was kept: its INIT-REBOOT for the old address is ACKed.
    let again = scapy(
        &net,
        &dir,
        &["02:00:00:00:71:01", "0x8000", "0x7300", &ip1.to_string()],
    );
    let (ip, file) = reply(&again, "5");
    assert_eq!((ip, file.as_str()), (ip1, "v2.0"), "{again:?}");
    // Stop; every lease went to the journal opened at the start.
    server.signal(rustix::process::Signal::TERM);
    let (out, exited) = server.finish(Duration::from_secs(10));
    assert!(
        exited && out.status.success(),
        "{out:?}\n{}",
        read_log(&log)
    );
    assert!(read_log(&log).contains("lease journal flushed"));
    assert_eq!(journal_records(&dir.path("leases.journal")), 3);
    assert!(!dir.path("other.journal").exists());
}

#[test]
fn the_arrival_interface_picks_subnet_and_server_id_and_filters() {
    assert!(Path::new(PYTHON).exists(), "{PYTHON} (with scapy) missing");
    let net = NetPair::new("dhif");
    let dir = Scratch::new("ifaces");
    // A second link between the namespaces, on a /24 of its own (not a_addr's).
    let third = if net.a_addr.octets()[..3] == [198, 19, 100] {
        101
    } else {
        100
    };
    let a2 = Ipv4Addr::new(198, 19, third, 1);
    let (if_a2, if_b2) = (format!("{}x", net.a_if), format!("{}x", net.b_if));
    netboot_testkit::ip(&[
        "link",
        "add",
        &if_a2,
        "netns",
        net.a.name(),
        "type",
        "veth",
        "peer",
        "name",
        &if_b2,
        "netns",
        net.b.name(),
    ]);
    netboot_testkit::ip(&[
        "-n",
        net.a.name(),
        "addr",
        "add",
        &format!("{a2}/24"),
        "dev",
        &if_a2,
    ]);
    netboot_testkit::ip(&["-n", net.a.name(), "link", "set", &if_a2, "up"]);
    netboot_testkit::ip(&["-n", net.b.name(), "link", "set", &if_b2, "up"]);
    let write = |interfaces: &str| {
        let text = format!(
            r#"[server]
interfaces = [{interfaces}]
lease_file = "{journal}"

[[subnet]]
network = "198.19.{third}.0/24"
range = ["198.19.{third}.10", "198.19.{third}.20"]

[[subnet]]
network = "198.18.0.0/15"
range = ["198.19.250.10", "198.19.250.250"]
"#,
            journal = dir.path("leases.journal").display(),
        );
        let p = dir.path("dhcpd.toml");
        std::fs::write(&p, text).unwrap();
        p
    };
    let sid_and_net = |lines: &[String]| -> (String, u8) {
        let l = &lines[0];
        let ip: Ipv4Addr = field(l, "yiaddr").parse().unwrap();
        (field(l, "sid").to_owned(), ip.octets()[2])
    };
    // Every interface: each link gets its own subnet and our address on it as option 54.
    let log = dir.path("all.log");
    let server = start(&net, &write(""), &log);
    let (ok, first) = scapy_on(
        &net,
        &net.b_if,
        &dir,
        &["02:00:00:00:1f:01", "0x8000", "0x1f00"],
    );
    assert!(ok, "{first:?}\n{}", read_log(&log));
    assert_eq!(
        sid_and_net(&first),
        (net.a_addr.to_string(), 250),
        "{first:?}"
    );
    let (ok, second) = scapy_on(
        &net,
        &if_b2,
        &dir,
        &["02:00:00:00:1f:02", "0x8000", "0x1f10"],
    );
    assert!(ok, "{second:?}\n{}", read_log(&log));
    assert_eq!(sid_and_net(&second), (a2.to_string(), third), "{second:?}");
    drop(server);
    // Only the first link configured: the second one is not answered.
    let log = dir.path("one.log");
    let _server = start(&net, &write(&format!("\"{}\"", net.a_if)), &log);
    let (ok, lines) = scapy_on(
        &net,
        &if_b2,
        &dir,
        &["02:00:00:00:1f:03", "0x8000", "0x1f20"],
    );
    assert!(
        !ok && lines.iter().any(|l| l.contains("NOREPLY")),
        "{lines:?}"
    );
    let (ok, lines) = scapy_on(
        &net,
        &net.b_if,
        &dir,
        &["02:00:00:00:1f:04", "0x8000", "0x1f30"],
    );
    assert!(ok, "{lines:?}");
}

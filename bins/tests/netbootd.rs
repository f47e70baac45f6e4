//! netbootd: `--check-config` on good and bad files (lts.conf under the TFTP root included),
//! and a run in a namespace pair where real clients use each service (busybox udhcpc for
//! DHCP, curl for TFTP, nbdinfo for NBD), then SIGTERM → exit 0 within a bound.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use netboot_testkit::{NetPair, Proto, Scratch, require_tool};

const BIN: &str = env!("CARGO_BIN_EXE_netbootd");
const T: Duration = Duration::from_secs(30);

const GOOD_LTS: &str =
    "[Default]\nLTSP_NBD_TO_RAM = true\n\n[52:54:00:aa:*]\nLTSP_NBD_TO_RAM = false\n";
/// getltscfg needs the newline after the last comment: an error for the ltsconf checks.
const BAD_LTS: &str = "[Default]\nA = 1\n# end";

/// A farm in `dir`: a TFTP root with a file and lts.conf, an NBD image of 1 MiB.
fn farm(dir: &Scratch, lts: &str) {
    std::fs::create_dir_all(dir.path("tftp/ltsp")).unwrap();
    std::fs::create_dir_all(dir.path("tftp/boot")).unwrap();
    std::fs::write(dir.path("tftp/ltsp/lts.conf"), lts).unwrap();
    let kernel: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.path("tftp/boot/vmlinuz"), kernel).unwrap();
    std::fs::write(dir.path("root.img"), vec![7u8; 1 << 20]).unwrap();
}

/// The config: `iface` and `addr` are the server's interface and address.
fn config(dir: &Scratch, iface: &str, addr: &str, extra: &str) -> PathBuf {
    let text = format!(
        r#"[dhcp.server]
interfaces = ["{iface}"]
lease_file = "{journal}"

[dhcp.boot]
default = "boot/grub/i386-pc/core.0"

[[dhcp.boot.rule]]
arch = [7, 9]
file = "boot/grub/x86_64-efi/core.efi"

[[dhcp.subnet]]
network = "198.18.0.0/15"
range = ["198.19.251.10", "198.19.251.250"]
routers = ["{addr}"]
next_server = "{addr}"

[tftp]
root = "{root}"
listen = ["{addr}:69"]

[nbd]
listen = ["{addr}:10809"]
export = ["root={image}"]
{extra}"#,
        journal = dir.path("leases.journal").display(),
        root = dir.path("tftp").display(),
        image = dir.path("root.img").display(),
    );
    let p = dir.path("netboot.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn check(cfg: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--config")
        .arg(cfg)
        .arg("--check-config")
        .args(extra)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn check_config_accepts_a_good_farm() {
    let dir = Scratch::new("good");
    farm(&dir, GOOD_LTS);
    let cfg = config(&dir, "eth0", "198.18.0.1", "");
    let o = check(&cfg, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("ok (dhcp on, tftp on, nbd on, ra on)"),
        "{}",
        text(&o)
    );
}

#[test]
fn the_example_farm_config_parses() {
    // Its paths exist only on a farm server; what must hold here is that every key is known.
    let example = netboot_testkit::workspace_root().join("examples/farm/netboot.toml");
    let o = check(&example, &[]);
    let out = text(&o);
    assert!(!out.contains("unknown field"), "{out}");
    assert!(!out.contains("[dhcp]"), "the DHCP table must pass: {out}");
    assert!(
        out.contains("/srv/farm"),
        "only the farm paths may fail: {out}"
    );
}

#[test]
fn check_config_reports_every_bad_table() {
    let dir = Scratch::new("bad");
    farm(&dir, GOOD_LTS);
    // An unknown top-level table.
    let cfg = config(&dir, "eth0", "198.18.0.1", "[http]\nport = 80\n");
    let o = check(&cfg, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("unknown field `http`"), "{}", text(&o));
    // An unknown key inside [tftp] (a typo must not be ignored).
    let cfg = config(&dir, "eth0", "198.18.0.1", "");
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        good.replace("[tftp]\n", "[tftp]\nmax-blksise = 1468\n"),
    )
    .unwrap();
    let o = check(&cfg, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("max-blksise"), "{}", text(&o));
    // A bad DHCP network (with its line in the whole file), a missing TFTP root and a missing
    // NBD image, all reported in one run.
    std::fs::write(
        &cfg,
        good.replace("198.18.0.0/15", "198.18.0.0/40")
            .replace("/tftp\"", "/nowhere\"")
            .replace("root.img", "missing.img"),
    )
    .unwrap();
    let o = check(&cfg, &[]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("netboot.toml:13:11: [dhcp] network"), "{out}");
    assert!(out.contains("[tftp] root"), "{out}");
    assert!(out.contains("[nbd] export"), "{out}");
}

#[test]
fn ltsconf_errors_under_the_tftp_root_refuse_the_start() {
    let dir = Scratch::new("lts");
    farm(&dir, BAD_LTS);
    let cfg = config(&dir, "eth0", "198.18.0.1", "");
    let o = check(&cfg, &[]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("ltsp/lts.conf:3:"), "{out}");
    assert!(out.contains("--allow-ltsconf-errors"), "{out}");
    // Overridden, the check passes (the error is still shown).
    let o = check(&cfg, &["--allow-ltsconf-errors"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("ltsp/lts.conf:3:"), "{}", text(&o));
    // And the server itself refuses to start without the override.
    let o = Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

/// Runs busybox udhcpc once in `net.b` with `extra` options; returns its output and the
/// environment its script saw when bound (empty if it never bound).
fn udhcpc(net: &NetPair, dir: &Scratch, extra: &[&str]) -> (Output, String) {
    let script = dir.path("udhcpc.sh");
    let env = dir.path("udhcpc.env");
    let _ = std::fs::remove_file(&env);
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = bound ] && env > {}\nexit 0\n",
            env.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let script = script.display().to_string();
    let mut args = vec![
        "-i", &net.b_if, "-f", "-q", "-n", "-t", "5", "-T", "1", "-s", &script,
    ];
    args.extend_from_slice(extra);
    let o = net.b.run("udhcpc", args, T);
    let seen = std::fs::read_to_string(&env).unwrap_or_default();
    (o, seen)
}

#[test]
fn real_clients_use_all_three_services_then_sigterm_stops_it() {
    for t in ["udhcpc", "curl", "nbdinfo", "bash"] {
        require_tool(t);
    }
    let net = NetPair::new("nbtd");
    let dir = Scratch::new("run");
    farm(&dir, GOOD_LTS);
    let addr = net.a_addr.to_string();
    let cfg = config(&dir, &net.a_if, &addr, "handshake-timeout = 300\n");
    let server = net.a.spawn(BIN, [format!("--config={}", cfg.display())]);
    for (proto, port) in [(Proto::Tcp, 10809), (Proto::Udp, 69), (Proto::Udp, 67)] {
        if let Err(e) = net.a.wait_for_port(proto, port, Duration::from_secs(20)) {
            let (out, _) = server.finish(Duration::from_secs(1));
            panic!("{e}: {}", text(&out));
        }
    }

    // DHCP: a UEFI client gets an address and the UEFI boot file.
    let (o, seen) = udhcpc(
        &net,
        &dir,
        &["-x", "0x5d:0007", "-V", "PXEClient:Arch:00007:UNDI:003016"],
    );
    assert!(
        o.status.success() && seen.contains("ip=198.19.251."),
        "udhcpc: {}\n{seen}",
        text(&o)
    );
    assert!(
        seen.contains("boot_file=boot/grub/x86_64-efi/core.efi"),
        "{seen}"
    );

    // TFTP: curl fetches the kernel, byte for byte.
    let got = dir.path("vmlinuz.got");
    let o = net.b.run(
        "curl",
        [
            "-sS",
            "-o",
            &got.display().to_string(),
            &format!("tftp://{addr}/boot/vmlinuz"),
        ],
        T,
    );
    assert!(o.status.success(), "curl: {}", text(&o));
    assert_eq!(
        std::fs::read(&got).unwrap(),
        std::fs::read(dir.path("tftp/boot/vmlinuz")).unwrap()
    );

    // NBD: nbdinfo sees the export.
    let o = net
        .b
        .run("nbdinfo", [format!("nbd://{addr}:10809/root")], T);
    assert!(o.status.success(), "nbdinfo: {}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("export-size: 1048576"),
        "{}",
        text(&o)
    );

    // An NBD client that never closes nor finishes (a powered-off VM; the handshake timeout
    // is raised past the test): shutdown must not wait for it.
    let holder = net.b.spawn(
        "bash",
        ["-c", &format!("exec 3<>/dev/tcp/{addr}/10809; sleep 120")],
    );
    std::thread::sleep(Duration::from_millis(300));

    let start = Instant::now();
    server.signal(rustix::process::Signal::TERM);
    let (out, exited) = server.finish(Duration::from_secs(30));
    let log = text(&out);
    assert!(
        exited,
        "netbootd did not exit within 30 s of SIGTERM:\n{log}"
    );
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(start.elapsed() < Duration::from_secs(30));
    assert!(log.contains("lease bound"), "{log}");
    assert!(log.contains("lease journal flushed"), "{log}");
    // The held connection was there and was given up on, not waited for.
    assert!(log.contains("connections still open at shutdown"), "{log}");
    assert!(log.contains("netbootd stopped"), "{log}");
    drop(holder);
}

/// Sends router solicitations from `ns` until an advertisement arrives (or 10 s pass) and
/// prints what it carried: `ra hop=<hop limit> lifetime=<s> flags=<M/O byte> len=<bytes>`.
const RS_PROBE: &str = r#"
import socket, struct, sys, time
ifname = sys.argv[1]
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
s.settimeout(0.5)
idx = socket.if_nametoindex(ifname)
end = time.time() + 10
while time.time() < end:
    try:
        s.sendto(bytes([133, 0, 0, 0, 0, 0, 0, 0]), ("ff02::2", 0, 0, idx))
    except OSError:
        pass  # the link-local address may still be tentative
    try:
        data, anc, _, src = s.recvmsg(1500, socket.CMSG_SPACE(4))
    except socket.timeout:
        continue
    if data and data[0] == 134:
        hop = next((struct.unpack("i", d)[0] for l, t, d in anc if t == socket.IPV6_HOPLIMIT), -1)
        print("ra hop=%d lifetime=%d flags=%d len=%d src=%s" % (hop, struct.unpack("!H", data[6:8])[0], data[5], len(data), src[0]))
        sys.exit(0)
print("no ra")
sys.exit(1)
"#;

#[test]
fn a_bare_router_advertisement_answers_solicitations_by_default() {
    require_tool("/usr/bin/python3");
    let net = NetPair::new("nbra");
    let dir = Scratch::new("ra");
    farm(&dir, GOOD_LTS);
    let addr = net.a_addr.to_string();
    let cfg = config(&dir, &net.a_if, &addr, "");
    let o = check(&cfg, &[]);
    assert!(text(&o).contains("ra on"), "{}", text(&o));
    let server = net.a.spawn(BIN, [format!("--config={}", cfg.display())]);
    if let Err(e) = net.a.wait_for_port(Proto::Udp, 67, Duration::from_secs(20)) {
        let (out, _) = server.finish(Duration::from_secs(1));
        panic!("{e}: {}", text(&out));
    }
    let o = net
        .b
        .run("/usr/bin/python3", ["-c", RS_PROBE, &net.b_if], T);
    let seen = text(&o);
    assert!(o.status.success(), "{seen}");
    // Hop limit 255 (else hosts drop it), router lifetime 0, no M/O flags, and the source
    // link-layer address option; sent from the server's link-local address.
    assert!(
        seen.contains("ra hop=255 lifetime=0 flags=0 len=24 src=fe80::"),
        "{seen}"
    );
    server.signal(rustix::process::Signal::TERM);
    let (out, exited) = server.finish(Duration::from_secs(30));
    assert!(exited && out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("sending bare IPv6 router advertisements"),
        "{}",
        text(&out)
    );

    // Turned off, nothing answers.
    let cfg = config(&dir, &net.a_if, &addr, "\n[ra]\nenable = false\n");
    assert!(text(&check(&cfg, &[])).contains("ra off"));
    let server = net.a.spawn(BIN, [format!("--config={}", cfg.display())]);
    net.a
        .wait_for_port(Proto::Udp, 67, Duration::from_secs(20))
        .unwrap();
    let o = net
        .b
        .run("/usr/bin/python3", ["-c", RS_PROBE, &net.b_if], T);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("no ra"), "{}", text(&o));
    server.signal(rustix::process::Signal::TERM);
    let _ = server.finish(Duration::from_secs(30));
}

/// A libnbd client that connects, reads, reports `connected` in `argv[2]`, waits for the file
/// `argv[3]` (at most 60 s), then reads the whole export again over the same connection and
/// writes `same` or `different` (compared with the image `argv[4]`) to `argv[2]`.
const HELD_CLIENT: &str = r#"
import nbd, os, sys, time
h = nbd.NBD()
h.connect_uri(sys.argv[1])
h.pread(4096, 0)
open(sys.argv[2], "w").write("connected")
end = time.time() + 60
while not os.path.exists(sys.argv[3]) and time.time() < end:
    time.sleep(0.05)
data = h.pread(h.get_size(), 0)
same = data == open(sys.argv[4], "rb").read()
open(sys.argv[2], "w").write("same" if same else "different")
h.shutdown()
"#;

/// Polls `f` every 100 ms until it returns true or `limit` passes.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn sighup_reloads_every_service_without_dropping_nbd_clients() {
    for t in ["udhcpc", "curl", "nbdinfo"] {
        require_tool(t);
    }
    require_tool("/usr/bin/python3");
    let net = NetPair::new("nbhup");
    let dir = Scratch::new("hup");
    farm(&dir, GOOD_LTS);
    let addr = net.a_addr.to_string();
    let cfg = config(&dir, &net.a_if, &addr, "");
    let server = net.a.spawn(BIN, [format!("--config={}", cfg.display())]);
    for (proto, port) in [(Proto::Tcp, 10809), (Proto::Udp, 69), (Proto::Udp, 67)] {
        if let Err(e) = net.a.wait_for_port(proto, port, Duration::from_secs(20)) {
            let (out, _) = server.finish(Duration::from_secs(1));
            panic!("{e}: {}", text(&out));
        }
    }

    // An NBD client mid-boot: connected before the reload, reading after it.
    let state = dir.path("client.state");
    let go = dir.path("client.go");
    let client = net.b.spawn(
        "/usr/bin/python3",
        [
            "-c".to_string(),
            HELD_CLIENT.to_string(),
            format!("nbd://{addr}:10809/root"),
            state.display().to_string(),
            go.display().to_string(),
            dir.path("root.img").display().to_string(),
        ],
    );
    assert!(
        eventually(T, || std::fs::read_to_string(&state)
            .is_ok_and(|s| s == "connected")),
        "the NBD client did not connect"
    );

    // A new config: a second export, another TFTP root, another BIOS boot file.
    std::fs::create_dir_all(dir.path("tftp2")).unwrap();
    std::fs::write(dir.path("tftp2/only-in-new-root"), b"reloaded\n").unwrap();
    std::fs::write(dir.path("second.img"), vec![9u8; 2 << 20]).unwrap();
    let text_cfg = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("boot/grub/i386-pc/core.0", "boot/bios-after-reload.0")
        .replace(
            &format!("root = \"{}\"", dir.path("tftp").display()),
            &format!("root = \"{}\"", dir.path("tftp2").display()),
        )
        .replace(
            "export = [\"root=",
            &format!(
                "export = [\"second={}\", \"root=",
                dir.path("second.img").display()
            ),
        );
    std::fs::write(&cfg, text_cfg).unwrap();
    server.signal(rustix::process::Signal::HUP);

    // New NBD connections see the new export table.
    assert!(
        eventually(T, || {
            let o = net
                .b
                .run("nbdinfo", [format!("nbd://{addr}:10809/second")], T);
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("2097152")
        }),
        "the second export never appeared"
    );
    // New TFTP requests are served from the new root.
    let got = dir.path("got");
    let o = net.b.run(
        "curl",
        [
            "-sS",
            "-o",
            &got.display().to_string(),
            &format!("tftp://{addr}/only-in-new-root"),
        ],
        T,
    );
    assert!(o.status.success(), "curl: {}", text(&o));
    assert_eq!(std::fs::read(&got).unwrap(), b"reloaded\n");
    // New DHCP exchanges get the new boot file.
    let (o, seen) = udhcpc(&net, &dir, &["-x", "0x5d:0000"]);
    assert!(o.status.success(), "udhcpc: {}", text(&o));
    assert!(
        seen.contains("boot_file=boot/bios-after-reload.0"),
        "{seen}"
    );

    // A broken file on the next SIGHUP is refused; the running config stays.
    std::fs::write(&cfg, "[nbd]\nexport = 7\n").unwrap();
    server.signal(rustix::process::Signal::HUP);
    std::thread::sleep(Duration::from_millis(500));
    let o = net
        .b
        .run("nbdinfo", [format!("nbd://{addr}:10809/second")], T);
    assert!(o.status.success(), "after a refused reload: {}", text(&o));

    // The client connected before the reloads still reads its whole export.
    std::fs::write(&go, b"").unwrap();
    let (out, exited) = client.finish(T);
    assert!(exited && out.status.success(), "client: {}", text(&out));
    assert_eq!(std::fs::read_to_string(&state).unwrap(), "same");

    server.signal(rustix::process::Signal::TERM);
    let (out, exited) = server.finish(T);
    let log = text(&out);
    assert!(exited && out.status.success(), "{log}");
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(log.contains("reload refused"), "{log}");
}

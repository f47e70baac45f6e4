//! The harness proves itself across a real veth pair.

use netboot_testkit::{NetPair, Proto, require_tool};
use std::process::Command;
use std::time::Duration;

const ECHO: &str = env!("CARGO_BIN_EXE_netboot-udp-echo");

fn netns_names() -> String {
    let out = Command::new(require_tool("ip"))
        .args(["netns", "list"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn udp_echo_crosses_the_veth_pair() {
    let net = NetPair::new("echo");
    let server = format!("{}:7007", net.a_addr);
    let echo = net.a.spawn(ECHO, ["serve", server.as_str(), "1", "20"]);
    net.a
        .wait_for_port(Proto::Udp, 7007, Duration::from_secs(10))
        .unwrap();
    let out = net.b.run(
        ECHO,
        ["send", server.as_str(), "across the wire"],
        Duration::from_secs(10),
    );
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reply = String::from_utf8_lossy(&out.stdout);
    assert_eq!(reply.trim(), format!("across the wire from {server}"));
    let (_, exited) = echo.finish(Duration::from_secs(5));
    assert!(exited, "the echo server serves one datagram and exits");
}

#[test]
fn namespaces_are_isolated_from_each_other_and_the_host() {
    let net = NetPair::new("iso");
    // The server namespace cannot see the client's address as local, and the host has
    // neither interface.
    let out = net.a.run("ip", ["-o", "addr"], Duration::from_secs(5));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&net.a_addr.to_string()) && !text.contains(&net.b_addr.to_string()));
    let host = Command::new("ip").args(["-o", "link"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&host.stdout).contains(&net.a_if));
}

#[test]
fn tcp_with_busybox_nc_across_the_pair() {
    let busybox = require_tool("busybox");
    let net = NetPair::new("tcp");
    let server = net.a.spawn(&busybox, ["nc", "-l", "-p", "7008"]);
    net.a
        .wait_for_port(Proto::Tcp, 7008, Duration::from_secs(10))
        .unwrap();
    let script = format!(
        "echo hello over tcp | {} nc -w 2 {} 7008",
        busybox.display(),
        net.a_addr
    );
    let out = net
        .b
        .run("sh", ["-c", script.as_str()], Duration::from_secs(10));
    assert!(
        out.status.success(),
        "nc client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (got, _) = server.finish(Duration::from_secs(5));
    assert_eq!(String::from_utf8_lossy(&got.stdout), "hello over tcp\n");
}

#[test]
fn namespaces_are_removed_even_when_the_test_panics() {
    let names = std::thread::spawn(|| {
        let net = NetPair::new("pnc");
        let names = (net.a.name().to_owned(), net.b.name().to_owned());
        assert!(netns_names().contains(&names.0));
        std::panic::resume_unwind(Box::new(names));
    })
    .join()
    .expect_err("the thread panicked on purpose");
    let (a, b) = *names.downcast::<(String, String)>().unwrap();
    let left = netns_names();
    assert!(
        !left.contains(&a) && !left.contains(&b),
        "leftover namespaces: {left}"
    );
}

//! netboot-tftpd's config file and `--check-config`.

#[path = "tftp_util.rs"]
mod util;

use std::process::Command;
use std::time::Duration;

use util::*;

fn check(args: &[&str]) -> (bool, String) {
    let out = netboot_testkit::run_with_timeout(
        Command::new(server_bin()).arg("--check-config").args(args),
        Duration::from_secs(10),
    )
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn check_config_accepts_a_good_file_and_names_every_problem() {
    let dir = Scratch::new("config");
    let root = dir.path("root");
    std::fs::create_dir(&root).unwrap();
    let good = dir.path("good.toml");
    std::fs::write(
        &good,
        format!("root = {:?}\nlisten = [\"127.0.0.1:69\", \"[::1]:69\"]\nmax-blksize = 1468\nrollover = \"refuse\"\nallow-write = true\n", root.display().to_string()),
    )
    .unwrap();
    let (ok, text) = check(&["--config", good.to_str().unwrap()]);
    assert!(ok, "{text}");
    assert!(text.contains("configuration ok"));

    let typo = dir.path("typo.toml");
    std::fs::write(&typo, "root = \"/srv\"\nmax-blocksize = 1468\n").unwrap();
    let (ok, text) = check(&["--config", typo.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        text.contains("max-blocksize") && text.contains("line 2"),
        "{text}"
    );

    let bad = dir.path("bad.toml");
    std::fs::write(
        &bad,
        "max-blksize = 7\nthreads = 0\nlisten = [\"nonsense\"]\nrollover = \"2\"\n",
    )
    .unwrap();
    let (ok, text) = check(&["--config", bad.to_str().unwrap()]);
    assert!(!ok);
    assert!(text.contains("rollover"), "{text}");
    std::fs::write(
        &bad,
        "max-blksize = 7\nthreads = 0\nlisten = [\"nonsense\"]\n",
    )
    .unwrap();
    let (ok, text) = check(&["--config", bad.to_str().unwrap()]);
    assert!(!ok);
    for word in ["root: required", "max-blksize 7", "threads", "nonsense"] {
        assert!(text.contains(word), "missing {word:?} in {text}");
    }
    // A flag overrides the file: a good --root makes only the remaining problems show.
    let (ok, text) = check(&[
        "--config",
        bad.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
    ]);
    assert!(!ok && !text.contains("root: required"), "{text}");
    let (ok, text) = check(&["--root", "/nonexistent/netboot"]);
    assert!(!ok && text.contains("/nonexistent/netboot"), "{text}");
}

#[test]
fn the_server_runs_from_a_config_file() {
    let dir = Scratch::new("config-run");
    make_root(&dir.0);
    let cfg = dir.0.with_extension("toml");
    std::fs::write(
        &cfg,
        format!(
            "root = {:?}\nmax-blksize = 1024\n",
            dir.0.display().to_string()
        ),
    )
    .unwrap();
    // The file gives the root; --listen comes from start_loopback's flags.
    let port = netboot_testkit::free_udp_port();
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(server_bin());
    cmd.args(["--config", cfg.to_str().unwrap(), "--listen", &listen]);
    let _srv = netboot_testkit::Background::spawn(cmd);
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    let c = client("127.0.0.1:0", Duration::from_millis(500));
    let req = request(1, b"k1468", "octet", &[("blksize", "1468")]);
    let f = fetch(&c, addr, &req, 1024, 1, false, Duration::from_secs(10));
    let _ = std::fs::remove_file(&cfg);
    assert_eq!(
        f.oack.as_deref(),
        Some(&b"\x00\x06blksize\x001024\x00"[..]),
        "max-blksize from the file"
    );
    assert_eq!(f.data, std::fs::read(dir.path("k1468")).unwrap());
}

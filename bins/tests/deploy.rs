//! The deployment files in deploy/: the systemd units pass `systemd-analyze verify` with no
//! complaint, the NBD socket unit really activates netbootd (systemd-socket-activate hands it
//! the listener as LISTEN_FDS, nbdinfo reads through it), the Kubernetes manifests are valid
//! YAML whose ConfigMap holds a netboot.toml that passes `netbootd --check-config` and an
//! lts.conf that passes `ltsconf check`, and the Containerfile copies only what exists.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use netboot_testkit::{Netns, Scratch, require_tool, run_with_timeout, workspace_root};

const NETBOOTD: &str = env!("CARGO_BIN_EXE_netbootd");
const LTSCONF: &str = env!("CARGO_BIN_EXE_ltsconf");
const T: Duration = Duration::from_secs(30);

fn deploy(rel: &str) -> PathBuf {
    workspace_root().join("deploy").join(rel)
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn run(cmd: &mut Command) -> Output {
    run_with_timeout(cmd, T).unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

const UNITS: [&str; 4] = [
    "netbootd.service",
    "netbootd-nbd.socket",
    "netboot-nbdd.service",
    "netboot-nbdd.socket",
];

#[test]
fn systemd_units_verify_cleanly() {
    require_tool("systemd-analyze");
    // The units name /usr/local/bin, where an install puts the binaries; here they point at
    // the ones just built (verify checks that every command exists and is executable).
    let dir = Scratch::new("units");
    let bin_dir = Path::new(NETBOOTD).parent().unwrap().display().to_string();
    for unit in UNITS {
        let text = std::fs::read_to_string(deploy(&format!("systemd/{unit}"))).unwrap();
        assert!(text.contains("/usr/local/bin/") || unit.ends_with(".socket"));
        std::fs::write(
            dir.path(unit),
            text.replace("/usr/local/bin/", &format!("{bin_dir}/")),
        )
        .unwrap();
    }
    let mut cmd = Command::new("systemd-analyze");
    cmd.current_dir(&dir.0).arg("verify");
    for unit in UNITS {
        cmd.arg(format!("./{unit}"));
    }
    let o = run(&mut cmd);
    // verify exits 0 on unknown keys too, with a warning: any output is a failure.
    assert!(
        o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(),
        "{}",
        text(&o)
    );

    // The check is not blind: a misspelt key is reported.
    std::fs::write(
        dir.path("netbootd.service"),
        std::fs::read_to_string(dir.path("netbootd.service"))
            .unwrap()
            .replace("KillSignal=", "KilSignal="),
    )
    .unwrap();
    let o = run(Command::new("systemd-analyze")
        .current_dir(&dir.0)
        .args(["verify", "./netbootd.service"]));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("KilSignal"),
        "{}",
        text(&o)
    );
}

/// The `ListenStream=` port of a socket unit.
fn listen_port(unit: &str) -> u16 {
    let text = std::fs::read_to_string(deploy(&format!("systemd/{unit}"))).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("ListenStream="))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("{unit}: no ListenStream=PORT"))
}

#[test]
fn the_nbd_socket_unit_activates_netbootd() {
    for t in ["systemd-socket-activate", "nbdinfo"] {
        require_tool(t);
    }
    let port = listen_port("netbootd-nbd.socket");
    let dir = Scratch::new("activate");
    let image: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 253) as u8).collect();
    std::fs::write(dir.path("root.img"), &image).unwrap();
    // As the unit's comment says: no `listen` in [nbd], the listener comes from systemd.
    let cfg = dir.path("netboot.toml");
    std::fs::write(
        &cfg,
        format!(
            "[nbd]\nexport = [\"root={}\"]\n",
            dir.path("root.img").display()
        ),
    )
    .unwrap();
    // A namespace of its own: its loopback has every port free.
    let ns = Netns::new("nbact");
    let server = ns.spawn(
        "systemd-socket-activate",
        [
            "-l".to_string(),
            format!("127.0.0.1:{port}"),
            NETBOOTD.to_string(),
            format!("--config={}", cfg.display()),
        ],
    );
    ns.wait_for_port(netboot_testkit::Proto::Tcp, port, T)
        .unwrap();
    let o = ns.run("nbdinfo", [format!("nbd://127.0.0.1:{port}/root")], T);
    let seen = text(&o);
    assert!(o.status.success(), "{seen}");
    assert!(seen.contains("export-size: 1048576"), "{seen}");
    server.signal(rustix::process::Signal::TERM);
    let (out, exited) = server.finish(T);
    let log = text(&out);
    assert!(exited && out.status.success(), "{log}");
    assert!(
        log.contains("listening on an activated TCP socket"),
        "{log}"
    );
}

/// `data:` entries of the ConfigMap, read with a real YAML parser (PyYAML).
fn configmap_files(dir: &Scratch) -> Vec<PathBuf> {
    require_tool("/usr/bin/python3");
    let script = r#"
import sys, yaml
docs = list(yaml.safe_load_all(open(sys.argv[1])))
kinds = [d["kind"] for d in docs]
assert kinds == ["Namespace", "ConfigMap", "Deployment"], kinds
dep = docs[2]["spec"]["template"]["spec"]
assert dep["hostNetwork"] is True
caps = dep["containers"][0]["securityContext"]["capabilities"]["add"]
assert sorted(caps) == ["NET_ADMIN", "NET_BIND_SERVICE", "NET_RAW"], caps
mounts = {m["name"] for m in dep["containers"][0]["volumeMounts"]}
assert mounts == {v["name"] for v in dep["volumes"]}, mounts
for name, body in docs[1]["data"].items():
    open(sys.argv[2] + "/" + name, "w").write(body)
    print(name)
"#;
    let o = run(Command::new("/usr/bin/python3").args([
        "-c",
        script,
        &deploy("k8s/netboot.yaml").display().to_string(),
        &dir.0.display().to_string(),
    ]));
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|n| dir.path(n))
        .collect()
}

#[test]
fn kubernetes_configmap_holds_a_config_that_checks() {
    let dir = Scratch::new("k8s");
    let files = configmap_files(&dir);
    let mut names: Vec<_> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["lts.conf", "netboot.toml"]);

    let o = run(Command::new(LTSCONF).arg("check").arg(dir.path("lts.conf")));
    assert!(o.status.success(), "{}", text(&o));

    // The pod mounts the farm at /srv/farm and the ConfigMap's lts.conf under its TFTP root;
    // here a scratch farm stands in for /srv/farm.
    let farm = dir.path("farm");
    std::fs::create_dir_all(farm.join("tftp/ltsp")).unwrap();
    std::fs::copy(dir.path("lts.conf"), farm.join("tftp/ltsp/lts.conf")).unwrap();
    std::fs::write(farm.join("root.sqfs"), vec![0u8; 4096]).unwrap();
    let toml = std::fs::read_to_string(dir.path("netboot.toml"))
        .unwrap()
        .replace("/srv/farm", &farm.display().to_string());
    std::fs::write(dir.path("netboot.toml"), toml).unwrap();
    let o = run(Command::new(NETBOOTD)
        .arg("--check-config")
        .arg(format!("--config={}", dir.path("netboot.toml").display())));
    let seen = text(&o);
    assert!(o.status.success(), "{seen}");
    assert!(
        seen.contains("ok (dhcp on, tftp on, nbd on, ra on)"),
        "{seen}"
    );
}

#[test]
fn the_containerfile_copies_what_exists() {
    let text = std::fs::read_to_string(deploy("Containerfile")).unwrap();
    let mut copies = 0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("COPY ") else {
            continue;
        };
        if rest.starts_with("--from=") {
            continue;
        }
        let parts: Vec<&str> = rest.split_whitespace().collect();
        for src in &parts[..parts.len() - 1] {
            let p = workspace_root().join(src);
            assert!(
                p.exists(),
                "Containerfile: COPY {src}: {} missing",
                p.display()
            );
            copies += 1;
        }
    }
    assert!(copies >= 2, "{text}");
    // Each binary the image installs is one this workspace builds.
    for bin in [
        "netbootd",
        "netboot-dhcpd",
        "netboot-tftpd",
        "netboot-nbdd",
        "ltsconf",
    ] {
        assert!(
            text.contains(&format!("target/release/{bin}")),
            "Containerfile does not install {bin}"
        );
        assert!(
            workspace_root()
                .join(format!("bins/src/bin/{bin}.rs"))
                .exists()
        );
    }
    // The build context leaves the target directory out.
    let ignore = std::fs::read_to_string(workspace_root().join(".containerignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "target/"));
}

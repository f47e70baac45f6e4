//! STARTTLS against libnbd (GnuTLS) and nbdinfo, with certificates made by the openssl CLI
//! in a scratch directory: TLS required (verified server, structured replies negotiated
//! again after STARTTLS, plaintext clients refused with ERR_TLS_REQD, a client that does
//! not trust the server's CA fails, junk after STARTTLS ends only that connection), and TLS
//! optional with client certificates (plaintext served, a TLS client with a certificate from
//! the CA served, one without refused).

use netboot_testkit::{
    Background, Scratch, free_tcp_port, require_tool, run_with_timeout, wait_for_tcp,
};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_netboot-nbdd");
const T: Duration = Duration::from_secs(30);

const SCRIPT: &str = r#"
import sys, nbd
pa, pb, ca_dir, client_dir, wrong_dir, img = sys.argv[1:]
data = open(img, "rb").read()
def tls(d):
    h = nbd.NBD()
    h.set_tls(nbd.TLS_REQUIRE)
    h.set_tls_certificates(d)
    h.set_tls_verify_peer(True)
    return h
def refused(h, uri, what):
    try:
        h.connect_uri(uri)
    except nbd.Error as e:
        return str(e)
    raise AssertionError(what)

# Required: a verified TLS client reads; structured replies were negotiated after STARTTLS.
h = tls(ca_dir)
h.connect_uri("nbds://127.0.0.1:%s/root" % pa)
assert h.get_tls_negotiated() and h.get_structured_replies_negotiated()
assert h.pread(65536, 4096) == data[4096:4096 + 65536]
assert h.pread(len(data), 0) == data
h.shutdown()

# Required: a plaintext client gets ERR_TLS_REQD for its options and never reaches an export.
h = nbd.NBD()
h.set_tls(nbd.TLS_DISABLE)
h.set_opt_mode(True)
h.connect_uri("nbd://127.0.0.1:%s/root" % pa)
try:
    h.opt_go()
    raise AssertionError("plaintext GO accepted while TLS is required")
except nbd.Error as e:
    pass
refused(nbd.NBD(), "nbd://127.0.0.1:%s/root" % pa, "plaintext connect accepted")
# The same on the wire: the reply type is ERR_TLS_REQD (2^31 + 5), and EXPORT_NAME, which
# cannot carry an error, ends the connection.
import socket, struct
s = socket.create_connection(("127.0.0.1", int(pa)))
def recvn(n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            return b
        b += c
    return b
assert recvn(18)[:16] == b"NBDMAGICIHAVEOPT"
s.sendall(struct.pack(">I", 3))
for opt in (3, 8, 7):  # LIST, STRUCTURED_REPLY, GO (with a malformed body: still TLS_REQD)
    s.sendall(b"IHAVEOPT" + struct.pack(">II", opt, 0))
    magic, o, typ, ln = struct.unpack(">QIII", recvn(20))
    assert (o, typ) == (opt, 0x80000005), (o, hex(typ))
    recvn(ln)
s.sendall(b"IHAVEOPT" + struct.pack(">II", 1, 4) + b"root")
assert recvn(1) == b"", "EXPORT_NAME without TLS was answered"
s.close()
# Hostile STARTTLS: junk instead of a TLS ClientHello, and bytes sent right behind the
# option (they would be taken as TLS): each ends its connection, the server goes on.
for tail in (b"", b"junk right behind STARTTLS"):
    s = socket.create_connection(("127.0.0.1", int(pa)))
    assert recvn(18)[:16] == b"NBDMAGICIHAVEOPT"
    s.sendall(struct.pack(">I", 3) + b"IHAVEOPT" + struct.pack(">II", 5, 0) + tail)
    magic, o, typ, ln = struct.unpack(">QIII", recvn(20))
    assert (o, typ) == (5, 1), (o, typ)
    if not tail:
        s.sendall(b"\x16\x03\x01\x00\x05hello, not TLS" * 10)
    s.settimeout(10)
    try:
        while s.recv(4096):
            pass
    except ConnectionResetError:
        pass
    s.close()

# A client that does not trust the server's CA does not connect.
refused(tls(wrong_dir), "nbds://127.0.0.1:%s/root" % pa, "untrusted server accepted")

# Optional with client certificates: plaintext still served...
h = nbd.NBD()
h.connect_uri("nbd://127.0.0.1:%s/root" % pb)
assert not h.get_tls_negotiated()
assert h.pread(512, 512) == data[512:1024]
h.shutdown()
# ...a TLS client with a certificate from the CA too...
h = tls(client_dir)
h.connect_uri("nbds://127.0.0.1:%s/root" % pb)
assert h.get_tls_negotiated()
assert h.pread(1 << 20, 1 << 20) == data[1 << 20:2 << 20]
h.shutdown()
# ...but not a TLS client without one.
refused(tls(ca_dir), "nbds://127.0.0.1:%s/root" % pb, "TLS client without a certificate accepted")
print("ALL OK")
"#;

fn openssl(dir: &Path, args: &[&str]) {
    let out = run_with_timeout(Command::new("openssl").current_dir(dir).args(args), T).unwrap();
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

/// A self-signed CA (ca-cert.pem, ca-key.pem) in `dir`.
fn make_ca(dir: &Path, cn: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let subj = format!("/CN={cn}");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca-cert.pem",
            "-days",
            "2",
            "-subj",
            &subj,
        ],
    );
}

/// `NAME-cert.pem`/`NAME-key.pem` in `out`, signed by the CA in `ca_dir`.
fn make_cert(ca_dir: &Path, out: &Path, name: &str, cn: &str, ext: &str) {
    let p = |f: &str| out.join(f).display().to_string();
    let extfile = p(&format!("{name}.ext"));
    std::fs::write(&extfile, ext).unwrap();
    let subj = format!("/CN={cn}");
    openssl(
        ca_dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &p(&format!("{name}-key.pem")),
            "-out",
            &p(&format!("{name}.csr")),
            "-subj",
            &subj,
        ],
    );
    openssl(
        ca_dir,
        &[
            "x509",
            "-req",
            "-in",
            &p(&format!("{name}.csr")),
            "-CA",
            "ca-cert.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &extfile,
            "-out",
            &p(&format!("{name}-cert.pem")),
        ],
    );
}

fn server(args: &[String]) -> Background {
    let mut cmd = Command::new(BIN);
    cmd.env("NO_COLOR", "1").args(args);
    Background::spawn(cmd)
}

#[test]
fn starttls_with_libnbd_and_nbdinfo() {
    for t in ["openssl", "nbdinfo", "python3"] {
        require_tool(t);
    }
    let dir = Scratch::new("nbd-tls");
    let (pki, client, wrong) = (dir.path("pki"), dir.path("client"), dir.path("wrong"));
    make_ca(&pki, "netboot test CA");
    make_cert(
        &pki,
        &pki,
        "server",
        "localhost",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    // libnbd's layout: ca-cert.pem, and client-cert.pem/client-key.pem for client auth.
    std::fs::create_dir_all(&client).unwrap();
    make_cert(
        &pki,
        &client,
        "client",
        "node1",
        "extendedKeyUsage=clientAuth\n",
    );
    std::fs::copy(pki.join("ca-cert.pem"), client.join("ca-cert.pem")).unwrap();
    make_ca(&wrong, "some other CA");
    let ca_only = dir.path("ca-only");
    std::fs::create_dir_all(&ca_only).unwrap();
    std::fs::copy(pki.join("ca-cert.pem"), ca_only.join("ca-cert.pem")).unwrap();

    let img = dir.path("img");
    let data: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(&img, &data).unwrap();
    let s = |p: &Path| p.display().to_string();
    let (pa, pb) = (free_tcp_port(), free_tcp_port());
    let common = |port: u16, mode: &str| {
        vec![
            "--listen".to_string(),
            format!("127.0.0.1:{port}"),
            "--export".into(),
            format!("root={}", s(&img)),
            "--tls".into(),
            mode.into(),
            "--tls-cert".into(),
            s(&pki.join("server-cert.pem")),
            "--tls-key".into(),
            s(&pki.join("server-key.pem")),
        ]
    };
    let a = server(&common(pa, "required"));
    let mut b_args = common(pb, "optional");
    b_args.extend(["--tls-ca".into(), s(&pki.join("ca-cert.pem"))]);
    let b = server(&b_args);
    for p in [pa, pb] {
        wait_for_tcp(([127, 0, 0, 1], p).into(), T).unwrap();
    }

    // nbdinfo: TLS with the CA works; plaintext against "required" does not.
    let info = |uri: String| {
        let out = run_with_timeout(Command::new("nbdinfo").arg(uri), T).unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, text) = info(format!(
        "nbds://127.0.0.1:{pa}/root?tls-certificates={}",
        s(&ca_only)
    ));
    assert!(ok && text.contains("with TLS"), "{text}");
    assert!(
        text.contains(&format!("export-size: {}", data.len())),
        "{text}"
    );
    let (ok, text) = info(format!("nbd://127.0.0.1:{pa}/root"));
    assert!(
        !ok,
        "plaintext nbdinfo served while TLS is required: {text}"
    );

    let script = dir.path("t.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let out = run_with_timeout(
        Command::new("/usr/bin/python3").args([
            s(&script),
            pa.to_string(),
            pb.to_string(),
            s(&ca_only),
            s(&client),
            s(&wrong),
            s(&img),
        ]),
        Duration::from_secs(90),
    )
    .unwrap();
    let (la, lb) = (a.kill(), b.kill());
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ALL OK"),
        "script failed:\n{}\n{}\nserver logs:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&la.stderr),
        String::from_utf8_lossy(&lb.stderr)
    );
    let log = String::from_utf8_lossy(&la.stderr);
    assert!(log.contains("tls=true"), "{log}");
    assert!(log.contains("data after STARTTLS"), "{log}");
    assert!(log.contains("TLS handshake failed"), "{log}");
}

//! Scripted edge cases with libnbd's Python bindings (/usr/bin/python3 + python3-libnbd):
//! every option, commands and flags with client-side checks off, error codes, simple vs
//! structured replies, DISC with requests in flight, STARTTLS refusal, socket activation,
//! the stdio mode, the cow overlay cap and the idle timeout. The server listens on a Unix
//! socket in a scratch directory.

use netboot_testkit::{Background, require_tool, run_with_timeout};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_netboot-nbdd");

const SCRIPT: &str = r#"
import errno, sys, nbd
sock, img, binary = sys.argv[1], sys.argv[2], sys.argv[3]
data = open(img, "rb").read()
SIZE = len(data)
def uri(name=""):
    return "nbd+unix:///%s?socket=%s" % (name, sock)
def err(f, *a, **k):
    try:
        f(*a, **k)
    except nbd.Error as e:
        return e.errnum
    raise AssertionError("no error from %r%r" % (f, a))

# Option negotiation, step by step.
h = nbd.NBD()
h.set_opt_mode(True)
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_uri(uri())
names = []
assert h.opt_list(lambda n, d: names.append((n, d))) == 3
assert names == [("ro", "read-only image"), ("cow", ""), ("disk", "")], names
ctx = []
h.opt_list_meta_context(lambda c: ctx.append(c))
assert ctx == ["base:allocation"], ctx
h.set_export_name("missing")
err(h.opt_info)
h.set_export_name("ro")
h.set_full_info(True)
h.opt_info()
assert h.get_size() == SIZE and h.is_read_only()
assert h.get_canonical_export_name() == "ro" and h.get_export_description() == "read-only image"
assert h.get_block_size(nbd.SIZE_MAXIMUM) == 32 << 20
h.opt_go()
assert h.can_multi_conn() and h.can_df() and h.can_cache() and h.can_fua()
assert not h.can_trim() and not h.can_zero()

# Commands with libnbd's own checks off, so the server's checks are what answers.
h.set_strict_mode(0)
assert h.pread(512, SIZE - 512) == data[-512:]
assert h.pread(0, 0) == b""
assert h.pread(0, SIZE) == b""
assert err(h.pread, 512, SIZE - 511) == errno.EINVAL
assert err(h.pread, 1, SIZE) == errno.EINVAL
assert err(h.pwrite, b"x" * 4096, 0) == errno.EPERM
assert err(h.zero, 4096, 0) == errno.EPERM
assert err(h.trim, 4096, 0) == errno.EPERM
assert err(h.pread, 512, 0, nbd.CMD_FLAG_REQ_ONE) == errno.EINVAL
# Oversized (beyond the 32 MiB maximum) READ and WRITE: EINVAL / EPERM, connection in sync.
assert err(h.pread, 40 << 20, 0) == errno.EINVAL
assert err(h.pwrite, b"\x25\x60\x95\x13" * (10 << 20), 0) in (errno.EPERM, errno.EINVAL)
assert h.pread(4096, 8192, nbd.CMD_FLAG_DF | nbd.CMD_FLAG_FUA) == data[8192:12288]
h.cache(1 << 20, 0)
h.flush()
ext = []
h.block_status(1 << 20, 0, lambda m, o, e, p: ext.append((m, e)), nbd.CMD_FLAG_REQ_ONE)
assert ext[0][0] == "base:allocation" and len(ext[0][1]) == 2, ext
# DISC with requests in flight: all of them are answered before the close.
bufs = [nbd.Buffer(65536) for i in range(16)]
cookies = [h.aio_pread(b, i * 65536) for i, b in enumerate(bufs)]
h.aio_disconnect()
while h.aio_in_flight() > 0:
    h.poll(1)
for i, c in enumerate(cookies):
    assert h.aio_command_completed(c)
    assert bytes(bufs[i].to_bytearray()) == data[i * 65536:(i + 1) * 65536]

# NBD_OPT_ABORT ends the negotiation cleanly.
h = nbd.NBD()
h.set_opt_mode(True)
h.connect_uri(uri())
h.opt_abort()
assert h.aio_is_closed() or h.aio_is_dead()

# Simple replies (no structured reply negotiation): data, errors.
h = nbd.NBD()
h.set_request_structured_replies(False)
h.set_export_name("ro")
h.connect_uri(uri("ro"))
assert not h.get_structured_replies_negotiated()
assert h.pread(1000, 3) == data[3:1003]
h.set_strict_mode(0)
assert err(h.pread, 2, SIZE - 1) == errno.EINVAL
# No structured replies, so no metadata context: BLOCK_STATUS is EINVAL.
assert err(h.block_status, 512, 0, lambda *a: 0) == errno.EINVAL
assert err(h.pwrite, b"abc", 0) == errno.EPERM
assert h.pread(10, 0) == data[:10]
h.shutdown()

# Old-style (non-fixed, zeroes) handshake: EXPORT_NAME.
h = nbd.NBD()
h.set_handshake_flags(0)
h.connect_uri(uri("ro"))
assert h.get_size() == SIZE and h.pread(16, 16) == data[16:32]
h.shutdown()

# The writable RAM disk: FUA, WRITE_ZEROES with NO_HOLE/FAST_ZERO, TRIM, FLUSH.
h = nbd.NBD()
h.connect_uri(uri("disk"))
assert h.can_zero() and h.can_fast_zero() and h.can_trim() and h.can_multi_conn()
h.pwrite(b"\xaa" * 10000, 123, nbd.CMD_FLAG_FUA)
h.zero(5000, 200, nbd.CMD_FLAG_NO_HOLE | nbd.CMD_FLAG_FAST_ZERO)
h.trim(65536, 1 << 19)
h.flush()
got = h.pread(10123, 0)
assert got == b"\0" * 123 + b"\xaa" * 77 + b"\0" * 5000 + b"\xaa" * 4923, "ramdisk content"
h.set_strict_mode(0)
assert err(h.pwrite, b"x" * 2, (1 << 20) - 1) == errno.ENOSPC
assert err(h.zero, 2, (1 << 20) - 1) == errno.ENOSPC
h.shutdown()
# A second connection sees the same RAM disk (multi-conn).
h = nbd.NBD()
h.connect_uri(uri("disk"))
assert h.pread(3, 123) == b"\xaa" * 3
h.shutdown()

# cow: private per connection, dropped at disconnect.
h = nbd.NBD()
h.connect_uri(uri("cow"))
h.pwrite(b"COW!", 4094)
assert h.pread(8, 4092) == data[4092:4094] + b"COW!" + data[4098:4100]
h2 = nbd.NBD()
h2.connect_uri(uri("cow"))
assert h2.pread(8, 4092) == data[4092:4100]
# The overlay is capped (--cow-max 64K = 16 blocks, 2 held): a write needing more is
# ENOSPC and changes nothing; the connection goes on and held blocks stay writable.
assert err(h.pwrite, b"y" * 65536, 65536) == errno.ENOSPC
assert h.pread(65536, 65536) == data[65536:131072]
h.pwrite(b"Z", 4095)
assert h.pread(8, 4092) == data[4092:4094] + b"CZW!" + data[4098:4100]
h2.pwrite(b"y" * 60000, 65536)
h.shutdown(); h2.shutdown()

# STARTTLS is refused (ERR_POLICY): "allow" falls back to plaintext, "require" fails.
h = nbd.NBD()
h.set_tls(nbd.TLS_ALLOW)
h.connect_uri(uri("ro"))
assert not h.get_tls_negotiated()
h.shutdown()
h = nbd.NBD()
h.set_tls(nbd.TLS_REQUIRE)
try:
    h.connect_uri(uri("ro"))
    raise AssertionError("TLS required but connected")
except nbd.Error:
    pass

# Socket activation (LISTEN_FDS) and stdio mode, as libnbd's interop tests start servers.
h = nbd.NBD()
h.connect_systemd_socket_activation([binary, "--export", "a=" + img])
assert h.get_size() == SIZE and h.pread(100, 200) == data[200:300]
# Large reads of a file export leave by sendfile over the Unix socket: whole and unaligned.
assert h.pread(SIZE, 0) == data
assert h.pread(100001, 12345) == data[12345:112346]
h.shutdown()
h = nbd.NBD()
h.connect_command([binary, "--stdio", "--export", "s=" + img + ",ram"])
assert h.pread(100, SIZE - 100) == data[-100:]
h.shutdown()

# --idle-timeout: requests within the limit keep the connection; silence beyond it ends it.
import time
h = nbd.NBD()
h.connect_command([binary, "--stdio", "--idle-timeout", "1", "--export", "s=" + img])
for i in range(3):
    time.sleep(0.5)
    assert h.pread(10, i) == data[i:i + 10]
time.sleep(2.5)
try:
    h.pread(10, 0)
    raise AssertionError("idle connection still served")
except nbd.Error:
    pass
print("ALL OK")
"#;

#[test]
fn libnbd_scripted_edge_cases() {
    require_tool("python3");
    let dir = std::env::temp_dir().join(format!("nbd-libnbd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("img");
    let data: Vec<u8> = (0..(4u32 << 20))
        .map(|i| (i * 7 + i / 4096) as u8)
        .collect();
    std::fs::write(&img, &data).unwrap();
    let sock = dir.join("s.sock");
    let script = dir.join("t.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let p = |x: &PathBuf| x.to_str().unwrap().to_string();
    let mut cmd = Command::new(BIN);
    cmd.env("NO_COLOR", "1").args([
        "--unix".to_string(),
        p(&sock),
        "--export".into(),
        format!("ro={},ram,desc=read-only image", p(&img)),
        "--ramdisk".into(),
        "disk=1M".into(),
        "--export".into(),
        format!("cow={},cow", p(&img)),
        "--cow-max".into(),
        "64K".into(),
    ]);
    let server = Background::spawn(cmd);
    let start = Instant::now();
    while !sock.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "server did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // python3-libnbd is only importable by the system interpreter.
    let out = run_with_timeout(
        Command::new("/usr/bin/python3").args([p(&script), p(&sock), p(&img), BIN.into()]),
        Duration::from_secs(90),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let log = server.kill();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ALL OK"),
        "script failed:\n{}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&log.stderr)
    );
}

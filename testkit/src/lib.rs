//! Test support shared by netboot's tests.
//!
//! Everything a test needs to meet a real peer without leaking into the host:
//!
//! - [`NetPair`]: two network namespaces joined by a veth pair with addresses from
//!   198.18.0.0/15, named uniquely per process and test, removed on drop even when the
//!   test panics;
//! - [`run_with_timeout`] / [`Netns::run`]: run a command (inside a namespace) and kill it
//!   when it overruns its bound; [`Netns::spawn`]: a background process killed on drop;
//! - [`Netns::wait_for_port`]: wait until something listens on a UDP/TCP port inside a
//!   namespace; [`wait_for_tcp`] does the same on loopback;
//! - [`require_tool`]: find an external tool or fail naming `scripts/install-tools.sh`;
//! - [`replay_corpus`]: feed every committed fuzz input of a target to a function.
//!
//! A missing tool or missing privilege is a test failure with a message saying how to fix
//! it — never a silent pass.

use std::ffi::OsStr;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub mod vm;

/// Where `scripts/install-tools.sh` puts tools it unpacks instead of installing (atftpd).
pub const PEERS_DIR: &str = "/opt/netboot-peers/bin";

/// The message every missing-prerequisite failure carries.
pub const INSTALL_HINT: &str = "run `sudo scripts/install-tools.sh` from the repository root";

/// Finds `name` on `PATH`, in `/usr/sbin` and `/sbin` (often missing from a user's `PATH`), or
/// in [`PEERS_DIR`]; panics naming the install script when it is nowhere.
pub fn require_tool(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| {
        panic!("required tool `{name}` not found on PATH or in {PEERS_DIR}: {INSTALL_HINT}")
    })
}

/// Like [`require_tool`] but returns `None` instead of failing.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", PEERS_DIR].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Fails unless the test runs as root (network namespaces need `CAP_NET_ADMIN`).
pub fn require_root() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|rest| rest.split_whitespace().nth(1).map(str::to_owned))
        })
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "this test creates network namespaces and must run as root (effective uid is {uid:?})"
    );
}

/// The repository root (the workspace directory holding `fuzz/` and `scripts/`).
pub fn workspace_root() -> PathBuf {
    // testkit/ sits directly below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit has a parent directory")
        .to_path_buf()
}

/// Feeds every file of `fuzz/corpus/<target>/` to `f`, so the committed corpus is replayed on
/// stable as an ordinary test. Fails if the folder is missing or empty: a corpus that silently
/// disappeared must not pass. Returns the number of inputs replayed.
pub fn replay_corpus(target: &str, mut f: impl FnMut(&[u8])) -> usize {
    let dir = workspace_root().join("fuzz").join("corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("fuzz corpus {} unreadable: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "fuzz corpus {} is empty", dir.display());
    for file in &files {
        let data = std::fs::read(file).expect("read corpus file");
        // Name the input that failed: the panic below unwinds through here.
        let guard = NameOnPanic(file);
        f(&data);
        std::mem::forget(guard);
    }
    files.len()
}

struct NameOnPanic<'a>(&'a Path);
impl Drop for NameOnPanic<'_> {
    fn drop(&mut self) {
        eprintln!("while replaying fuzz input {}", self.0.display());
    }
}

/// Runs `cmd` to completion with its output captured, killing it after `limit`.
/// Returns `Err` with what it printed so far when it overran.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Result<Output, String> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    wait_child(child, limit).map_err(|out| {
        format!(
            "{cmd:?} still running after {limit:?}, killed; stdout: {}; stderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Waits for a child whose stdout/stderr are piped, bounded by `limit`. On timeout the child
/// is killed and its partial output returned as `Err`.
pub fn wait_child(mut child: Child, limit: Duration) -> Result<Output, Output> {
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                kill_group(&mut child);
                break None;
            }
        }
    };
    let collect = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
        h.map(|h| h.join().unwrap_or_default()).unwrap_or_default()
    };
    let (stdout, stderr) = (collect(out), collect(err));
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(Output {
            status: ExitStatus::default(),
            stdout,
            stderr,
        }),
    }
}

/// Kills `child` and everything it started (it leads its own process group, see
/// [`run_with_timeout`] and [`Background::spawn`]), then reaps it. Killing only the child
/// would leave a grandchild holding the output pipes open.
fn kill_group(child: &mut Child) {
    let pid = rustix::process::Pid::from_child(child);
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    let _ = child.kill();
    let _ = child.wait();
}

fn drain(mut r: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Waits until a TCP connection to `addr` (in this namespace, e.g. loopback) succeeds.
pub fn wait_for_tcp(addr: SocketAddr, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "nothing accepted TCP connections on {addr} within {limit:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A transport protocol, for [`Netns::wait_for_port`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// UDP (a bound socket counts as listening).
    Udp,
    /// TCP in LISTEN state.
    Tcp,
}

/// A network namespace created by this process; deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// The namespace's name, for `ip netns exec NAME`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `Command` that runs `program` inside this namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(require_tool("ip"));
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `program args…` inside the namespace, bounded by `limit`; panics with its output
    /// when it overruns.
    pub fn run<I, S>(&self, program: impl AsRef<OsStr>, args: I, limit: Duration) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(program);
        cmd.args(args);
        run_with_timeout(&mut cmd, limit).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts `program args…` in the background inside the namespace. The process is killed
    /// when the returned guard drops; its output is returned by [`Background::finish`].
    pub fn spawn<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Background
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(program);
        cmd.args(args);
        Background::spawn(cmd)
    }

    /// Waits until a socket is bound (UDP) or listening (TCP) on `port` inside the namespace.
    pub fn wait_for_port(&self, proto: Proto, port: u16, limit: Duration) -> Result<(), String> {
        let flag = match proto {
            Proto::Udp => "-Hlnu",
            Proto::Tcp => "-Hlnt",
        };
        let filter = format!("sport = :{port}");
        let deadline = Instant::now() + limit;
        loop {
            let out = self.run("ss", [flag, filter.as_str()], Duration::from_secs(5));
            if out.status.success() && !out.stdout.trim_ascii().is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "nothing bound {proto:?} port {port} in namespace {} within {limit:?}",
                    self.name
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting a namespace also destroys the veth end that lives in it, and with it the peer.
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A background process killed (with its output kept) when dropped or finished.
#[derive(Debug)]
pub struct Background {
    child: Option<Child>,
    what: String,
}

impl Background {
    /// Spawns `cmd` with stdout/stderr captured.
    pub fn spawn(mut cmd: Command) -> Background {
        let what = format!("{cmd:?}");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Background {
            child: Some(child),
            what,
        }
    }

    /// The process id, e.g. to send it a signal.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Sends `signal` to the process (not its children), e.g. `SIGTERM` to test a clean stop.
    pub fn signal(&self, signal: rustix::process::Signal) {
        if let Some(child) = self.child.as_ref() {
            let _ = rustix::process::kill_process(rustix::process::Pid::from_child(child), signal);
        }
    }

    /// Whether the process has exited already (without reaping its output).
    pub fn has_exited(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// Waits up to `limit` for the process to exit by itself; kills it otherwise. Returns its
    /// output and whether it exited by itself.
    pub fn finish(mut self, limit: Duration) -> (Output, bool) {
        let child = self.child.take().expect("child present until finish");
        match wait_child(child, limit) {
            Ok(out) => (out, true),
            Err(out) => (out, false),
        }
    }

    /// Kills the process now and returns what it printed.
    pub fn kill(mut self) -> Output {
        let mut child = self.child.take().expect("child present until kill");
        kill_group(&mut child);
        wait_child(child, Duration::from_secs(5)).unwrap_or_else(|o| o)
    }

    /// A description of the command, for messages.
    pub fn what(&self) -> &str {
        &self.what
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }
}

/// Two namespaces `a` and `b` joined by a veth pair, each end up with an address in a /30
/// carved from 198.18.0.0/15, loopback up in both.
#[derive(Debug)]
pub struct NetPair {
    /// The first namespace (conventionally the server's).
    pub a: Netns,
    /// The second namespace (conventionally the client's).
    pub b: Netns,
    /// The veth end inside `a`.
    pub a_if: String,
    /// The veth end inside `b`.
    pub b_if: String,
    /// `a`'s address.
    pub a_addr: Ipv4Addr,
    /// `b`'s address.
    pub b_addr: Ipv4Addr,
}

impl NetPair {
    /// Creates the pair. `tag` (a few letters, e.g. "tftp") makes names readable in `ip netns`;
    /// the process id and a counter make them unique across parallel tests and test binaries.
    pub fn new(tag: &str) -> NetPair {
        let n = unique();
        // Each namespace is owned by a `Netns` as soon as it exists, so a failure below
        // still removes everything made so far.
        let a = Netns::named(format!("{}-a", ns_stem(tag, n)));
        let b = Netns::named(format!("{}-b", ns_stem(tag, n)));
        let stem = if_stem(n);
        let (a_if, b_if) = (format!("{stem}a"), format!("{stem}b"));
        // A /30 per pair: 198.18.0.0/15 has 2^15 of them.
        let base = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + (n % 32768) * 4;
        let (a_addr, b_addr) = (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2));
        ip(&[
            "link", "add", &a_if, "netns", &a.name, "type", "veth", "peer", "name", &b_if, "netns",
            &b.name,
        ]);
        for (ns, ifname, addr) in [(&a, &a_if, a_addr), (&b, &b_if, b_addr)] {
            let cidr = format!("{addr}/30");
            ip(&["-n", &ns.name, "addr", "add", &cidr, "dev", ifname]);
            ip(&["-n", &ns.name, "link", "set", ifname, "up"]);
        }
        NetPair {
            a,
            b,
            a_if,
            b_if,
            a_addr,
            b_addr,
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A number unique to this call within this machine's running tests: the process id (which
/// no other running process shares) combined with a per-process counter.
fn unique() -> u32 {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::process::id().wrapping_mul(64).wrapping_add(n)
}

fn ns_stem(tag: &str, n: u32) -> String {
    let tag: String = tag
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(8)
        .collect();
    format!("netboot-{tag}-{n}")
}

/// Interface names are limited to 15 bytes: "nb" + 8 hex digits + a suffix of up to 5.
fn if_stem(n: u32) -> String {
    format!("nb{n:08x}")
}

/// Runs `ip ARGS…` (bounded), panicking with its stderr when it fails.
pub fn ip(args: &[&str]) {
    let out = run_with_timeout(
        Command::new(require_tool("ip")).args(args),
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// Creates a fresh namespace with loopback up, named after `tag` and unique to this call.
    pub fn new(tag: &str) -> Netns {
        Netns::named(ns_stem(tag, unique()))
    }

    /// A unique interface name prefix (10 bytes) for interfaces created by the caller.
    pub fn unique_ifname() -> String {
        if_stem(unique())
    }

    fn named(name: String) -> Netns {
        require_root();
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }
}

/// A fresh scratch directory in the temp dir, unique to this process and call, readable by
/// tools that drop privileges, removed with its contents on drop.
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// Creates `netboot-<tag>-<unique>` in the temp dir.
    pub fn new(tag: &str) -> Scratch {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("netboot-{tag}-{}", unique()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch directory");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
            .expect("open up scratch directory");
        Scratch(dir)
    }

    /// A path inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Reserves a free loopback TCP port number by binding port 0 and closing. Racy by nature:
/// use it only where the peer cannot be told to pick its own port.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// Reserves a free loopback UDP port number (see [`free_tcp_port`]).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "scripts/install-tools.sh")]
    fn a_missing_tool_fails_naming_the_install_script() {
        require_tool("netboot-no-such-tool-anywhere");
    }

    #[test]
    fn finds_a_tool_that_exists() {
        assert!(require_tool("sh").ends_with("sh"));
    }

    #[test]
    fn a_command_that_overruns_is_killed() {
        let start = Instant::now();
        let err = run_with_timeout(
            Command::new("sh").args(["-c", "echo started; sleep 30"]),
            Duration::from_millis(300),
        )
        .expect_err("sleep 30 must overrun a 300 ms bound");
        assert!(err.contains("started"), "partial output kept: {err}");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_command_within_its_bound_returns_its_output() {
        let out = run_with_timeout(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .expect("finishes");
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn wait_for_tcp_sees_a_listener_and_times_out_without_one() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        wait_for_tcp(addr, Duration::from_secs(5)).unwrap();
        drop(l);
        assert!(wait_for_tcp(addr, Duration::from_millis(200)).is_err());
    }
}

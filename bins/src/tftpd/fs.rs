//! Root confinement: which names a client may ask for and how files are opened.
//!
//! Two layers, so a mistake in one is caught by the other:
//! 1. a lexical check on the requested name (no `..` component, no backslash unless mapped,
//!    bounded length), after which a leading `/` means "the root" (iPXE asks for
//!    `/ltsp/ltsp.img`);
//! 2. `openat2(root, name, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`: the kernel refuses any
//!    resolution, symlinks included, that would leave the root.
//!
//! Only regular files are served; they are opened with `O_NONBLOCK` so a FIFO or device
//! cannot stall the event loop (its type is refused right after the open). Error texts are
//! fixed strings: nothing about server paths ever reaches a client.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};

use netboot_tftp::engine::{BlockSink, BlockSource};
use netboot_tftp::wire::ErrorCode;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags};
use rustix::io::Errno;

/// Longest file name accepted (bytes, after the request parser's own limit).
pub const MAX_NAME_LEN: usize = 1024;

/// Why a request for a file is refused; maps to the ERROR the client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// ERROR 1.
    NotFound,
    /// ERROR 2.
    Access,
    /// ERROR 6.
    Exists,
    /// ERROR 0: an I/O failure we do not describe to the client.
    Io,
}

impl Refusal {
    /// The ERROR code and fixed text sent to the client.
    pub fn error(self) -> (ErrorCode, &'static str) {
        match self {
            Refusal::NotFound => (ErrorCode::FILE_NOT_FOUND, "File not found"),
            Refusal::Access => (ErrorCode::ACCESS_VIOLATION, "Access violation"),
            Refusal::Exists => (ErrorCode::FILE_EXISTS, "File already exists"),
            Refusal::Io => (ErrorCode::UNDEFINED, "I/O error"),
        }
    }

    fn from_errno(e: Errno) -> Refusal {
        match e {
            Errno::NOENT | Errno::NOTDIR | Errno::NAMETOOLONG => Refusal::NotFound,
            Errno::EXIST => Refusal::Exists,
            // EXDEV: RESOLVE_BENEATH caught an escape; ELOOP: symlink loop or magic link.
            _ => Refusal::Access,
        }
    }
}

/// Turns a requested name into a path relative to the root, or refuses it.
pub fn relative_name(name: &[u8], map_backslash: bool) -> Result<Vec<u8>, Refusal> {
    if name.len() > MAX_NAME_LEN || name.contains(&0) {
        return Err(Refusal::Access);
    }
    let mut rel: Vec<u8> = name.to_vec();
    if rel.contains(&b'\\') {
        if !map_backslash {
            return Err(Refusal::Access);
        }
        rel.iter_mut()
            .filter(|b| **b == b'\\')
            .for_each(|b| *b = b'/');
    }
    let start = rel.iter().position(|&b| b != b'/').unwrap_or(rel.len());
    rel.drain(..start);
    if rel.split(|&b| b == b'/').any(|c| c == b"..") {
        return Err(Refusal::Access);
    }
    if rel.iter().all(|&b| b == b'/' || b == b'.') {
        // Empty, "." or the root itself: not a file.
        return Err(Refusal::Access);
    }
    Ok(rel)
}

fn beneath() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS
}

fn path_of(rel: &[u8]) -> &std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(rel)
}

/// Opens the root directory once at start-up; every later open is relative to it.
pub fn open_root(dir: &std::path::Path) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// A file opened for reading, with its size.
pub struct ReadFile {
    file: File,
    /// Size when opened (what `tsize` reports).
    pub size: u64,
}

/// Opens `rel` beneath `root` for reading: a regular file, or a refusal.
///
/// The type is checked on an `O_PATH` descriptor first, so a device or FIFO is never opened
/// for reading at all (opening some devices has side effects). The real open is
/// `O_NONBLOCK` and checked again, in case the name was swapped in between.
pub fn open_read(root: &OwnedFd, rel: &[u8]) -> Result<ReadFile, Refusal> {
    let open = |flags: OFlags| {
        rustix::fs::openat2(
            root,
            path_of(rel),
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            beneath(),
        )
        .map_err(Refusal::from_errno)
    };
    let regular = |fd: &OwnedFd| {
        let st = rustix::fs::fstat(fd).map_err(|_| Refusal::Io)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile {
            Ok(st)
        } else {
            Err(Refusal::Access)
        }
    };
    let probe = regular(&open(OFlags::PATH)?)?;
    let fd = open(OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY)?;
    let st = regular(&fd)?;
    if (st.st_dev, st.st_ino) != (probe.st_dev, probe.st_ino) {
        return Err(Refusal::Access);
    }
    Ok(ReadFile {
        file: File::from(fd),
        size: st.st_size as u64,
    })
}

impl BlockSource for &ReadFile {
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        // pread from the page cache: many sessions on one initrd share the cached pages.
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}

/// Small blocks are read ahead in chunks of this size: one `pread` per 32 blocks of 512
/// instead of one per block. Blocks this large or larger are read directly.
const READ_AHEAD: usize = 16 * 1024;

/// A [`BlockSource`] over a [`ReadFile`] with a small read-ahead buffer (allocated on first
/// use, so a session that never gets an ACK costs nothing here), and blocks prefilled
/// straight into the session's packet buffer.
pub struct ReadAhead<'f> {
    file: &'f ReadFile,
    buf: Vec<u8>,
    start: u64,
    len: usize,
    /// Where the block after the last one served starts.
    next: u64,
    /// Blocks [`ReadAhead::prefill`] put where the engine will ask for them.
    prefilled: Vec<Prefilled>,
}

/// A whole block already sitting in a packet buffer: the address of the data area it was
/// read into and the file offset it came from.
struct Prefilled {
    at: usize,
    offset: u64,
    len: usize,
}

impl<'f> ReadAhead<'f> {
    /// Reads from `file`.
    pub fn new(file: &'f ReadFile) -> ReadAhead<'f> {
        ReadAhead {
            file,
            buf: Vec::new(),
            start: 0,
            len: 0,
            next: 0,
            prefilled: Vec::new(),
        }
    }

    fn covers(&self, offset: u64, len: usize) -> bool {
        let end = self.start + self.len as u64;
        let at_eof = self.len < self.buf.len();
        !self.buf.is_empty()
            && offset >= self.start
            && (offset + len as u64 <= end || (at_eof && offset <= end))
    }

    /// Reads the blocks after the last one served into the packet slots where the engine
    /// will write them next (`out` cut into `slot`-byte slots, each block `blksize` bytes
    /// after a `header`), with one `preadv`, while the client turns the last window around.
    /// If the ACK asks for those blocks, [`BlockSource::read_at`] finds them in place and
    /// answering is no read and no copy; if it asks for anything else (a gap, a
    /// retransmission), the prefilled blocks are forgotten and read again. Only octet-mode
    /// offsets map to blocks this way. Errors are left for the real read.
    pub fn prefill(&mut self, out: &mut [u8], slot: usize, header: usize, blksize: usize) {
        // Already there (the datagram that woke us was not the ACK): no second read.
        let first = out.get(header..).map(|d| d.as_ptr() as usize);
        if self
            .prefilled
            .first()
            .is_some_and(|p| Some(p.at) == first && p.offset == self.next && p.len == blksize)
        {
            return;
        }
        self.prefilled.clear();
        if blksize == 0 || self.next >= self.file.size {
            return;
        }
        let mut at = Vec::new();
        let mut iovs: Vec<std::io::IoSliceMut<'_>> = out
            .chunks_exact_mut(slot)
            .filter_map(|s| s.get_mut(header..header + blksize))
            .map(|data| {
                at.push(data.as_ptr() as usize);
                std::io::IoSliceMut::new(data)
            })
            .collect();
        let Ok(n) = rustix::io::preadv(&self.file.file, &mut iovs, self.next) else {
            return;
        };
        self.prefilled
            .extend(
                at.into_iter()
                    .take(n / blksize)
                    .enumerate()
                    .map(|(k, at)| Prefilled {
                        at,
                        offset: self.next + (k * blksize) as u64,
                        len: blksize,
                    }),
            );
    }
}

impl BlockSource for ReadAhead<'_> {
    fn read_at(&mut self, offset: u64, out: &mut [u8]) -> std::io::Result<usize> {
        self.next = offset + out.len() as u64;
        let at = out.as_ptr() as usize;
        if self
            .prefilled
            .iter()
            .any(|p| p.at == at && p.offset == offset && p.len == out.len())
        {
            return Ok(out.len());
        }
        // This read overwrites a packet slot: whatever was prefilled may be gone.
        self.prefilled.clear();
        let covered = self.covers(offset, out.len());
        if !covered && out.len() >= READ_AHEAD / 2 {
            return (&mut &*self.file).read_at(offset, out);
        }
        if !covered {
            self.buf.resize(READ_AHEAD, 0);
            self.start = offset;
            self.len = (&mut &*self.file).read_at(offset, &mut self.buf)?;
        }
        let from = usize::try_from(offset - self.start)
            .unwrap_or(usize::MAX)
            .min(self.len);
        let n = out.len().min(self.len - from);
        out[..n].copy_from_slice(&self.buf[from..from + n]);
        Ok(n)
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// An upload in progress: written to a temporary file beside its final name and renamed
/// into place only when complete, so a half-written file is never visible.
pub struct Upload {
    dir: OwnedFd,
    temp: Vec<u8>,
    name: Vec<u8>,
    file: File,
    overwrite: bool,
    committed: bool,
}

/// Starts an upload of `rel` beneath `root`.
pub fn create_upload(root: &OwnedFd, rel: &[u8], overwrite: bool) -> Result<Upload, Refusal> {
    let (parent, name) = match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&b"."[..], rel),
    };
    if name.is_empty() || name == b"." {
        return Err(Refusal::Access);
    }
    let parent = if parent.is_empty() { &b"."[..] } else { parent };
    let dir = rustix::fs::openat2(
        root,
        path_of(parent),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        beneath(),
    )
    .map_err(Refusal::from_errno)?;
    if !overwrite {
        match rustix::fs::statat(&dir, path_of(name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => return Err(Refusal::Exists),
            Err(Errno::NOENT) => {}
            Err(e) => return Err(Refusal::from_errno(e)),
        }
    }
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut temp = b".".to_vec();
    temp.extend_from_slice(name);
    temp.extend_from_slice(format!(".tftpd-{}-{n}.part", std::process::id()).as_bytes());
    let fd = rustix::fs::openat(
        &dir,
        path_of(&temp),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(Refusal::from_errno)?;
    Ok(Upload {
        dir,
        temp,
        name: name.to_vec(),
        file: File::from(fd),
        overwrite,
        committed: false,
    })
}

impl Upload {
    /// Renames the finished file into place (never replacing an existing one unless
    /// overwriting is allowed).
    pub fn commit(&mut self) -> Result<(), Refusal> {
        self.file.sync_data().map_err(|_| Refusal::Io)?;
        let flags = if self.overwrite {
            RenameFlags::empty()
        } else {
            RenameFlags::NOREPLACE
        };
        rustix::fs::renameat_with(
            &self.dir,
            path_of(&self.temp),
            &self.dir,
            path_of(&self.name),
            flags,
        )
        .map_err(Refusal::from_errno)?;
        self.committed = true;
        Ok(())
    }
}

impl BlockSink for Upload {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.file.write_all_at(data, offset)
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.committed {
            let _ = rustix::fs::unlinkat(&self.dir, path_of(&self.temp), AtFlags::empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let ok = |n: &[u8]| relative_name(n, false);
        assert_eq!(ok(b"pxelinux.0"), Ok(b"pxelinux.0".to_vec()));
        assert_eq!(ok(b"/ltsp/ltsp.img"), Ok(b"ltsp/ltsp.img".to_vec()));
        assert_eq!(ok(b"//a//b"), Ok(b"a//b".to_vec()));
        for bad in [
            &b""[..],
            b"/",
            b".",
            b"..",
            b"../etc/passwd",
            b"a/../b",
            b"a/..",
            b"/../../etc/hostname",
            b"..\\..\\etc\\hostname",
            b"C:\\boot.ini",
        ] {
            assert_eq!(ok(bad), Err(Refusal::Access), "{bad:?}");
        }
        assert_eq!(relative_name(b"a\\b", true), Ok(b"a/b".to_vec()));
        assert_eq!(relative_name(b"..\\x", true), Err(Refusal::Access));
        assert_eq!(ok(&[b'a'; 2000]), Err(Refusal::Access));
        // "%2e%2e" is just a name; it is looked up literally.
        assert!(ok(b"%2e%2e/x").is_ok());
    }

    #[test]
    fn read_ahead_returns_the_same_bytes_as_direct_reads() {
        let dir = std::env::temp_dir().join(format!("tftpd-ra-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(dir.join("f"), &data).unwrap();
        let root = open_root(&dir).unwrap();
        let file = open_read(&root, b"f").unwrap();
        let mut ra = ReadAhead::new(&file);
        // Forward in blocks, a restart backwards, a read past the end, a large block.
        for (off, len) in [
            (0, 512),
            (512, 512),
            (16_000, 512),
            (16_384, 600),
            (1024, 512),
            (99_800, 512),
            (100_000, 512),
            (200_000, 8),
            (0, 65_464),
        ] {
            let mut out = vec![0u8; len];
            let n = ra.read_at(off, &mut out).unwrap();
            let end = (off as usize + len).min(data.len());
            let want = data.get(off as usize..end).unwrap_or(&[]);
            assert_eq!(&out[..n], want, "at {off} len {len}");
        }
        // Windows prefilled into packet slots, as a session does between ACKs: served in
        // place, across the end of the file, and after a slot was overwritten.
        const H: usize = 4;
        for blk in [512usize, 1468, 8192, 65_464] {
            let slot = H + blk + 3;
            let mut out = vec![0u8; slot * 4];
            let mut ra = ReadAhead::new(&file);
            let mut next = 0u64;
            let window = |out: &mut [u8], ra: &mut ReadAhead<'_>, next: &mut u64| {
                for k in 0..4 {
                    let piece = &mut out[k * slot + H..][..blk];
                    let n = ra.read_at(*next, piece).unwrap();
                    let at = *next as usize;
                    assert_eq!(
                        &piece[..n],
                        &data[at..(at + blk).min(data.len())],
                        "blk {blk} at {at}"
                    );
                    *next += n as u64;
                }
            };
            window(&mut out, &mut ra, &mut next);
            while (next as usize) < data.len() {
                ra.prefill(&mut out, slot, H, blk);
                window(&mut out, &mut ra, &mut next);
            }
            // A slot overwritten by another block no longer counts as prefilled: prefill
            // from the start, read block 1 into slot 0, then ask slot 0 for block 0.
            let mut ra = ReadAhead::new(&file);
            ra.prefill(&mut out, slot, H, blk);
            let piece = &mut out[H..][..blk];
            ra.read_at(blk as u64, piece).unwrap();
            let n = ra.read_at(0, piece).unwrap();
            assert_eq!(
                &piece[..n],
                &data[..blk.min(data.len())],
                "blk {blk} overwritten slot"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Exports: the `--export`/`--ramdisk` syntax, the shared backing of each export and the
//! per-connection storage view (with its copy-on-write overlay).

use super::ram::RamImage;
use anyhow::{Context, bail};
use bytes::Bytes;
use netboot_nbd::engine::Export;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, RwLock};

/// How an export's bytes are held, shared by every connection to it.
#[derive(Debug, Clone)]
pub enum Backing {
    /// A file read (and with `rw` written) with pread/pwrite, large reads sent with
    /// `sendfile` straight from the page cache. pread rather than mmap: a file that others may
    /// truncate or rewrite cannot be mapped soundly (SIGBUS, bytes changing under a reply),
    /// and the page cache already shares the bytes.
    File { file: Arc<File>, writable: bool },
    /// An image loaded once at start into sealed, mapped memory that every connection reads:
    /// small READs go out with `writev` straight from the mapping, large ones with `sendfile`
    /// from the memfd (the socket takes the pages themselves). Copying every large READ into
    /// the socket instead cost this server 2.6x the CPU per GiB over TCP here, and its
    /// throughput flipped run to run between two levels 1.8x apart; `sendfile` held steady.
    Ram(RamImage),
    /// A writable RAM disk shared by all connections.
    RamDisk(Arc<RwLock<Vec<u8>>>),
}

impl Backing {
    /// A word for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Backing::File {
                writable: false, ..
            } => "file",
            Backing::File { writable: true, .. } => "file-rw",
            Backing::Ram(_) => "ram",
            Backing::RamDisk(_) => "ramdisk",
        }
    }

    /// The file reads come from, if the bytes live in one.
    fn file(&self) -> Option<&Arc<File>> {
        match self {
            Backing::File { file, .. } | Backing::Ram(RamImage { file, .. }) => Some(file),
            Backing::RamDisk(_) => None,
        }
    }
}

/// Whether `file` has every byte allocated (so no holes to report). SEEK_DATA/SEEK_HOLE can
/// cost a walk over the whole page cache of the file (tmpfs), once per BLOCK_STATUS.
fn dense(file: &File) -> bool {
    rustix::fs::fstat(file)
        .is_ok_and(|st| (st.st_blocks as u64).saturating_mul(512) >= st.st_size as u64)
}

/// One configured export: what the engine advertises and what holds the bytes.
#[derive(Debug, Clone)]
pub struct ServedExport {
    pub export: Export,
    pub backing: Backing,
    /// Each connection gets its own RAM copy-on-write overlay, dropped at disconnect.
    pub cow: bool,
}

/// What identifies the file behind an export spec on disk (device, inode, size, mtime), so a
/// reload can tell an unchanged image (keep its RAM copy) from a replaced or modified one.
pub type FileId = (u64, u64, u64, i64, i64);

/// The [`FileId`] of the file an `--export` spec names, if it can be read.
pub fn file_id(spec: &str) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    let rest = spec.split_once('=')?.1;
    let rest = rest.split_once(",desc=").map_or(rest, |x| x.0);
    let path = rest.split(',').next()?;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// Parses a size such as `4096`, `64K`, `512M`, `1G` (binary units).
pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let (num, shift) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 10),
        Some((i, 'm' | 'M')) => (&s[..i], 20),
        Some((i, 'g' | 'G')) => (&s[..i], 30),
        Some((i, 't' | 'T')) => (&s[..i], 40),
        _ => (s, 0),
    };
    let n: u64 = num.parse().with_context(|| format!("bad size {s:?}"))?;
    n.checked_mul(1 << shift)
        .with_context(|| format!("size {s:?} too large"))
}

/// Parses `NAME=PATH[,ram][,cow][,rw][,desc=TEXT]` (`desc=` takes the rest of the line, so the
/// description may contain commas) and opens the file.
pub fn parse_export(spec: &str) -> anyhow::Result<ServedExport> {
    let (name, rest) = spec
        .split_once('=')
        .with_context(|| format!("--export {spec:?}: expected NAME=PATH[,ram][,cow][,rw]"))?;
    let (rest, desc) = match rest.split_once(",desc=") {
        Some((r, d)) => (r, d.to_string()),
        None => (rest, String::new()),
    };
    let mut parts = rest.split(',');
    let path = parts.next().unwrap_or_default();
    let (mut ram, mut cow, mut rw) = (false, false, false);
    for p in parts {
        match p {
            "ram" => ram = true,
            "cow" => cow = true,
            "rw" => rw = true,
            other => bail!("--export {spec:?}: unknown option {other:?}"),
        }
    }
    if rw && (ram || cow) {
        bail!("--export {spec:?}: rw writes through to the file; it excludes ram and cow");
    }
    if name.len() > netboot_nbd::wire::MAX_STRING_LEN {
        bail!("--export: name longer than 4096 bytes");
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(rw)
        .open(path)
        .with_context(|| format!("opening {path}"))?;
    // Seek rather than metadata: block devices report a length of 0.
    let size = file.seek(SeekFrom::End(0))?;
    let backing = if ram {
        file.seek(SeekFrom::Start(0))?;
        Backing::Ram(RamImage::load(&mut file, size).with_context(|| format!("loading {path}"))?)
    } else {
        Backing::File {
            file: Arc::new(file),
            writable: rw,
        }
    };
    let mut export = if rw || cow {
        // A cow view is private to its connection, so several connections are not coherent.
        Export::writable(name, size, !cow)
    } else {
        Export::read_only(name, size)
    };
    export.description = desc;
    Ok(ServedExport {
        export,
        backing,
        cow,
    })
}

/// Parses `NAME=SIZE`: an empty, writable RAM disk shared by all connections.
pub fn parse_ramdisk(spec: &str) -> anyhow::Result<ServedExport> {
    let (name, size) = spec
        .split_once('=')
        .with_context(|| format!("--ramdisk {spec:?}: expected NAME=SIZE"))?;
    let size = parse_size(size)?;
    let len = usize::try_from(size).context("ramdisk too large")?;
    Ok(ServedExport {
        export: Export::writable(name, size, true),
        backing: Backing::RamDisk(Arc::new(RwLock::new(vec![0; len]))),
        cow: false,
    })
}

/// Data to send after a reply header.
pub enum Payload {
    None,
    /// A slice of the shared RAM image.
    Shared(Bytes),
    Owned(Vec<u8>),
    /// `len` bytes of `file` at `offset`, for the writer to `sendfile` to the socket.
    File {
        file: Arc<File>,
        offset: u64,
        len: usize,
    },
}

impl Payload {
    /// Bytes of payload.
    pub fn len(&self) -> usize {
        match self {
            Payload::None => 0,
            Payload::Shared(b) => b.len(),
            Payload::Owned(v) => v.len(),
            Payload::File { len, .. } => *len,
        }
    }
}

/// Reads at least this large go out with `sendfile` when the socket allows it; smaller ones
/// are copied into a buffer (or, from a RAM image, sliced from it) so many replies share one
/// `writev` (two syscalls per tiny reply would cost more than the copy).
pub const SENDFILE_MIN: u64 = 32 << 10;

const COW_BLOCK: u64 = 4096;
/// Most extents in one BLOCK_STATUS reply (the spec asks for at most 2^20).
const MAX_EXTENTS: usize = 1 << 16;

/// One connection's view of an export.
pub struct Storage {
    backing: Backing,
    /// Copy-on-write blocks of this connection, by block index.
    cow: Option<HashMap<u64, Box<[u8]>>>,
    /// Most bytes the overlay may hold; a write needing more fails with ENOSPC.
    cow_max: u64,
    size: u64,
}

fn poisoned<T>(_: T) -> std::io::Error {
    std::io::Error::other("ramdisk lock poisoned")
}

impl Storage {
    /// A connection's view of `e`; `cow_max` bounds its overlay (if the export has one).
    pub fn open(e: &ServedExport, cow_max: u64) -> Storage {
        Storage {
            backing: e.backing.clone(),
            cow: e.cow.then(HashMap::new),
            cow_max,
            size: e.export.size,
        }
    }

    /// Fills `buf` from the shared backing (no overlay).
    fn read_base(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        match &self.backing {
            Backing::File { file, .. } => file.read_exact_at(buf, offset),
            Backing::Ram(img) => {
                let o = offset as usize;
                buf.copy_from_slice(&img.bytes[o..o + buf.len()]);
                Ok(())
            }
            Backing::RamDisk(d) => {
                let d = d.read().map_err(poisoned)?;
                let o = offset as usize;
                buf.copy_from_slice(&d[o..o + buf.len()]);
                Ok(())
            }
        }
    }

    /// Whether a read is served without a buffer of its own (a slice of the RAM image, or
    /// `sendfile` when the socket allows it).
    pub fn unbuffered(&self, len: u64, sendfile: bool) -> bool {
        matches!((&self.backing, &self.cow), (Backing::Ram(_), None))
            || (sendfile && self.sendfile(len))
    }

    /// Whether a read of `len` bytes goes out with `sendfile` when the socket allows it.
    fn sendfile(&self, len: u64) -> bool {
        len >= SENDFILE_MIN && self.cow.is_none() && self.backing.file().is_some()
    }

    /// Reads `len` bytes at `offset` (the engine checked the range). With `sendfile` (the
    /// socket takes it and [`Storage::sendfile`] says yes) nothing is read here; otherwise `buf`
    /// is a recycled buffer: only its growth is zeroed, the rest is overwritten by the read.
    pub fn read(
        &self,
        offset: u64,
        len: u64,
        sendfile: bool,
        mut buf: Vec<u8>,
    ) -> std::io::Result<Payload> {
        if len == 0 {
            return Ok(Payload::None);
        }
        if sendfile
            && self.sendfile(len)
            && let Some(file) = self.backing.file()
        {
            return Ok(Payload::File {
                file: file.clone(),
                offset,
                len: len as usize,
            });
        }
        if let (Backing::Ram(img), None) = (&self.backing, &self.cow) {
            return Ok(Payload::Shared(
                img.bytes.slice(offset as usize..(offset + len) as usize),
            ));
        }
        buf.resize(len as usize, 0);
        match &self.cow {
            None => self.read_base(offset, &mut buf)?,
            Some(cow) => {
                // Block by block: overlay where this connection wrote, backing elsewhere.
                let mut pos = offset;
                while pos < offset + len {
                    let blk = pos / COW_BLOCK;
                    let in_blk = (pos % COW_BLOCK) as usize;
                    let n = (COW_BLOCK - pos % COW_BLOCK).min(offset + len - pos) as usize;
                    let dst = &mut buf[(pos - offset) as usize..][..n];
                    match cow.get(&blk) {
                        Some(b) => dst.copy_from_slice(&b[in_blk..in_blk + n]),
                        None => self.read_base(pos, dst)?,
                    }
                    pos += n as u64;
                }
            }
        }
        Ok(Payload::Owned(buf))
    }

    /// Writes `data` at `offset`; with `fua`, durable before returning.
    pub fn write(&mut self, offset: u64, data: &[u8], fua: bool) -> std::io::Result<()> {
        if self.cow.is_some() {
            return self.cow_write(offset, data.len() as u64, Some(data));
        }
        match &self.backing {
            Backing::File {
                file,
                writable: true,
            } => {
                file.write_all_at(data, offset)?;
                if fua {
                    file.sync_data()?;
                }
                Ok(())
            }
            Backing::RamDisk(d) => {
                let mut d = d.write().map_err(poisoned)?;
                let o = offset as usize;
                d[o..o + data.len()].copy_from_slice(data);
                Ok(())
            }
            _ => Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
        }
    }

    /// Writes zeroes; `fast_only` fails with `Unsupported` unless it is cheaper than writing.
    pub fn write_zeroes(
        &mut self,
        offset: u64,
        len: u64,
        fua: bool,
        fast_only: bool,
    ) -> std::io::Result<()> {
        if self.cow.is_some() {
            return self.cow_write(offset, len, None);
        }
        match &self.backing {
            Backing::File {
                file,
                writable: true,
            } => {
                let flags = rustix::fs::FallocateFlags::ZERO_RANGE;
                match rustix::fs::fallocate(&**file, flags, offset, len) {
                    Ok(()) => {}
                    Err(_) if fast_only => return Err(std::io::ErrorKind::Unsupported.into()),
                    Err(_) => {
                        let zero = vec![0u8; (len.min(1 << 20)) as usize];
                        let mut pos = offset;
                        while pos < offset + len {
                            let n = (offset + len - pos).min(zero.len() as u64) as usize;
                            file.write_all_at(&zero[..n], pos)?;
                            pos += n as u64;
                        }
                    }
                }
                if fua {
                    file.sync_data()?;
                }
                Ok(())
            }
            Backing::RamDisk(d) => {
                let mut d = d.write().map_err(poisoned)?;
                d[offset as usize..(offset + len) as usize].fill(0);
                Ok(())
            }
            _ => Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
        }
    }

    /// Copy-on-write update of `[offset, offset+len)` with `data` (or zeroes). All or
    /// nothing: a write that would grow the overlay past `cow_max` changes nothing and fails
    /// with `StorageFull` (ENOSPC to the client).
    fn cow_write(&mut self, offset: u64, len: u64, data: Option<&[u8]>) -> std::io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        let held = self.cow.as_ref().map_or(0, |c| c.len() as u64);
        let (first, last) = (offset / COW_BLOCK, (offset + len - 1) / COW_BLOCK);
        let new = (first..=last)
            .filter(|b| !self.cow.as_ref().is_some_and(|c| c.contains_key(b)))
            .count() as u64;
        if (held + new).saturating_mul(COW_BLOCK) > self.cow_max {
            return Err(std::io::ErrorKind::StorageFull.into());
        }
        let mut pos = offset;
        while pos < offset + len {
            let blk = pos / COW_BLOCK;
            let in_blk = (pos % COW_BLOCK) as usize;
            let n = (COW_BLOCK - pos % COW_BLOCK).min(offset + len - pos) as usize;
            let has = self.cow.as_ref().is_some_and(|c| c.contains_key(&blk));
            if !has {
                let start = blk * COW_BLOCK;
                let blen = COW_BLOCK.min(self.size - start) as usize;
                let mut b = vec![0u8; blen].into_boxed_slice();
                self.read_base(start, &mut b)?;
                if let Some(c) = self.cow.as_mut() {
                    c.insert(blk, b);
                }
            }
            if let Some(b) = self.cow.as_mut().and_then(|c| c.get_mut(&blk)) {
                let dst = &mut b[in_blk..in_blk + n];
                match data {
                    Some(d) => dst.copy_from_slice(&d[(pos - offset) as usize..][..n]),
                    None => dst.fill(0),
                }
            }
            pos += n as u64;
        }
        Ok(())
    }

    /// Makes every completed write durable (a no-op for RAM and overlays).
    pub fn flush(&self) -> std::io::Result<()> {
        match &self.backing {
            Backing::File {
                file,
                writable: true,
            } if self.cow.is_none() => file.sync_data(),
            _ => Ok(()),
        }
    }

    /// `base:allocation` extents of `[offset, offset+len)`: runs of (length, flags) where
    /// flags bit 0 means hole and bit 1 "reads as zeroes". Files and RAM images (whose zero
    /// blocks were left as holes) report holes with SEEK_HOLE/SEEK_DATA, so copy tools skip
    /// them.
    pub fn extents(&self, offset: u64, len: u64, one: bool) -> Vec<(u64, u32)> {
        const HOLE_ZERO: u32 = 3;
        // Replies may describe less than asked (at least one extent); this bounds their size.
        let cap = if one { 1 } else { MAX_EXTENTS };
        let end = offset + len;
        let mut out: Vec<(u64, u32)> = Vec::new();
        fn push(out: &mut Vec<(u64, u32)>, l: u64, f: u32) {
            match out.last_mut() {
                Some((ll, ff)) if *ff == f => *ll += l,
                _ => out.push((l, f)),
            }
        }
        match (&self.backing, &self.cow) {
            (Backing::Ram(RamImage { bytes: b, .. }), None) => {
                // Scanned in 64 KiB blocks so copy tools can skip zero runs (a dense image
                // stops each scan at its first byte).
                const BLK: u64 = 64 << 10;
                let mut pos = offset;
                while pos < end && out.len() <= cap {
                    let n = (BLK - pos % BLK).min(end - pos);
                    let s = &b[pos as usize..(pos + n) as usize];
                    push(&mut out, n, if s.iter().all(|&x| x == 0) { 2 } else { 0 });
                    pos += n;
                }
            }
            // A file with every block allocated has no holes: skip the lseek walk.
            (Backing::File { file, .. }, None) if dense(file) => push(&mut out, len, 0),
            (Backing::File { file, .. }, None) => {
                let mut pos = offset;
                while pos < end {
                    use rustix::fs::{SeekFrom as S, seek};
                    let data = seek(&**file, S::Data(pos)).unwrap_or(end).min(end);
                    if data > pos {
                        push(&mut out, data - pos, HOLE_ZERO);
                        pos = data;
                        continue;
                    }
                    let hole = seek(&**file, S::Hole(pos))
                        .unwrap_or(end)
                        .clamp(pos + 1, end);
                    push(&mut out, hole - pos, 0);
                    pos = hole;
                    if out.len() > cap {
                        break;
                    }
                }
            }
            _ => push(&mut out, len, 0),
        }
        out.truncate(cap);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64K").unwrap(), 65536);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn cow_overlay_is_private_and_byte_exact() {
        let base: Vec<u8> = (0..20000u32).map(|i| i as u8).collect();
        let e = ServedExport {
            export: Export::writable("c", base.len() as u64, false),
            backing: Backing::Ram(ram(&base)),
            cow: true,
        };
        let mut a = Storage::open(&e, u64::MAX);
        let b = Storage::open(&e, u64::MAX);
        a.write(4090, &[0xee; 10], false).unwrap();
        a.write_zeroes(10000, 5000, false, true).unwrap();
        let got = a.read(0, base.len() as u64, true, Vec::new()).unwrap();
        let mut want = base.clone();
        want[4090..4100].fill(0xee);
        want[10000..15000].fill(0);
        assert!(matches!(&got, Payload::Owned(v) if v[..] == want[..]));
        let got = b.read(0, base.len() as u64, false, vec![9; 5]).unwrap();
        assert!(matches!(&got, Payload::Owned(v) if v[..] == base[..]));
    }

    #[test]
    fn cow_overlay_is_capped_all_or_nothing() {
        let base = vec![5u8; 64 << 10];
        let e = ServedExport {
            export: Export::writable("c", base.len() as u64, false),
            backing: Backing::Ram(ram(&base)),
            cow: true,
        };
        let mut s = Storage::open(&e, 3 * COW_BLOCK);
        s.write(100, &[1; 5000], false).unwrap(); // blocks 0 and 1
        let full = std::io::ErrorKind::StorageFull;
        // Blocks 1..=2 need one new block (fits), then 3..=4 would need two (does not).
        s.write(6000, &[2; 4000], false).unwrap();
        assert_eq!(
            s.write(3 * 4096, &[3; 4097], false).unwrap_err().kind(),
            full
        );
        assert_eq!(
            s.write_zeroes(40000, 1, false, false).unwrap_err().kind(),
            full
        );
        // Held blocks stay writable; the refused write changed nothing.
        s.write(0, &[4; 12288], false).unwrap();
        let got = s.read(0, 20000, false, Vec::new()).unwrap();
        let mut want = base[..20000].to_vec();
        want[..12288].fill(4);
        assert!(matches!(&got, Payload::Owned(v) if v[..] == want[..]));
        assert_eq!(conn_errno(&s.write(50000, b"x", false).unwrap_err()), 28);
    }

    fn ram(v: &[u8]) -> RamImage {
        RamImage::load(&mut &v[..], v.len() as u64).unwrap()
    }

    fn conn_errno(e: &std::io::Error) -> u32 {
        super::super::conn::io_errno(e)
    }

    #[test]
    fn ram_extents_find_zero_runs() {
        let mut v = vec![0u8; 256 << 10];
        v[70000] = 1;
        let e = ServedExport {
            export: Export::read_only("r", v.len() as u64),
            backing: Backing::Ram(ram(&v)),
            cow: false,
        };
        let s = Storage::open(&e, u64::MAX);
        assert_eq!(
            s.extents(0, 256 << 10, false),
            [(64 << 10, 2), (64 << 10, 0), (128 << 10, 2)]
        );
        assert_eq!(s.extents(100, 1000, true), [(1000, 2)]);
    }

    #[test]
    fn file_extents_report_holes() {
        let path = std::env::temp_dir().join(format!("nbdd-sparse-{}", std::process::id()));
        let f = File::create(&path).unwrap();
        f.set_len(2 << 20).unwrap();
        f.write_all_at(&[7; 4096], 1 << 20).unwrap();
        drop(f);
        let e = parse_export(&format!("s={}", path.display())).unwrap();
        let ext = Storage::open(&e, u64::MAX).extents(0, 2 << 20, false);
        assert_eq!(ext.iter().map(|x| x.0).sum::<u64>(), 2 << 20, "{ext:?}");
        // The written block is data, whatever the filesystem's allocation granularity.
        let mut pos = 0;
        let at_1m = ext.iter().find(|(l, _)| {
            pos += l;
            pos > 1 << 20
        });
        assert_eq!(at_1m.map(|x| x.1), Some(0), "{ext:?}");
        assert_eq!(ext[0].1, 3, "leading hole reads as zeroes: {ext:?}");
        let one = Storage::open(&e, u64::MAX).extents(0, 2 << 20, true);
        assert_eq!(one.len(), 1);
        // Large reads become a sendfile of the page cache when the socket takes it; small
        // ones and non-socket streams are read into the buffer.
        let s = Storage::open(&e, u64::MAX);
        let got = s.read(1 << 20, 64 << 10, true, Vec::new()).unwrap();
        assert!(
            matches!(got, Payload::File { offset, len, .. } if offset == 1 << 20 && len == 64 << 10)
        );
        let got = s.read(1 << 20, 64 << 10, false, Vec::new()).unwrap();
        assert!(matches!(&got, Payload::Owned(v) if v[..4096] == [7; 4096]));
        let got = s.read(1 << 20, 4096, true, Vec::new()).unwrap();
        assert!(matches!(&got, Payload::Owned(v) if v[..] == [7; 4096]));
        let _ = std::fs::remove_file(&path);
    }

    /// A RAM image: large reads on a socket that takes `sendfile` name the sealed memfd,
    /// everything else is a slice of the mapping; both carry the image's bytes.
    #[test]
    fn ram_reads_sendfile_large_and_slice_small() {
        use std::os::unix::fs::FileExt;
        let v: Vec<u8> = (0..(256u32 << 10)).map(|i| (i % 251) as u8).collect();
        let e = ServedExport {
            export: Export::read_only("r", v.len() as u64),
            backing: Backing::Ram(ram(&v)),
            cow: false,
        };
        let s = Storage::open(&e, 0);
        let big = SENDFILE_MIN + 100;
        match s.read(1000, big, true, Vec::new()).unwrap() {
            Payload::File { file, offset, len } => {
                assert_eq!((offset, len as u64), (1000, big));
                let mut got = vec![0; len];
                file.read_exact_at(&mut got, offset).unwrap();
                assert_eq!(got, v[1000..1000 + len]);
            }
            _ => panic!("a large read on a sendfile socket should name the memfd"),
        }
        for (len, sendfile) in [(big, false), (SENDFILE_MIN - 1, true), (10, true)] {
            let got = s.read(77, len, sendfile, Vec::new()).unwrap();
            assert!(
                matches!(&got, Payload::Shared(b) if b[..] == v[77..77 + len as usize]),
                "len {len} sendfile {sendfile}"
            );
        }
    }
}

//! RAM images: an export's bytes loaded once into a sealed memfd, and a read-only mapping of
//! it. The seals make the memory immutable for as long as the server runs, which is what
//! makes the mapping sound; this module holds the workspace's only `unsafe` block.
#![allow(unsafe_code)]

use bytes::Bytes;
use std::fs::File;
use std::io::Read;
use std::sync::Arc;

/// An image every connection reads without a copy of its own: small reads are slices of
/// `bytes` sent with `writev`, large ones are `sendfile`d from `file`, which hands the very
/// same pages to the socket without copying them.
#[derive(Debug, Clone)]
pub struct RamImage {
    /// The sealed memfd (no write, grow or shrink; seals sealed).
    pub file: Arc<File>,
    /// The whole image, mapped from `file`.
    pub bytes: Bytes,
}

impl RamImage {
    /// Copies `size` bytes from `src` into a new sealed memfd and maps it.
    pub fn load(src: &mut impl Read, size: u64) -> std::io::Result<RamImage> {
        use rustix::fs::{MemfdFlags, SealFlags, fcntl_add_seals, memfd_create};
        let fd = memfd_create(
            "netboot-nbd-image",
            MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
        )?;
        let mut file = File::from(fd);
        let copied = std::io::copy(&mut src.take(size), &mut file)?;
        if copied != size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("image ended after {copied} of {size} bytes"),
            ));
        }
        let seals = SealFlags::WRITE | SealFlags::GROW | SealFlags::SHRINK | SealFlags::SEAL;
        fcntl_add_seals(&file, seals)?;
        let bytes = if size == 0 {
            Bytes::new()
        } else {
            let len = usize::try_from(size).map_err(std::io::Error::other)?;
            // SAFETY: a shared read-only mapping of `file`, whose length is exactly `len`.
            // The seals added above forbid every write (write, mmap for writing, fallocate),
            // every size change and any change to the seals themselves, for every holder of
            // the descriptor, so the mapped bytes cannot change or vanish while the mapping
            // lives (it owns its own reference to the memory). No other code can reach the
            // memfd before the seals: it is created and filled here.
            let map = unsafe { memmap2::MmapOptions::new().len(len).map(&file)? };
            Bytes::from_owner(map)
        };
        Ok(RamImage {
            file: Arc::new(file),
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn image_is_exact_and_sealed() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
        let img = RamImage::load(&mut &data[..], data.len() as u64).unwrap();
        assert_eq!(&img.bytes[..], &data[..]);
        let mut back = vec![0; 1000];
        img.file.read_exact_at(&mut back, 123_456).unwrap();
        assert_eq!(back, data[123_456..124_456]);
        // Sealed: neither written, grown nor shrunk, by anyone holding the descriptor.
        assert!(img.file.write_at(b"x", 0).is_err());
        assert!(img.file.set_len(10).is_err());
        assert!(img.file.set_len(1 << 20).is_err());
        assert_eq!(&img.bytes[..4], &data[..4]);
    }

    #[test]
    fn short_source_and_empty_image() {
        let e = RamImage::load(&mut &[1u8; 10][..], 20).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        let img = RamImage::load(&mut &[][..], 0).unwrap();
        assert!(img.bytes.is_empty());
    }
}

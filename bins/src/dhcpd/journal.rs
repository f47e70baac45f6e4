//! The durable lease store: an append-only journal of checksummed records.
//!
//! Record: `len: u16 LE | crc32(payload): u32 LE | payload` where the payload is
//! [`Lease::encode`]. At start every record is replayed in order (the last one for an address
//! wins); the first record that is short or fails its checksum marks a torn tail from a crash
//! and the file is cut there. [`Journal::commit`] is one `write` plus one `fdatasync` for every
//! change appended since the last commit: that is the group commit the driver relies on to
//! send a whole batch of ACKs after one sync. When the journal has grown well past the live
//! lease count it is rewritten into a new file that is synced and renamed into place.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use netboot_dhcp::lease::{Lease, LeaseStore};

use super::config::Durability;

/// An open journal.
pub struct Journal {
    path: PathBuf,
    file: File,
    pending: Vec<u8>,
    durability: Durability,
    records: usize,
}

fn crc32(data: &[u8]) -> u32 {
    // IEEE 802.3 polynomial, reflected; bitwise is fast enough for ~40-byte records.
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

fn frame(lease: &Lease, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 6]);
    lease.encode(out);
    let len = (out.len() - start - 6) as u16;
    let crc = crc32(&out[start + 6..]);
    out[start..start + 2].copy_from_slice(&len.to_le_bytes());
    out[start + 2..start + 6].copy_from_slice(&crc.to_le_bytes());
}

impl Journal {
    /// Opens (or creates) the journal at `path` and returns it with the leases it holds.
    pub fn open(path: &Path, durability: Durability) -> std::io::Result<(Journal, Vec<Lease>)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        let mut leases = Vec::new();
        let mut at = 0;
        while let Some(head) = data.get(at..at + 6) {
            let len = usize::from(u16::from_le_bytes([head[0], head[1]]));
            let crc = u32::from_le_bytes([head[2], head[3], head[4], head[5]]);
            let Some(payload) = data.get(at + 6..at + 6 + len) else {
                break;
            };
            if crc32(payload) != crc {
                break;
            }
            let Some(lease) = Lease::decode(payload) else {
                break;
            };
            leases.push(lease);
            at += 6 + len;
        }
        if at < data.len() {
            tracing::warn!(
                path = %path.display(),
                kept = at,
                dropped = data.len() - at,
                "lease journal has a torn tail; cutting it off"
            );
            file.set_len(at as u64)?;
            file.sync_data()?;
        }
        let records = leases.len();
        Ok((
            Journal {
                path: path.to_owned(),
                file,
                pending: Vec::with_capacity(64 * 1024),
                durability,
                records,
            },
            leases,
        ))
    }

    /// Replaces the journal with `live`, a snapshot that includes every change appended so
    /// far. If the new file cannot be made, the snapshot is appended to the old one instead
    /// (the last record for an address wins on replay), so nothing is lost either way.
    pub fn compact<'a>(&mut self, live: impl Iterator<Item = &'a Lease> + Clone) {
        self.pending.clear();
        if let Err(e) = self.rewrite(live.clone()) {
            tracing::warn!(error = %e, "lease journal compaction failed; appending the snapshot");
            for l in live {
                frame(l, &mut self.pending);
            }
        }
    }

    fn rewrite<'a>(&mut self, live: impl Iterator<Item = &'a Lease>) -> std::io::Result<()> {
        let tmp = self.path.with_extension("compact");
        let mut buf = Vec::new();
        let mut n = 0;
        for l in live {
            frame(l, &mut buf);
            n += 1;
        }
        let mut f = File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        tracing::info!(before = self.records, after = n, "lease journal compacted");
        self.records = n;
        Ok(())
    }
}

impl LeaseStore for Journal {
    type Error = std::io::Error;

    fn append(&mut self, lease: &Lease) -> std::io::Result<()> {
        frame(lease, &mut self.pending);
        self.records += 1;
        Ok(())
    }

    fn commit(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.pending)?;
        self.pending.clear();
        if self.durability == Durability::Fsync {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netboot_dhcp::lease::{ClientKey, LeaseState};
    use std::net::Ipv4Addr;

    fn lease(n: u8) -> Lease {
        Lease {
            ip: Ipv4Addr::new(198, 18, 0, n),
            client: ClientKey::hardware(1, &[2, 0, 0, 0, 0, n]),
            state: LeaseState::Bound { expires: None },
        }
    }

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn replays_and_cuts_a_torn_tail() {
        let dir = std::env::temp_dir().join(format!("dhcpd-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("leases");
        {
            let (mut j, old) = Journal::open(&path, Durability::Fsync).unwrap();
            assert!(old.is_empty());
            for n in 1..=3 {
                j.append(&lease(n)).unwrap();
            }
            j.commit().unwrap();
        }
        // A crash mid-write: half a record at the end.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        let mut half = Vec::new();
        frame(&lease(4), &mut half);
        f.write_all(&half[..half.len() / 2]).unwrap();
        drop(f);
        let (mut j, got) = Journal::open(&path, Durability::Fsync).unwrap();
        assert_eq!(got, [lease(1), lease(2), lease(3)]);
        j.append(&lease(5)).unwrap();
        j.commit().unwrap();
        let (_, got) = Journal::open(&path, Durability::Fsync).unwrap();
        assert_eq!(got, [lease(1), lease(2), lease(3), lease(5)]);
        // Compaction keeps exactly the live set.
        let (mut j, _) = Journal::open(&path, Durability::None).unwrap();
        j.compact([lease(9)].iter());
        let (_, got) = Journal::open(&path, Durability::Fsync).unwrap();
        assert_eq!(got, [lease(9)]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Leases: the durable record, its byte encoding for journals, the store trait a driver
//! implements, and the in-memory table the engine allocates from.

use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Who a lease belongs to: by default the hardware address (so the PXE ROM, iPXE, the
/// initramfs and the OS, which send different client-ids, keep one address), or the client-id
/// when the server is configured to match on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey(Vec<u8>);

impl ClientKey {
    /// Keyed by hardware type and address.
    pub fn hardware(htype: u8, addr: &[u8]) -> Self {
        let mut k = Vec::with_capacity(addr.len() + 2);
        k.extend_from_slice(&[0, htype]);
        k.extend_from_slice(addr);
        ClientKey(k)
    }
    /// Keyed by option 61.
    pub fn client_id(id: &[u8]) -> Self {
        let mut k = Vec::with_capacity(id.len() + 1);
        k.push(1);
        k.extend_from_slice(id);
        ClientKey(k)
    }
    /// The encoded key (a kind byte, then the hardware type and address or the client-id).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// The hardware address, when keyed by one.
    pub fn hw_addr(&self) -> Option<&[u8]> {
        match self.0.as_slice() {
            [0, _, addr @ ..] => Some(addr),
            _ => None,
        }
    }
    /// FNV-1a: a stable hash, so a client lands on the same pool address across restarts
    /// and across servers with the same pool.
    pub(crate) fn stable_hash(&self) -> u32 {
        self.0.iter().fold(0x811c_9dc5u32, |h, &b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        })
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = self.hw_addr().unwrap_or(&self.0[1..]);
        let prefix = if self.hw_addr().is_some() { "" } else { "id:" };
        f.write_str(prefix)?;
        for (i, b) in bytes.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The durable state of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseState {
    /// Bound until `expires` (unix seconds), or forever.
    Bound {
        /// Expiry in seconds since the Unix epoch; `None` = infinite lease.
        expires: Option<u64>,
    },
    /// Released by the client; the address stays associated with it until someone else
    /// needs it, so the client gets it back next time.
    Released,
    /// Declined (the client found it in use); not handed out before `until`.
    Declined {
        /// End of the probation, unix seconds.
        until: u64,
    },
}

/// One address's durable record, as journalled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The address.
    pub ip: Ipv4Addr,
    /// Its client.
    pub client: ClientKey,
    /// Its state.
    pub state: LeaseState,
}

impl Lease {
    /// Appends the record's encoding: kind, address, time (u64 BE), key length, key.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (kind, t) = match self.state {
            LeaseState::Bound { expires: None } => (0u8, 0),
            LeaseState::Bound { expires: Some(t) } => (1, t),
            LeaseState::Released => (2, 0),
            LeaseState::Declined { until } => (3, until),
        };
        out.push(kind);
        out.extend_from_slice(&self.ip.octets());
        out.extend_from_slice(&t.to_be_bytes());
        let key = &self.client.0[..self.client.0.len().min(255)];
        out.push(key.len() as u8);
        out.extend_from_slice(key);
    }

    /// Decodes one record written by [`Lease::encode`]; `None` when malformed.
    pub fn decode(b: &[u8]) -> Option<Lease> {
        let (&kind, rest) = b.split_first()?;
        let ip = Ipv4Addr::from(<[u8; 4]>::try_from(rest.get(..4)?).ok()?);
        let t = u64::from_be_bytes(rest.get(4..12)?.try_into().ok()?);
        let (&klen, key) = rest.get(12..)?.split_first()?;
        if key.len() != usize::from(klen) || key.is_empty() {
            return None;
        }
        let state = match kind {
            0 => LeaseState::Bound { expires: None },
            1 => LeaseState::Bound { expires: Some(t) },
            2 => LeaseState::Released,
            3 => LeaseState::Declined { until: t },
            _ => return None,
        };
        Some(Lease {
            ip,
            client: ClientKey(key.to_vec()),
            state,
        })
    }
}

/// Where a driver keeps leases durable. The engine hands every change out with its reply;
/// the driver [`append`](LeaseStore::append)s them and calls [`commit`](LeaseStore::commit)
/// **before** sending the replies, so one commit (one fsync) covers a whole batch of ACKs.
pub trait LeaseStore {
    /// The store's failure type.
    type Error;
    /// Records a change (not yet durable).
    fn append(&mut self, lease: &Lease) -> Result<(), Self::Error>;
    /// Makes everything appended so far durable.
    fn commit(&mut self) -> Result<(), Self::Error>;
}

/// A store that keeps nothing: for embedding without persistence, tests and benchmarks.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullStore;

impl LeaseStore for NullStore {
    type Error = std::convert::Infallible;
    fn append(&mut self, _: &Lease) -> Result<(), Self::Error> {
        Ok(())
    }
    fn commit(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// An address's state in memory: the durable states plus a short-lived offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Offered { until: u64 },
    Durable(LeaseState),
}

impl Slot {
    /// Whether the address is taken at `now` by its current client.
    pub(crate) fn active(&self, now: u64) -> bool {
        match *self {
            Slot::Offered { until } => until > now,
            Slot::Durable(LeaseState::Bound { expires }) => expires.is_none_or(|e| e > now),
            Slot::Durable(LeaseState::Released) => false,
            Slot::Durable(LeaseState::Declined { until }) => until > now,
        }
    }
}

/// The lease table: address → (client, slot), client → address.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) by_ip: HashMap<Ipv4Addr, (ClientKey, Slot)>,
    pub(crate) by_client: HashMap<ClientKey, Ipv4Addr>,
}

impl Table {
    pub(crate) fn set(&mut self, ip: Ipv4Addr, client: &ClientKey, slot: Slot) {
        if let Some((old, _)) = self.by_ip.get(&ip)
            && old != client
            && self.by_client.get(old) == Some(&ip)
        {
            self.by_client.remove(old);
        }
        if let Some(prev) = self.by_client.insert(client.clone(), ip)
            && prev != ip
            && self.by_ip.get(&prev).is_some_and(|(c, _)| c == client)
        {
            self.by_ip.remove(&prev);
        }
        self.by_ip.insert(ip, (client.clone(), slot));
    }

    /// Marks `ip` declined: it stays out of use for the probation and the client loses it.
    pub(crate) fn decline(&mut self, ip: Ipv4Addr, client: &ClientKey, until: u64) {
        if self.by_client.get(client) == Some(&ip) {
            self.by_client.remove(client);
        }
        self.by_ip.insert(
            ip,
            (
                client.clone(),
                Slot::Durable(LeaseState::Declined { until }),
            ),
        );
    }

    pub(crate) fn restore(&mut self, lease: &Lease) {
        match lease.state {
            LeaseState::Declined { until } => self.decline(lease.ip, &lease.client, until),
            s => self.set(lease.ip, &lease.client, Slot::Durable(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let key = ClientKey::hardware(1, &[0x52, 0x54, 0, 1, 2, 3]);
        for state in [
            LeaseState::Bound { expires: None },
            LeaseState::Bound {
                expires: Some(1_700_000_000),
            },
            LeaseState::Released,
            LeaseState::Declined { until: 42 },
        ] {
            let l = Lease {
                ip: Ipv4Addr::new(198, 18, 0, 9),
                client: key.clone(),
                state,
            };
            let mut b = Vec::new();
            l.encode(&mut b);
            assert_eq!(Lease::decode(&b), Some(l));
            assert_eq!(Lease::decode(&b[..b.len() - 1]), None);
        }
        assert_eq!(Lease::decode(&[9; 20]), None);
        assert_eq!(key.to_string(), "52:54:00:01:02:03");
    }
}

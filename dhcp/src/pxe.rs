//! PXE vendor options carried in option 43 when the vendor class is `PXEClient` (PXE 2.1
//! specification §2.4; the sub-option numbers are also listed in RFC 4578 §2.5 references).
//!
//! A server sends them to say how the ROM should discover its boot server: sub-option 6 bit 3
//! ("use the boot file in this packet") keeps an EDK2 client from going to port 4011 for a
//! proxy that does not exist; sub-options 9/10 build the boot menu that Raspberry Pi ROMs
//! insist on ("Raspberry Pi Boot").

use std::borrow::Cow;

use crate::wire::{Error, RawOptions, code};

/// 6: discovery control bits.
pub const DISCOVERY_CONTROL: u8 = 6;
/// 8: boot servers.
pub const BOOT_SERVERS: u8 = 8;
/// 9: boot menu.
pub const BOOT_MENU: u8 = 9;
/// 10: menu prompt.
pub const MENU_PROMPT: u8 = 10;
/// 71: boot item (type, layer).
pub const BOOT_ITEM: u8 = 71;

/// Discovery control bit 3: download the boot file named in this packet, no discovery.
pub const USE_BOOTFILE: u8 = 0x08;

/// One boot menu entry (sub-option 9): a boot server type and its description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuItem<'a> {
    /// Boot server type (0 = PXE bootstrap server).
    pub server_type: u16,
    /// Shown to the user; at most 255 bytes.
    pub description: Cow<'a, [u8]>,
}

/// The PXE sub-options of option 43 that a boot server reads or writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VendorOptions<'a> {
    /// 6.
    pub discovery_control: Option<u8>,
    /// 8, raw (type u16, count u8, addresses).
    pub boot_servers: Option<Cow<'a, [u8]>>,
    /// 9.
    pub menu: Vec<MenuItem<'a>>,
    /// 10: timeout in seconds (255 = wait for the user) and prompt text.
    pub prompt: Option<(u8, Cow<'a, [u8]>)>,
    /// 71: (type, layer).
    pub boot_item: Option<(u16, u16)>,
}

impl<'a> VendorOptions<'a> {
    /// Decodes option 43's value. Unknown sub-options are skipped.
    pub fn parse(data: &'a [u8]) -> Result<Self, Error> {
        let mut v = VendorOptions::default();
        for item in RawOptions::new(data) {
            let (c, val) = item?;
            match c {
                DISCOVERY_CONTROL => {
                    let &[b] = val else {
                        return Err(Error::BadOption(code::VENDOR_SPECIFIC));
                    };
                    v.discovery_control = Some(b);
                }
                BOOT_SERVERS => v.boot_servers = Some(Cow::Borrowed(val)),
                BOOT_MENU => {
                    let mut rest = val;
                    while !rest.is_empty() {
                        let [t0, t1, len, tail @ ..] = rest else {
                            return Err(Error::BadOption(code::VENDOR_SPECIFIC));
                        };
                        let len = usize::from(*len);
                        if tail.len() < len {
                            return Err(Error::BadOption(code::VENDOR_SPECIFIC));
                        }
                        v.menu.push(MenuItem {
                            server_type: u16::from_be_bytes([*t0, *t1]),
                            description: Cow::Borrowed(&tail[..len]),
                        });
                        rest = &tail[len..];
                    }
                }
                MENU_PROMPT => {
                    let [timeout, text @ ..] = val else {
                        return Err(Error::BadOption(code::VENDOR_SPECIFIC));
                    };
                    v.prompt = Some((*timeout, Cow::Borrowed(text)));
                }
                BOOT_ITEM => {
                    let &[a, b, c, d] = val else {
                        return Err(Error::BadOption(code::VENDOR_SPECIFIC));
                    };
                    v.boot_item = Some((u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])));
                }
                _ => {}
            }
        }
        Ok(v)
    }

    /// Encodes the sub-options followed by END, ready to be option 43's value. Entries that
    /// cannot be encoded (a description over 255 bytes) are truncated to fit.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |c: u8, v: &[u8]| {
            let v = &v[..v.len().min(255)];
            out.push(c);
            out.push(v.len() as u8);
            out.extend_from_slice(v);
        };
        if let Some(d) = self.discovery_control {
            put(DISCOVERY_CONTROL, &[d]);
        }
        if let Some(s) = &self.boot_servers {
            put(BOOT_SERVERS, s);
        }
        if !self.menu.is_empty() {
            let mut m = Vec::new();
            for item in &self.menu {
                let d = &item.description[..item.description.len().min(255)];
                m.extend_from_slice(&item.server_type.to_be_bytes());
                m.push(d.len() as u8);
                m.extend_from_slice(d);
            }
            put(BOOT_MENU, &m);
        }
        if let Some((t, text)) = &self.prompt {
            let mut p = vec![*t];
            p.extend_from_slice(text);
            put(MENU_PROMPT, &p);
        }
        if let Some((t, l)) = self.boot_item {
            let mut b = t.to_be_bytes().to_vec();
            b.extend_from_slice(&l.to_be_bytes());
            put(BOOT_ITEM, &b);
        }
        out.push(code::END);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raspberry_pi_menu_round_trips() {
        // What LTSP configures for Pi 3 ROMs: a one-entry menu with the padded string.
        let v = VendorOptions {
            discovery_control: Some(3),
            menu: vec![MenuItem {
                server_type: 0,
                description: Cow::Borrowed(b"Raspberry Pi Boot   "),
            }],
            prompt: Some((0, Cow::Borrowed(b"PXE"))),
            ..Default::default()
        };
        let bytes = v.to_bytes();
        assert_eq!(&bytes[..3], &[6, 1, 3]);
        assert_eq!(&bytes[3..8], &[9, 23, 0, 0, 20]);
        assert_eq!(*bytes.last().unwrap(), 255);
        assert_eq!(VendorOptions::parse(&bytes).unwrap(), v);
    }

    #[test]
    fn malformed_menu_is_rejected() {
        assert!(VendorOptions::parse(&[9, 4, 0, 0, 9, b'x']).is_err());
        assert!(VendorOptions::parse(&[6, 2, 0, 0]).is_err());
        assert!(VendorOptions::parse(&[71, 3, 0, 0, 0]).is_err());
    }
}

//! The TOML configuration: serde types with `deny_unknown_fields`, and the semantic checks
//! that turn them into the engine's [`Config`], each problem reported as `file:line:col`.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use netboot_dhcp::server::{
    BootPolicy, BootRule, Config as EngineConfig, Host, MenuEntry, PxeMenu, Subnet,
};
use netboot_dhcp::wire::LeaseTime;
use serde::Deserialize;
use toml::Spanned;

/// The DHCP server's configuration as written: the whole `netboot-dhcpd` file, or the
/// `[dhcp]` table of `netbootd`'s. Unknown keys are errors. [`check`] turns it into what the
/// server runs.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct Config(File);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub boot: BootSection,
    #[serde(default)]
    pub subnet: Vec<SubnetSection>,
    #[serde(default)]
    pub host: Vec<HostSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Interfaces served (by arrival interface, from IP_PKTINFO); empty = every one but lo.
    #[serde(default)]
    pub interfaces: Vec<String>,
    #[serde(default = "default_port")]
    pub port: u16,
    #[serde(default = "yes")]
    pub authoritative: bool,
    #[serde(default)]
    pub rapid_commit: bool,
    #[serde(default)]
    pub match_client_id: bool,
    #[serde(default = "default_offer_hold")]
    pub offer_hold: u32,
    #[serde(default = "default_probation")]
    pub decline_probation: u32,
    #[serde(default)]
    pub proxy: bool,
    pub lease_file: Option<PathBuf>,
    #[serde(default)]
    pub durability: Durability,
}

impl Default for ServerSection {
    fn default() -> Self {
        toml::from_str("").expect("defaults deserialize")
    }
}

fn default_port() -> u16 {
    67
}
fn yes() -> bool {
    true
}
fn default_offer_hold() -> u32 {
    30
}
fn default_probation() -> u32 {
    600
}

/// Whether an ACK waits for its lease to reach the disk.
#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// fdatasync before replying (one per batch of replies).
    #[default]
    Fsync,
    /// Write without syncing: for benchmarks only.
    None,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BootSection {
    /// File for clients no rule matches (BIOS).
    pub default: Option<String>,
    /// What iPXE gets (option 77 `iPXE` or option 175 present).
    pub ipxe_script: Option<String>,
    #[serde(default = "yes")]
    pub ipxe_no_pxedhcp: bool,
    #[serde(default)]
    pub rule: Vec<RuleSection>,
    /// A PXE boot menu.
    pub menu: Option<MenuSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MenuSection {
    #[serde(default = "default_prompt")]
    pub prompt: String,
    /// Seconds before the first entry boots; 0 = at once, 255 = wait for the user.
    #[serde(default = "default_menu_timeout")]
    pub timeout: u8,
    pub item: Spanned<Vec<MenuItemSection>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MenuItemSection {
    pub text: String,
    /// Boot server type; default 0 (local boot) without a file, 0x8001, 0x8002, … with one.
    #[serde(rename = "type")]
    pub server_type: Option<Spanned<u16>>,
    #[serde(default)]
    pub arch: Vec<u16>,
    pub file: Option<String>,
    pub server: Option<Ipv4Addr>,
}

fn default_prompt() -> String {
    "Press F8 for the boot menu".into()
}
fn default_menu_timeout() -> u8 {
    10
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSection {
    #[serde(default)]
    pub arch: Vec<u16>,
    pub vendor_class: Option<String>,
    /// MAC prefix, e.g. "b8:27:eb" (Raspberry Pi).
    pub mac_prefix: Option<Spanned<String>>,
    /// One-entry PXE menu text (Raspberry Pi ROMs need "Raspberry Pi Boot").
    pub pxe_menu: Option<String>,
    pub file: String,
    pub next_server: Option<Ipv4Addr>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetSection {
    /// `a.b.c.d/len`.
    pub network: Spanned<String>,
    /// First and last pool address.
    pub range: Option<Spanned<[Ipv4Addr; 2]>>,
    #[serde(default)]
    pub routers: Vec<Ipv4Addr>,
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    /// Seconds, or "infinite": the lease of a client that asks for none.
    pub lease_time: Option<Spanned<LeaseTimeValue>>,
    /// Seconds, or "infinite": the longest lease a client may ask for (option 51);
    /// default `lease_time`.
    pub max_lease_time: Option<Spanned<LeaseTimeValue>>,
    pub next_server: Option<Ipv4Addr>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum LeaseTimeValue {
    Seconds(u32),
    Word(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSection {
    pub mac: Spanned<String>,
    pub ip: Option<Spanned<Ipv4Addr>>,
    pub hostname: Option<String>,
    pub file: Option<String>,
    pub next_server: Option<Ipv4Addr>,
}

/// A configuration problem with its place in the file.
#[derive(Debug)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

/// Everything the server needs from the file, checked.
#[derive(Debug)]
pub struct Loaded {
    /// The engine's configuration.
    pub engine: EngineConfig,
    pub(super) server: ServerSection,
}

fn place(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

fn problem(text: &str, span: std::ops::Range<usize>, message: String) -> Problem {
    let (line, col) = place(text, span.start);
    Problem { line, col, message }
}

fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, l) = s.split_once('/')?;
    let len: u8 = l.parse().ok().filter(|&l| l <= 32)?;
    Some((a.parse().ok()?, len))
}

fn parse_mac_prefix(s: &str) -> Option<Vec<u8>> {
    let v: Vec<u8> = s
        .split([':', '-'])
        .map(|p| u8::from_str_radix(p, 16).ok().filter(|_| p.len() == 2))
        .collect::<Option<_>>()?;
    (1..=6).contains(&v.len()).then_some(v)
}

fn parse_mac(s: &str) -> Option<Vec<u8>> {
    parse_mac_prefix(s).filter(|v| v.len() == 6)
}

/// Parses and checks `text`; returns every problem found, not just the first.
pub fn load(text: &str) -> Result<Loaded, Vec<Problem>> {
    let config: Config = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        vec![problem(text, span, e.message().to_owned())]
    })?;
    check(text, config)
}

/// Checks a parsed configuration; `text` is the document it was parsed from (the places in
/// problems are taken from it, so a `[dhcp]` table inside a larger file reports lines of
/// that file).
pub fn check(text: &str, config: Config) -> Result<Loaded, Vec<Problem>> {
    let file = config.0;
    let mut problems = Vec::new();
    let mut subnets = Vec::new();
    for s in &file.subnet {
        let Some((network, prefix_len)) = parse_cidr(s.network.get_ref()) else {
            problems.push(problem(
                text,
                s.network.span(),
                format!("network {:?} is not a.b.c.d/len", s.network.get_ref()),
            ));
            continue;
        };
        let mut lease = |v: &Option<Spanned<LeaseTimeValue>>, key: &str| match v
            .as_ref()
            .map(|l| (l.get_ref(), l.span()))
        {
            None => None,
            Some((LeaseTimeValue::Seconds(n), _)) => Some(LeaseTime::Finite(*n)),
            Some((LeaseTimeValue::Word(w), _)) if w == "infinite" => Some(LeaseTime::Infinite),
            Some((LeaseTimeValue::Word(w), span)) => {
                problems.push(problem(
                    text,
                    span,
                    format!("{key} {w:?}: give seconds or \"infinite\""),
                ));
                None
            }
        };
        let lease_time = lease(&s.lease_time, "lease_time").unwrap_or(LeaseTime::Finite(3600));
        let max_lease_time = lease(&s.max_lease_time, "max_lease_time");
        let subnet = Subnet {
            network,
            prefix_len,
            pool: s.range.as_ref().map(|r| (r.get_ref()[0], r.get_ref()[1])),
            routers: s.routers.clone(),
            dns_servers: s.dns.clone(),
            domain_name: s.domain.clone(),
            lease_time,
            max_lease_time,
            next_server: s.next_server,
        };
        if let Some(r) = &s.range {
            let [lo, hi] = *r.get_ref();
            if !subnet.contains(lo) || !subnet.contains(hi) || u32::from(lo) > u32::from(hi) {
                problems.push(problem(
                    text,
                    r.span(),
                    format!(
                        "range {lo}..{hi} is not an ascending range inside {network}/{prefix_len}"
                    ),
                ));
            }
        }
        subnets.push(subnet);
    }
    if file.subnet.is_empty() {
        problems.push(Problem {
            line: 1,
            col: 1,
            message: "no [[subnet]] configured".into(),
        });
    }
    let mut hosts: Vec<Host> = Vec::new();
    for h in &file.host {
        let Some(mac) = parse_mac(h.mac.get_ref()) else {
            problems.push(problem(
                text,
                h.mac.span(),
                format!("mac {:?} is not six hex pairs", h.mac.get_ref()),
            ));
            continue;
        };
        if hosts.iter().any(|o| o.hw_addr == mac) {
            problems.push(problem(text, h.mac.span(), "duplicate host mac".into()));
        }
        if let Some(ip) = &h.ip {
            let a = *ip.get_ref();
            if !subnets.iter().any(|s| s.contains(a)) {
                problems.push(problem(
                    text,
                    ip.span(),
                    format!("host address {a} is in no configured subnet"),
                ));
            }
            if hosts.iter().any(|o| o.ip == Some(a)) {
                problems.push(problem(
                    text,
                    ip.span(),
                    format!("address {a} reserved twice"),
                ));
            }
        }
        hosts.push(Host {
            hw_addr: mac,
            ip: h.ip.as_ref().map(|i| *i.get_ref()),
            hostname: h.hostname.clone(),
            boot_file: h.file.clone(),
            next_server: h.next_server,
        });
    }
    let mut rules = Vec::new();
    for r in &file.boot.rule {
        let hw_prefix = match &r.mac_prefix {
            None => Vec::new(),
            Some(p) => parse_mac_prefix(p.get_ref()).unwrap_or_else(|| {
                problems.push(problem(
                    text,
                    p.span(),
                    format!("mac_prefix {:?} is not 1 to 6 hex pairs", p.get_ref()),
                ));
                Vec::new()
            }),
        };
        rules.push(BootRule {
            arch: r.arch.clone(),
            vendor_class: r.vendor_class.clone(),
            hw_prefix,
            pxe_menu: r.pxe_menu.clone(),
            file: r.file.clone(),
            next_server: r.next_server,
        });
    }
    let menu = file.boot.menu.as_ref().map(|m| {
        if m.item.get_ref().is_empty() {
            problems.push(problem(text, m.item.span(), "a menu needs items".into()));
        }
        let mut entries: Vec<MenuEntry> = Vec::new();
        for (i, it) in m.item.get_ref().iter().enumerate() {
            let auto = if it.file.is_some() {
                0x8001 + i as u16
            } else {
                0
            };
            let server_type = it.server_type.as_ref().map_or(auto, |t| *t.get_ref());
            let span = it.server_type.as_ref().map_or(m.item.span(), |t| t.span());
            let wrong = if server_type == 0 && it.file.is_some() {
                Some("type 0 is a local boot: no file".to_owned())
            } else if server_type != 0 && it.file.is_none() {
                Some(format!("menu item {:?} needs a file", it.text))
            } else if server_type != 0 && entries.iter().any(|e| e.server_type == server_type) {
                Some(format!("menu item type {server_type:#06x} used twice"))
            } else {
                None
            };
            if let Some(message) = wrong {
                problems.push(problem(text, span, message));
            }
            entries.push(MenuEntry {
                text: it.text.clone(),
                server_type,
                arch: it.arch.clone(),
                file: it.file.clone(),
                server: it.server,
            });
        }
        PxeMenu {
            prompt: m.prompt.clone(),
            timeout: m.timeout,
            entries,
        }
    });
    if !problems.is_empty() {
        return Err(problems);
    }
    let boot = BootPolicy {
        menu,
        rules,
        default_file: file.boot.default.clone(),
        ipxe_script: file.boot.ipxe_script.clone(),
        ipxe_no_pxedhcp: file.boot.ipxe_no_pxedhcp,
    };
    let s = &file.server;
    Ok(Loaded {
        engine: EngineConfig {
            subnets,
            hosts,
            boot,
            authoritative: s.authoritative,
            rapid_commit: s.rapid_commit,
            match_client_id: s.match_client_id,
            offer_hold: s.offer_hold,
            decline_probation: s.decline_probation,
            proxy: s.proxy,
        },
        server: file.server,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../dhcp/examples/netboot-dhcpd.toml");

    #[test]
    fn the_example_loads() {
        let l = load(EXAMPLE).unwrap_or_else(|p| panic!("{p:?}"));
        assert_eq!(l.engine.subnets.len(), 1);
        assert_eq!(l.engine.subnets[0].lease_time, LeaseTime::Infinite);
        assert_eq!(l.engine.boot.rules[1].arch, [7, 9]);
        assert_eq!(l.engine.boot.rules[0].hw_prefix, [0xb8, 0x27, 0xeb]);
    }

    #[test]
    fn a_menu_loads_with_types_and_its_problems_have_lines() {
        let menu = "[boot.menu]\ntimeout = 5\n[[boot.menu.item]]\ntext = \"Install\"\nfile = \"i.0\"\n\
                    [[boot.menu.item]]\ntext = \"Local disk\"\n\
                    [[subnet]]\nnetwork = \"10.0.0.0/8\"\n";
        let l = load(menu).unwrap_or_else(|p| panic!("{p:?}"));
        let m = l.engine.boot.menu.unwrap();
        assert_eq!(
            (m.timeout, m.prompt.as_str()),
            (5, "Press F8 for the boot menu")
        );
        let types: Vec<u16> = m.entries.iter().map(|e| e.server_type).collect();
        assert_eq!(types, [0x8001, 0]);
        let bad = "[[subnet]]\nnetwork = \"10.0.0.0/8\"\n[boot.menu]\n[[boot.menu.item]]\ntext = \"x\"\ntype = 0\nfile = \"a\"\n";
        let p = load(bad).unwrap_err();
        assert_eq!(
            (p[0].line, p[0].message.as_str()),
            (6, "type 0 is a local boot: no file"),
            "{p:?}"
        );
    }

    #[test]
    fn problems_carry_lines() {
        let bad = "[server]\nport = 67\nbogus = 1\n";
        let p = load(bad).unwrap_err();
        assert_eq!(p[0].line, 3, "{p:?}");
        let bad = "[[subnet]]\nnetwork = \"10.0.0.0/8\"\nrange = [\"10.0.0.9\", \"11.0.0.1\"]\n\n[[host]]\nmac = \"zz\"\n";
        let p = load(bad).unwrap_err();
        let lines: Vec<usize> = p.iter().map(|p| p.line).collect();
        assert_eq!(lines, [3, 6], "{p:?}");
    }
}

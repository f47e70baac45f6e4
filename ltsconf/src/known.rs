//! The variables a server farm cares about, with the rules LTSP applies to their values, so
//! that `check` can warn about a value LTSP would silently ignore or misread.

use crate::Dialect;

/// What a known variable's value must look like.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Free text.
    Any,
    /// LTSP5 boolean (`boolean_is_true`): `true`, `y`, `yes` (any case) are true, everything
    /// else is false, so `1` and `on` are false.
    Lts5Bool,
    /// Compared with `[ "$X" = "true" ]`: exactly lowercase `true` turns it on.
    ExactTrue,
    /// LTSP 19 boolean: `0` or `1`.
    ZeroOne,
    /// A space-separated list of service names.
    Services,
    /// An `/etc/fstab` line: at least device, mount point and type.
    Fstab,
    /// One host name or IPv4 address.
    Host,
    /// Space-separated host names or addresses.
    Hosts,
    /// An unsigned integer not above the bound.
    Uint(u32),
    /// One of the listed words, exactly.
    OneOf(&'static [&'static str]),
    /// Belongs to the other dialect: the message says what to use instead.
    OtherDialect(&'static str),
}

/// One entry of the table.
#[derive(Debug, Clone, Copy)]
pub struct Known {
    /// The name, or the prefix of a numbered family when `prefix` is true (`RCFILE_`).
    pub name: &'static str,
    /// True for numbered families (`RCFILE_*`): any name starting with `name`.
    pub prefix: bool,
    /// The dialects it exists in.
    pub dialects: &'static [Dialect],
    /// Its value rule.
    pub rule: Rule,
    /// What it does, one line.
    pub about: &'static str,
}

const L5: &[Dialect] = &[Dialect::Lts5];
const L19: &[Dialect] = &[Dialect::Ltsp19];
const BOTH: &[Dialect] = &[Dialect::Lts5, Dialect::Ltsp19];

const fn k(
    name: &'static str,
    dialects: &'static [Dialect],
    rule: Rule,
    about: &'static str,
) -> Known {
    Known {
        name,
        prefix: false,
        dialects,
        rule,
        about,
    }
}

const fn list(
    name: &'static str,
    dialects: &'static [Dialect],
    rule: Rule,
    about: &'static str,
) -> Known {
    Known {
        name,
        prefix: true,
        dialects,
        rule,
        about,
    }
}

/// The table. Families (`prefix`) are the numbered list variables, ordered by
/// [`crate::Resolution::list`].
pub static KNOWN: &[Known] = &[
    k(
        "SERVER",
        BOTH,
        Rule::Host,
        "the LTSP server (default for NBD swap, syslog, time)",
    ),
    k(
        "KEEP_SYSTEM_SERVICES",
        BOTH,
        Rule::Services,
        "services kept although the RM_* lists would remove them",
    ),
    k(
        "RM_SYSTEM_SERVICES",
        L5,
        Rule::Services,
        "services removed on every client",
    ),
    k(
        "RM_THIN_SYSTEM_SERVICES",
        L5,
        Rule::Services,
        "services removed on thin clients",
    ),
    k(
        "RM_LOW_RAM_SERVICES",
        L5,
        Rule::Services,
        "services removed below RM_RAM_THRESHOLD",
    ),
    k(
        "RM_RAM_THRESHOLD",
        L5,
        Rule::Uint(1 << 20),
        "MB of RAM below which RM_LOW_RAM_SERVICES go",
    ),
    k(
        "DISABLE_SYSTEM_SERVICES",
        L19,
        Rule::Services,
        "services disabled on clients",
    ),
    k(
        "MASK_SYSTEM_SERVICES",
        L19,
        Rule::Services,
        "services masked on clients",
    ),
    k(
        "KEEP_SESSION_SERVICES",
        L19,
        Rule::Services,
        "user session services kept",
    ),
    k(
        "DISABLE_SESSION_SERVICES",
        L19,
        Rule::Services,
        "user session services disabled",
    ),
    k(
        "MASK_SESSION_SERVICES",
        L19,
        Rule::Services,
        "user session services masked",
    ),
    k(
        "LTSP_NBD_TO_RAM",
        L5,
        Rule::ExactTrue,
        "copy the NBD root image to RAM before mounting it",
    ),
    k(
        "LTSP_NBD_TO_RAM",
        L19,
        Rule::OtherDialect("LTSP 19 reads IMAGE_TO_RAM=1 instead"),
        "",
    ),
    k(
        "IMAGE_TO_RAM",
        L19,
        Rule::ZeroOne,
        "copy the root image to RAM before mounting it",
    ),
    k(
        "IMAGE_TO_RAM",
        L5,
        Rule::OtherDialect("LTSP5 reads LTSP_NBD_TO_RAM=true instead"),
        "",
    ),
    list(
        "PREINIT_",
        L5,
        Rule::Any,
        "shell commands run just before /sbin/init, in version order",
    ),
    list(
        "INIT_COMMAND_",
        L5,
        Rule::Any,
        "shell commands run by init-ltsp",
    ),
    list(
        "RCFILE_",
        L5,
        Rule::Any,
        "lines appended to /etc/rc.local, in version order",
    ),
    list(
        "PREINIT_",
        L19,
        Rule::OtherDialect("LTSP 19 runs POST_INIT_* instead"),
        "",
    ),
    list(
        "INIT_COMMAND_",
        L19,
        Rule::OtherDialect("LTSP 19 runs POST_INIT_* instead"),
        "",
    ),
    list(
        "RCFILE_",
        L19,
        Rule::OtherDialect("LTSP 19 runs POST_INIT_* instead"),
        "",
    ),
    list("FSTAB_", BOTH, Rule::Fstab, "lines appended to /etc/fstab"),
    list("CRONTAB_", BOTH, Rule::Any, "lines of /etc/cron.d/ltsp"),
    list("HOSTS_", BOTH, Rule::Any, "lines appended to /etc/hosts"),
    list("MODULE_", L5, Rule::Any, "modprobe arguments"),
    list("X_OPTION_", L5, Rule::Any, "xorg.conf options"),
    list(
        "X_MONITOR_OPTION_",
        L5,
        Rule::Any,
        "xorg.conf monitor options",
    ),
    list("X_MODULE_", L5, Rule::Any, "xorg.conf modules"),
    list("XRANDR_COMMAND_", L5, Rule::Any, "xrandr invocations"),
    list(
        "POST_",
        L19,
        Rule::Any,
        "shell run after an applet (POST_INIT_x after init)",
    ),
    list("PRE_", L19, Rule::Any, "shell run before an applet"),
    k(
        "CONFIGURE_FSTAB",
        L5,
        Rule::Lts5Bool,
        "regenerate /etc/fstab (false skips FSTAB_*)",
    ),
    k("NFS_HOME", L5, Rule::Any, "legacy NFS home mount"),
    k("NBD_SWAP", L5, Rule::Lts5Bool, "swap over NBD"),
    k(
        "NBD_SWAP_HOST",
        L5,
        Rule::Host,
        "NBD swap server (default SERVER)",
    ),
    k(
        "NBD_SWAP_THRESHOLD",
        L5,
        Rule::Uint(1 << 20),
        "MB of RAM below which NBD swap is used",
    ),
    k(
        "USE_LOCAL_SWAP",
        L5,
        Rule::Lts5Bool,
        "use local swap partitions",
    ),
    k("ENCRYPT_SWAP", L5, Rule::Lts5Bool, "encrypt swap"),
    k("LTSP_FATCLIENT", L5, Rule::Lts5Bool, "run as a fat client"),
    k(
        "FAT_RAM_THRESHOLD",
        L5,
        Rule::Uint(1 << 20),
        "MB of RAM from which a client is fat",
    ),
    k("HOSTNAME", BOTH, Rule::Any, "the client's host name"),
    k(
        "HOSTNAME_BASE",
        L5,
        Rule::Any,
        "prefix of generated host names",
    ),
    k(
        "HOSTNAME_EXTRA",
        L5,
        Rule::OneOf(&["ip", "mac"]),
        "suffix of generated host names",
    ),
    k("DNS_SERVER", BOTH, Rule::Hosts, "resolv.conf name servers"),
    k(
        "SEARCH_DOMAIN",
        BOTH,
        Rule::Any,
        "resolv.conf search domain",
    ),
    k("SYSLOG_HOST", L5, Rule::Host, "remote syslog host"),
    k("TIMESERVER", L5, Rule::Host, "NTP server"),
    k("TIMEZONE", BOTH, Rule::Any, "client time zone"),
    k("SHUTDOWN_TIME", L5, Rule::Any, "daily shutdown time"),
    k("SCREEN_DEFAULT", L5, Rule::Any, "the screen shown first"),
    k("LDM_DIRECTX", L5, Rule::Lts5Bool, "unencrypted X traffic"),
    k("LDM_SERVER", L5, Rule::Hosts, "LDM login servers"),
    k("LDM_AUTOLOGIN", L5, Rule::Lts5Bool, "log in automatically"),
    k("LDM_GUESTLOGIN", L5, Rule::Lts5Bool, "offer a guest login"),
    k("LDM_USERNAME", L5, Rule::Any, "auto/guest login user"),
    k("LDM_PASSWORD", L5, Rule::Any, "auto/guest login password"),
    k("LDM_SESSION", L5, Rule::Any, "session command"),
    k("LDM_XSESSION", L5, Rule::Any, "X session command"),
    k("LDM_LANGUAGE", L5, Rule::Any, "login language"),
    k("LDM_THEME", L5, Rule::Any, "LDM theme"),
    k(
        "LDM_LIMIT_ONE_SESSION",
        L5,
        Rule::Lts5Bool,
        "one session per user",
    ),
    k(
        "LDM_LIMIT_ONE_SESSION_PROMPT",
        L5,
        Rule::Lts5Bool,
        "ask before killing the old session",
    ),
    k("LDM_SSHOPTIONS", L5, Rule::Any, "extra ssh options"),
    k(
        "LDM_LOGIN_TIMEOUT",
        L5,
        Rule::Uint(1 << 20),
        "seconds before auto login",
    ),
    k(
        "LDM_NUMLOCK",
        L5,
        Rule::Lts5Bool,
        "num lock at the login screen",
    ),
    k("SOUND", L5, Rule::Lts5Bool, "sound support"),
    k("VOLUME", L5, Rule::Uint(100), "mixer volume in percent"),
    k("LOCALDEV", L5, Rule::Lts5Bool, "local device access"),
    k(
        "LOCALDEV_DENY_INTERNAL_DISKS",
        L5,
        Rule::Lts5Bool,
        "hide internal disks",
    ),
    k("LOCAL_APPS", L5, Rule::Lts5Bool, "local applications"),
    k(
        "LOCAL_APPS_MENU",
        L5,
        Rule::Lts5Bool,
        "local applications in the menu",
    ),
    k(
        "X_COLOR_DEPTH",
        L5,
        Rule::OneOf(&["8", "15", "16", "24", "32"]),
        "X colour depth",
    ),
    k("X_NUMLOCK", L5, Rule::Lts5Bool, "num lock in X"),
    k("X_HORZSYNC", L5, Rule::Any, "monitor horizontal sync range"),
    k(
        "X_VERTREFRESH",
        BOTH,
        Rule::Any,
        "monitor vertical refresh range",
    ),
    k(
        "X_HORIZSYNC",
        L19,
        Rule::Any,
        "monitor horizontal sync range",
    ),
    k("XSERVER", L5, Rule::Any, "X driver"),
    k("XKBLAYOUT", L5, Rule::Any, "keyboard layout"),
    k("XKBOPTIONS", L5, Rule::Any, "keyboard options"),
    k(
        "DEFAULT_IMAGE",
        L19,
        Rule::Any,
        "image booted by default in the iPXE menu",
    ),
    k(
        "KERNEL_PARAMETERS",
        L19,
        Rule::Any,
        "extra kernel command line",
    ),
    k(
        "MENU_TIMEOUT",
        L19,
        Rule::Uint(1 << 20),
        "iPXE menu timeout in ms",
    ),
    k(
        "NAT",
        L19,
        Rule::ZeroOne,
        "NAT on the server ([server] only)",
    ),
    k("DEBUG_SHELL", L19, Rule::ZeroOne, "shell on boot errors"),
    k("AUTOLOGIN", L19, Rule::Any, "user logged in automatically"),
    k("RELOGIN", L19, Rule::ZeroOne, "log in again after logout"),
    k("OMIT_FUNCTIONS", L19, Rule::Any, "LTSP functions to skip"),
];

/// The table's entry for `name` in `dialect` (exact names before families; ASCII
/// case-insensitively for lts5, whose keys getltscfg upper-cases).
pub fn lookup(dialect: Dialect, name: &str) -> Option<&'static Known> {
    exact(dialect, name).or_else(|| {
        let first = name.bytes().next()?.to_ascii_uppercase();
        families(dialect)
            .iter()
            .copied()
            .filter(|k| k.name.as_bytes()[0] == first)
            .find(|k| starts_with(dialect, name, k.name))
    })
}

/// The numbered families of a dialect (including other-dialect ones, which `check` reports).
fn families(dialect: Dialect) -> &'static [&'static Known] {
    use std::sync::OnceLock;
    static FAMILIES: OnceLock<[Vec<&'static Known>; 2]> = OnceLock::new();
    let all = FAMILIES.get_or_init(|| {
        [Dialect::Lts5, Dialect::Ltsp19].map(|d| {
            KNOWN
                .iter()
                .filter(|k| k.prefix && k.dialects.contains(&d))
                .collect()
        })
    });
    &all[usize::from(dialect == Dialect::Ltsp19)]
}

/// Exact names through an open-addressing table built once (`check` looks up every key of
/// every file, so this is a hash, a probe and one compare): per dialect, slots of
/// (high half of the hash, index into [`KNOWN`] + 1), 0 for empty. The hash folds ASCII case,
/// so one hash serves lts5 (case-insensitive names) and ltsp19 (compared exactly).
fn exact(dialect: Dialect, name: &str) -> Option<&'static Known> {
    use crate::names::{Fold, Key};
    use std::sync::OnceLock;
    const SLOTS: usize = 512;
    static TABLES: OnceLock<[Vec<(u32, u16)>; 2]> = OnceLock::new();
    let split = |h: u64| ((h >> 32) as u32, h as usize % SLOTS);
    let tables = TABLES.get_or_init(|| {
        [Dialect::Lts5, Dialect::Ltsp19].map(|d| {
            let mut t = vec![(0u32, 0u16); SLOTS];
            for (i, k) in KNOWN.iter().enumerate() {
                if k.prefix || !k.dialects.contains(&d) || exact_in(&t, d, k.name).is_some() {
                    continue;
                }
                let (tag, mut at) = split(Key(k.name, Fold::Ascii).fold_hash());
                while t[at].1 != 0 {
                    at = (at + 1) % SLOTS;
                }
                t[at] = (tag, u16::try_from(i + 1).unwrap_or(0));
            }
            t
        })
    });
    exact_in(
        &tables[usize::from(dialect == Dialect::Ltsp19)],
        dialect,
        name,
    )
}

/// Looks `name` up in one table of [`exact`].
fn exact_in(table: &[(u32, u16)], dialect: Dialect, name: &str) -> Option<&'static Known> {
    use crate::names::{Fold, Key};
    let h = Key(name, Fold::Ascii).fold_hash();
    let (tag, mut at) = ((h >> 32) as u32, h as usize % table.len());
    // The table is never full (fewer names than slots), so an empty slot ends every probe.
    for _ in 0..table.len() {
        let (t, k) = table[at];
        let known = KNOWN.get(usize::from(k).checked_sub(1)?)?;
        if t == tag && crate::key_eq(dialect, known.name, name) {
            return Some(known);
        }
        at = (at + 1) % table.len();
    }
    None
}

fn starts_with(dialect: Dialect, name: &str, prefix: &str) -> bool {
    name.len() > prefix.len()
        && match dialect {
            Dialect::Lts5 => {
                name.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
            }
            Dialect::Ltsp19 => name.starts_with(prefix),
        }
}

/// The numbered family `name` belongs to (`RCFILE_`, `FSTAB_`, ...), if any.
pub fn family(dialect: Dialect, name: &str) -> Option<&'static str> {
    families(dialect)
        .iter()
        .filter(|k| !matches!(k.rule, Rule::OtherDialect(_)))
        .find(|k| starts_with(dialect, name, k.name))
        .map(|k| k.name)
}

/// Why `value` is wrong for `name` in `dialect`, if it is.
pub fn check_value(dialect: Dialect, name: &str, value: &str) -> Option<String> {
    check_known(dialect, lookup(dialect, name), name, value)
}

/// [`check_value`] with `lookup(dialect, name)` done by the caller (`check` remembers it
/// for keys that repeat).
pub(crate) fn check_known(
    dialect: Dialect,
    known: Option<&'static Known>,
    name: &str,
    value: &str,
) -> Option<String> {
    let Some(known) = known else {
        return typo(dialect, name);
    };
    let shown = Shown(name, dialect);
    match known.rule {
        Rule::Any => None,
        Rule::OtherDialect(instead) => Some(format!("{shown} has no effect here: {instead}")),
        Rule::Lts5Bool => {
            let ok = ["true", "false", "y", "n", "yes", "no"]
                .iter()
                .any(|w| value.eq_ignore_ascii_case(w));
            (!ok).then(|| {
                format!("LTSP5 reads `{value}` as false for {shown}: it takes only true, y or yes (any case) as true; write True or False")
            })
        }
        Rule::ExactTrue => (value != "true"
            && value != "false"
            && !value.eq_ignore_ascii_case("none"))
        .then(|| {
            format!("{shown} = {value} is ignored: LTSP compares it with exactly lowercase `true`")
        }),
        Rule::ZeroOne => (value != "0" && value != "1" && !value.is_empty()).then(|| {
            format!("LTSP 19 booleans are 0 or 1; {shown}={value} is not 1, so it is off")
        }),
        Rule::Services => crate::bytes::find(value.as_bytes(), b',')
            .is_some()
            .then(|| {
                format!("{shown} is a space-separated list: `,` makes one bogus service name")
            }),
        Rule::Fstab => (!has_words(value, 3)).then(|| {
            format!("{shown} should be an fstab line (device, mount point, type, options...)")
        }),
        Rule::Host => (!is_host(value))
            .then(|| format!("{shown} should be one host name or IPv4 address, not `{value}`")),
        Rule::Hosts => (!value.split_whitespace().all(is_host))
            .then(|| format!("{shown} should be host names or IPv4 addresses separated by spaces")),
        Rule::Uint(max) => match value.parse::<u64>() {
            Ok(n) if n <= u64::from(max) => None,
            _ => Some(format!(
                "{shown} should be a whole number up to {max}, not `{value}`"
            )),
        },
        Rule::OneOf(words) => (!words.contains(&value)).then(|| {
            format!(
                "{shown} should be one of {}, not `{value}`",
                words.join(", ")
            )
        }),
    }
}

/// `value.split_whitespace().count() >= min`, eight bytes at a time for ASCII text (this
/// runs on every `FSTAB_*` line).
fn has_words(value: &str, min: usize) -> bool {
    crate::bytes::ascii_words_at_least(value.as_bytes(), min)
        .unwrap_or_else(|| value.split_whitespace().count() >= min)
}

/// A name as LTSP exports it (lts5: upper-cased), formatted only when a message needs it.
struct Shown<'a>(&'a str, Dialect);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            Dialect::Lts5 => self
                .0
                .chars()
                .try_for_each(|c| std::fmt::Write::write_char(f, c.to_ascii_uppercase())),
            Dialect::Ltsp19 => f.write_str(self.0),
        }
    }
}

fn is_host(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 253
        && v.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_')
}

/// An unknown name one edit away from a known one (`LDM_LENGUAGE`): probably a typo that LTSP
/// would silently ignore.
fn typo(dialect: Dialect, name: &str) -> Option<String> {
    if name.len() < 6 {
        return None;
    }
    let upper = Shown(name, dialect).to_string();
    KNOWN
        .iter()
        .filter(|k| !k.prefix && k.dialects.contains(&dialect))
        .filter(|k| !matches!(k.rule, Rule::OtherDialect(_)))
        .find(|k| one_edit(upper.as_bytes(), k.name.as_bytes()))
        .map(|k| {
            format!(
                "unknown variable {upper}, which LTSP ignores: did you mean {}?",
                k.name
            )
        })
}

/// Levenshtein distance exactly 1 (one substitution, insertion or deletion).
fn one_edit(a: &[u8], b: &[u8]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if long.len() - short.len() > 1 || a == b {
        return false;
    }
    let p = short.iter().zip(long).take_while(|(x, y)| x == y).count();
    if short.len() == long.len() {
        short[p + 1..] == long[p + 1..]
    } else {
        short[p..] == long[p + 1..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_counts_like_split_whitespace() {
        let pieces = [
            " ", "\t", "\x0b", "\x0c", "\r", "\n", "a", "bc", "\u{a0}", "é", "\0", "~",
        ];
        let mut v = String::new();
        for i in 0..400usize {
            v.push_str(pieces[(i * 7 + i / 13) % pieces.len()]);
            for min in 0..30 {
                assert_eq!(
                    has_words(&v, min),
                    v.split_whitespace().count() >= min,
                    "{v:?}"
                );
                let t = &v[v.len().min(3)..];
                assert_eq!(has_words(t, min), t.split_whitespace().count() >= min);
            }
        }
    }

    #[test]
    fn value_rules() {
        let l5 = Dialect::Lts5;
        assert!(check_value(l5, "LTSP_NBD_TO_RAM", "true").is_none());
        assert!(check_value(l5, "ltsp_nbd_to_ram", "True").is_some());
        assert!(check_value(l5, "LDM_DIRECTX", "yes").is_none());
        assert!(check_value(l5, "LDM_DIRECTX", "1").is_some());
        assert!(check_value(l5, "VOLUME", "50").is_none());
        assert!(check_value(l5, "VOLUME", "150").is_some());
        assert!(check_value(l5, "FSTAB_01", "tmpfs /tmp tmpfs defaults 0 0").is_none());
        assert!(check_value(l5, "FSTAB_01", "/tmp").is_some());
        assert!(check_value(l5, "KEEP_SYSTEM_SERVICES", "ssh,cron").is_some());
        assert!(check_value(l5, "SERVER", "198.18.0.1").is_none());
        assert!(
            check_value(l5, "LDM_LENGUAGE", "eu")
                .unwrap()
                .contains("LDM_LANGUAGE")
        );
        assert!(check_value(l5, "MY_OWN_THING", "x").is_none());
        let l19 = Dialect::Ltsp19;
        assert!(check_value(l19, "IMAGE_TO_RAM", "1").is_none());
        assert!(check_value(l19, "IMAGE_TO_RAM", "true").is_some());
        assert!(
            check_value(l19, "RCFILE_1", "x")
                .unwrap()
                .contains("POST_INIT")
        );
    }

    #[test]
    fn families() {
        assert_eq!(family(Dialect::Lts5, "rcfile_10"), Some("RCFILE_"));
        assert_eq!(family(Dialect::Lts5, "HOSTNAME"), None);
        assert_eq!(family(Dialect::Ltsp19, "POST_INIT_x"), Some("POST_"));
        assert_eq!(family(Dialect::Ltsp19, "RCFILE_1"), None);
    }
}

//! lts.conf (LTSP5) and ltsp.conf (LTSP 19+): lexer, parser, resolver and safe shell renderer.
//!
//! ```
//! use netboot_ltsconf::{parse, resolve, Client, Dialect};
//!
//! let text = "[Default]\n  SERVER = 198.18.0.1\n  RCFILE_10 = \"touch /ready\"\n  RCFILE_2 = \"echo hi\"\n\
//!             [node1]\n  LIKE = storage\n[storage]\n  FSTAB_1 = \"/dev/sdb1 /data ext4 defaults 0 2\"\n\
//!             [52:54:00:*]\n  HOSTNAME = node1\n";
//! let doc = parse(text, Dialect::Lts5);
//! assert!(!doc.has_errors());
//!
//! let client = Client { mac: Some("52:54:00:12:34:56"), ..Client::default() };
//! let r = resolve(&doc, &client);
//! assert_eq!(r.get("hostname").unwrap().value, "node1");
//! // Numbered lists come in LTSP's order: GNU version sort, so 2 before 10.
//! let rc: Vec<_> = r.list("RCFILE_").iter().map(|v| v.value.to_string()).collect();
//! assert_eq!(rc, ["echo hi", "touch /ready"]);
//! // Where did SERVER come from?
//! let how = r.explain("SERVER")[0];
//! assert_eq!(doc.sections[r.link(how).section].name.text, "Default");
//! assert_eq!(r.entry(how).key.span.line, 2);
//! // Shell that `eval` turns back into exactly these values.
//! let (sh, skipped) = netboot_ltsconf::render::shell(&r);
//! assert!(skipped.is_empty() && sh.starts_with("SERVER=198.18.0.1\n"));
//! ```
//!
//! # What it implements
//!
//! - **lts5**: the grammar LTSP5's `getltscfg` (flex + bison) accepts, token for token: `#`
//!   comments anywhere outside quotes, `"..."` running to the last `"` of the line with no
//!   escapes, case-insensitive keys and sections, `LIKE`, `NONE`, `*`/`?` glob sections,
//!   `include`; and its resolution (one exact section by hostname, IP, MAC; its `LIKE` chain;
//!   the first glob per identity; `[Default]`).
//! - **ltsp19**: the line classes of LTSP 19's `ini2sh` (`[header]`, `INCLUDE=`, `NAME=value`,
//!   shell) and `eval_ini`'s order (`unnamed`, `[clients]`, `[common]`, then the first
//!   matching MAC, IP and hostname patterns, `INCLUDE=` inline, each section once). Values are
//!   shell words: scanned, never evaluated.
//!
//! # Layers
//!
//! [`parse`] → [`Document`] (sections, entries, [`Diagnostic`]s) → [`resolve`] (or a
//! [`Resolver`], which indexes a document once for many clients) → [`Resolution`] (the
//! applied sections, every assignment, the effective variables) → [`render`] (safe shell,
//! getltscfg's format, file lines). [`known`] holds the farm variables and their value rules;
//! [`version`] GNU `sort -V`.
//!
//! Hand-written rather than nom: the two grammars are a flex token set and an awk line
//! classifier, and a byte loop over `&str` keeps every token a slice with its span.
//!
//! # Guarantees
//!
//! - Zero-copy: names, keys and values are `&str` slices of the input, each with its
//!   [`Span`]; no regex; the lexer allocates nothing per token.
//! - Never panics and never loops on any input (fuzzed); a `LIKE` cycle is a diagnostic.
//! - Where LTSP truncates silently, hangs or crashes, a diagnostic says so at the line and
//!   column, with what LTSP would do. [`Document::as_getltscfg_would`] reproduces getltscfg's
//!   truncation when that behaviour is wanted.
//! - [`render::shell`] output, run through `eval`, reproduces every value byte for byte.
//!
//! No files, sockets or clocks: `include` paths are reported in [`Document::includes`], not
//! opened (the `ltsconf` tool appends them, as getltscfg does).

mod bytes;
mod check;
mod diag;
mod glob;
pub mod known;
mod lts5;
mod ltsp19;
mod model;
mod names;
pub mod render;
mod resolve;
mod shell;
mod span;
pub mod version;

pub use diag::{Diagnostic, Kind, Severity};
pub use glob::{case_match, fnmatch};
pub use model::{Dialect, Document, Entry, EntryKind, Quoting, Section, Text, Value};
pub use resolve::{
    Client, Id, Link, Reason, Resolution, Resolver, Setting, Var, normalize_mac, resolve,
};
pub use shell::quote;
pub use span::Span;

/// Parses `text` in `dialect` (use [`Dialect::detect`] when unknown). Never fails: problems
/// are in [`Document::diagnostics`], and everything that could be read is in the document.
pub fn parse(text: &str, dialect: Dialect) -> Document<'_> {
    let mut doc = match dialect {
        Dialect::Lts5 => lts5::parse(text),
        Dialect::Ltsp19 => ltsp19::parse(text),
    };
    check::run(&mut doc);
    doc
}

/// Keys compare ASCII case-insensitively in lts5 (getltscfg uses `strcasecmp`) and exactly in
/// ltsp19 (they are shell variable names).
#[inline]
pub(crate) fn key_eq(dialect: Dialect, a: &str, b: &str) -> bool {
    a.len() == b.len()
        && match dialect {
            Dialect::Lts5 => bytes::eq_ignore_ascii_case(a.as_bytes(), b.as_bytes()),
            Dialect::Ltsp19 => a == b,
        }
}

pub(crate) fn key_starts(dialect: Dialect, name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len()
        && match dialect {
            Dialect::Lts5 => {
                name.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
            }
            Dialect::Ltsp19 => name.starts_with(prefix),
        }
}

/// A POSIX shell variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_shell_name(s: &str) -> bool {
    /// Bytes allowed after the first one, as a table: this runs on every key of every file.
    static NAME: [bool; 256] = {
        let mut t = [false; 256];
        let mut c = 0;
        while c < 256 {
            let b = c as u8;
            t[c] = b.is_ascii_alphanumeric() || b == b'_';
            c += 1;
        }
        t
    };
    let b = s.as_bytes();
    !b.is_empty() && !b[0].is_ascii_digit() && b.iter().fold(true, |ok, &c| ok & NAME[c as usize])
}

#[doc(hidden)]
pub mod fuzzing;

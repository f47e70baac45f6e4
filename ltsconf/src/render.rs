//! Output: shell that `eval` turns back into exactly the resolved values, getltscfg's own
//! format for drop-in use, and the two file formats (for generating configs and for the
//! round-trip tests).

use crate::model::Dialect;
use crate::resolve::Resolution;
use crate::shell::quote;
use std::fmt::Write as _;

/// Why a variable was left out of [`shell`] output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Skipped {
    /// Its name is not a shell variable name (`MY KEY`): no assignment can set it.
    #[error("`{0}` is not a shell variable name")]
    BadName(String),
    /// Its value holds a NUL byte, which no shell variable can hold.
    #[error("the value of `{0}` contains a NUL byte")]
    Nul(String),
}

/// Renders the resolution as POSIX shell: one `NAME='value'` line per variable (bare when the
/// value is a plain word), then one `export` line. `eval` (or `.`) of the text sets every
/// variable to exactly its value: nothing is expanded or executed, whatever the value holds.
/// Variables that cannot be expressed are left out and listed in the second result.
pub fn shell(r: &Resolution<'_, '_>) -> (String, Vec<Skipped>) {
    let mut out = String::new();
    let mut names: Vec<&str> = Vec::new();
    let mut skipped = Vec::new();
    for v in &r.vars {
        if !crate::is_shell_name(&v.name) {
            skipped.push(Skipped::BadName(v.name.to_string()));
            continue;
        }
        if v.value.contains('\0') {
            skipped.push(Skipped::Nul(v.name.to_string()));
            continue;
        }
        let _ = writeln!(out, "{}={}", v.name, quote(&v.value));
        names.push(&v.name);
    }
    if !names.is_empty() {
        let _ = writeln!(out, "export {}", names.join(" "));
    }
    (out, skipped)
}

/// Renders the resolution exactly as `getltscfg -a` prints it: `NAME="value"` lines, then
/// `export NAME` lines. Like getltscfg it does **no** escaping, so a value holding `"`, `$`,
/// a backtick or `\` breaks or runs code under `eval`; use [`unsafe_values`] to warn, or
/// [`shell`] instead.
pub fn getltscfg(r: &Resolution<'_, '_>) -> String {
    let mut out = String::new();
    for v in &r.vars {
        let _ = writeln!(out, "{}=\"{}\"", v.name, v.value);
    }
    for v in &r.vars {
        let _ = writeln!(out, "export {}", v.name);
    }
    out
}

/// The names whose values [`getltscfg`] output would not reproduce under `eval`.
pub fn unsafe_values<'r>(r: &'r Resolution<'_, '_>) -> impl Iterator<Item = &'r str> {
    r.vars
        .iter()
        .filter(|v| v.value.contains(['"', '$', '`', '\\', '\n', '\0']))
        .map(|v| &*v.name)
}

/// Why a value cannot be written in a dialect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unrepresentable {
    /// lts.conf values end at the end of the line.
    #[error("lts.conf values cannot contain a newline")]
    Newline,
    /// lts.conf reads `NONE` as "unset".
    #[error("lts.conf reads NONE as unset")]
    None,
    /// A shell variable cannot hold NUL.
    #[error("values cannot contain NUL")]
    Nul,
}

/// Writes one `KEY = value` line of a file in `dialect` that parses back to exactly `value`.
///
/// lts5: always `KEY = "value"`; getltscfg's quotes run to the *last* `"` of the line and
/// have no escapes, so any `"` inside is fine, but a newline or the word `NONE` cannot be
/// written. ltsp19: `KEY=` followed by [`quote`]d shell, which ini2sh leaves alone.
pub fn entry_line(dialect: Dialect, key: &str, value: &str) -> Result<String, Unrepresentable> {
    if value.contains('\0') {
        return Err(Unrepresentable::Nul);
    }
    match dialect {
        Dialect::Lts5 => {
            if value.contains('\n') {
                return Err(Unrepresentable::Newline);
            }
            if value.eq_ignore_ascii_case("none") {
                return Err(Unrepresentable::None);
            }
            Ok(format!("{key} = \"{value}\"\n"))
        }
        Dialect::Ltsp19 => Ok(format!("{key}={}\n", quote(value))),
    }
}

/// A value for people to read: as written when it is a plain word, else in double quotes
/// with `"` and `\` escaped and control characters shown as `\n`, `\t`, `\r` or `\xNN`.
pub fn quote_for_display(value: &str) -> String {
    if !value.is_empty()
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_@%+:,./-".contains(&c))
    {
        return value.to_string();
    }
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

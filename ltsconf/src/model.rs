//! The parsed form of a file: a [`Document`] of [`Section`]s holding [`Entry`]s. Every name,
//! key and value is a slice of the input with its [`Span`].

use crate::{Diagnostic, Severity, Span};
use std::borrow::Cow;
use std::ops::Range;

/// Which of the two LTSP file formats a text is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// LTSP5's `lts.conf`, read by `getltscfg` (flex/bison): `[Default]`, MAC/IP/hostname and
    /// glob sections, `KEY = value`, `LIKE`, `NONE`, case-insensitive keys.
    Lts5,
    /// LTSP 19+'s `ltsp.conf`, turned into shell functions by `ini2sh`: `[clients]`,
    /// `[common]`, `[server]`, `case` patterns with `*` and `|`, `INCLUDE=`, shell values.
    Ltsp19,
}

impl Dialect {
    /// Guesses the dialect from the text: LTSP 19's special sections (`[clients]`,
    /// `[common]`, `[server]`), an `INCLUDE=` line or its template's `# /bin/sh -n` first
    /// line mean ltsp19; everything else is lts5 (the older and more common format).
    pub fn detect(text: &str) -> Dialect {
        if text.starts_with("# /bin/sh -n") {
            return Dialect::Ltsp19;
        }
        for line in text.lines() {
            let t = line.trim_start_matches(' ');
            let lower_starts = |p: &str| {
                t.len() >= p.len() && t.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
            };
            if lower_starts("[clients]") || lower_starts("[common]") || lower_starts("[server]") {
                return Dialect::Ltsp19;
            }
            if line.len() >= 7 && line.as_bytes()[..7].eq_ignore_ascii_case(b"include") {
                let rest = line[7..].trim_start_matches(' ');
                if rest.starts_with('=') {
                    return Dialect::Ltsp19;
                }
            }
        }
        Dialect::Lts5
    }

    /// The name used on the command line: `lts5` or `ltsp19`.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Lts5 => "lts5",
            Dialect::Ltsp19 => "ltsp19",
        }
    }
}

/// A slice of the input and where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text<'a> {
    /// The bytes as written (lts5: trimmed, quotes removed).
    pub text: &'a str,
    /// Their place in the input.
    pub span: Span,
}

/// What a line inside a section does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// `KEY = value`: sets a variable.
    Assign,
    /// lts5 `LIKE = section`: pulls in another section's variables at lower priority.
    Like,
    /// ltsp19 `INCLUDE=section`: runs another section right here (later lines override it).
    Include,
}

/// How a value was written, which decides how to read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quoting {
    /// lts5 unquoted: trimmed, no escapes.
    Bare,
    /// lts5 `"..."`: everything between the first and the last `"` of the line, no escapes.
    Quoted,
    /// ltsp19: one shell word, as written (quotes and escapes included).
    Shell,
}

/// A value as written, with the rules to read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Value<'a> {
    /// The value's bytes (lts5: without the surrounding quotes; ltsp19: the shell word).
    pub raw: &'a str,
    /// Where `raw` is.
    pub span: Span,
    /// How it was written.
    pub quoting: Quoting,
}

impl<'a> Value<'a> {
    /// The value the variable gets. lts5: `raw` itself (getltscfg has no escapes). ltsp19: the
    /// string a shell would assign when that is known without running anything (quotes and
    /// backslashes removed); when the word expands something (`$x`, `` `cmd` ``, `~`) the
    /// shell text as written, since ltsconf never evaluates it.
    pub fn text(&self) -> Cow<'a, str> {
        match self.quoting {
            Quoting::Bare | Quoting::Quoted => Cow::Borrowed(self.raw),
            Quoting::Shell => match crate::shell::decode_word(self.raw) {
                Some(s) => s,
                None => Cow::Borrowed(self.raw),
            },
        }
    }

    /// True when [`Value::text`] is the real value, false when it is unevaluated shell text.
    pub fn is_literal(&self) -> bool {
        self.quoting != Quoting::Shell || crate::shell::decode_word(self.raw).is_some()
    }

    /// lts5: the value `NONE` (any case) unsets the variable.
    pub fn is_none(&self) -> bool {
        self.quoting != Quoting::Shell && self.raw.eq_ignore_ascii_case("none")
    }
}

/// One `KEY = value`, `LIKE = name` or `INCLUDE=name` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// What it does.
    pub kind: EntryKind,
    /// The key as written (lts5 keys are case-insensitive: compare with
    /// `eq_ignore_ascii_case`; getltscfg upper-cases them on output).
    pub key: Text<'a>,
    /// The value.
    pub value: Value<'a>,
}

impl Entry<'_> {
    /// From the key to the end of the value.
    pub fn span(&self) -> Span {
        Span {
            end: self.value.span.end.max(self.key.span.end),
            ..self.key.span
        }
    }
}

/// A `[name]` and the entries under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section<'a> {
    /// The name as written between the brackets (lts5: trimmed, quotes removed).
    pub name: Text<'a>,
    /// The name as the dialect matches it. lts5: the name itself (compared
    /// case-insensitively, `*` `?` `\` globs). ltsp19: ini2sh's `case` pattern, i.e. the
    /// header line lower-cased with every byte outside `[-*./:?@_|0-9a-z]` deleted.
    pub pattern: Cow<'a, str>,
    /// The whole header, `[` to `]`.
    pub header: Span,
    /// Its entries, in file order: a run of [`Document::entries`] (read them with
    /// [`Document::entries_of`]). One list for the whole file instead of one per section
    /// saves an allocation per section, which dominated parsing big files.
    pub entries: Range<usize>,
    /// ltsp19: the lines before the first header (ini2sh's `section_unnamed`); the
    /// name is then empty.
    pub unnamed: bool,
}

/// A parsed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document<'a> {
    /// The dialect it was parsed as.
    pub dialect: Dialect,
    /// The whole input.
    pub source: &'a str,
    /// The sections in file order (ltsp19: an unnamed one first when lines precede the first
    /// header).
    pub sections: Vec<Section<'a>>,
    /// Every section's entries, in file order ([`Section::entries`] says which are whose).
    pub entries: Vec<Entry<'a>>,
    /// lts5 `include` paths, in file order. The crate opens no files: a caller appends the
    /// included texts after this one, as getltscfg does (the `ltsconf` tool does so).
    pub includes: Vec<Text<'a>>,
    /// Every problem found, in file order.
    pub diagnostics: Vec<Diagnostic>,
    /// Byte offset where getltscfg would stop with a syntax error (lts5 only).
    pub(crate) stop: Option<usize>,
}

impl<'a> Document<'a> {
    /// True when any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// What getltscfg would actually use: for lts5, only the sections and entries that end
    /// before its first syntax error (it keeps what it reduced and silently drops the rest;
    /// a key before any section means nothing is kept). Unchanged for ltsp19, and for a file
    /// without syntax errors. `--lenient` resolves this.
    pub fn as_getltscfg_would(&self) -> Document<'a> {
        let Some(stop) = self.stop else {
            return self.clone();
        };
        let mut sections = Vec::new();
        let mut entries = Vec::new();
        for s in self.sections.iter().filter(|s| s.header.end <= stop) {
            let first = entries.len();
            entries.extend(
                self.entries_of(s)
                    .iter()
                    .filter(|e| e.span().end <= stop)
                    .copied(),
            );
            if entries.len() > first {
                sections.push(Section {
                    entries: first..entries.len(),
                    ..s.clone()
                });
            }
        }
        Document {
            sections,
            entries,
            diagnostics: self.diagnostics.clone(),
            includes: self.includes.clone(),
            ..*self
        }
    }

    /// The entries of `section` (a section of this document), in file order.
    pub fn entries_of(&self, section: &Section<'a>) -> &[Entry<'a>] {
        self.entries
            .get(section.entries.clone())
            .unwrap_or_default()
    }

    /// The entries of kind `Assign` in `section` whose key equals `key` (ASCII
    /// case-insensitively for lts5, exactly for ltsp19).
    pub fn assignments<'s>(
        &'s self,
        section: &Section<'a>,
        key: &'s str,
    ) -> impl Iterator<Item = &'s Entry<'a>> + 's {
        let dialect = self.dialect;
        self.entries_of(section)
            .iter()
            .filter(move |e| e.kind == EntryKind::Assign && crate::key_eq(dialect, e.key.text, key))
    }

    /// The first section whose name equals `name` under the dialect's rules (lts5:
    /// case-insensitive and the first of duplicates; ltsp19: the pattern, exactly).
    pub fn section(&self, name: &str) -> Option<&Section<'a>> {
        self.sections.iter().find(|s| match self.dialect {
            Dialect::Lts5 => s.name.text.eq_ignore_ascii_case(name),
            Dialect::Ltsp19 => !s.unnamed && s.pattern == name,
        })
    }
}

//! LTSP 19+ `ltsp.conf`: the line classes of LTSP's `ini2sh` (research notes §7). Each line is
//! a section header, an `INCLUDE=` line, a `NAME=value` parameter, or shell code passed
//! through; values are shell words, scanned (across lines when quoted) but never evaluated.

use crate::model::{Dialect, Document, Entry, EntryKind, Quoting, Section, Text, Value};
use crate::{Diagnostic, Kind, Span, shell, span::saturate};
use std::borrow::Cow;

/// The bytes ini2sh keeps in a section header (everything else is deleted).
pub(crate) fn header_byte(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || b"-*./:?@_|".contains(&c)
}

/// ini2sh's header pattern: the line (comment removed) lower-cased, with every byte outside
/// `[-*./:?@_|0-9a-z]` deleted. Borrowed when nothing changes.
pub(crate) fn sanitize(text: &str) -> Cow<'_, str> {
    let text = text.find('#').map_or(text, |i| &text[..i]);
    if text.bytes().all(header_byte) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.bytes()
            .map(|c| c.to_ascii_lowercase())
            .filter(|&c| header_byte(c))
            .map(char::from)
            .collect(),
    )
}

/// Is `line` (one line, no `\n`) a header for ini2sh: `^[ ]*\[[^]]*\]`? Returns the offsets
/// of `[` and `]`.
fn header_brackets(line: &str) -> Option<(usize, usize)> {
    let b = line.as_bytes();
    let open = b.iter().position(|&c| c != b' ')?;
    if b[open] != b'[' {
        return None;
    }
    let close = open + 1 + b[open + 1..].iter().position(|&c| c == b']')?;
    Some((open, close))
}

/// `tolower($0) ~ /^include *=/`: the offset just after the `=`.
fn include_eq(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    if b.len() < 7 || !b[..7].eq_ignore_ascii_case(b"include") {
        return None;
    }
    let sp = b[7..].iter().take_while(|&&c| c == b' ').count();
    (b.get(7 + sp) == Some(&b'=')).then_some(8 + sp)
}

/// `/^[a-zA-Z0-9_]* *=/`: the name's length and the offset just after the `=`.
fn assignment_eq(line: &str) -> Option<(usize, usize)> {
    let b = line.as_bytes();
    let name = b
        .iter()
        .take_while(|&&c| c.is_ascii_alphanumeric() || c == b'_')
        .count();
    let sp = b[name..].iter().take_while(|&&c| c == b' ').count();
    (b.get(name + sp) == Some(&b'=')).then_some((name, name + sp + 1))
}

struct Lines<'a> {
    src: &'a str,
    doc: Document<'a>,
    cur: Option<usize>,
    /// The first `\r` ending a parameter line (inside a quoted value it is data).
    crlf: Option<usize>,
}

/// Parses `src` as LTSP 19+ `ltsp.conf`.
pub(crate) fn parse(src: &str) -> Document<'_> {
    let mut p = Lines {
        src,
        doc: Document {
            dialect: Dialect::Ltsp19,
            source: src,
            sections: Vec::new(),
            entries: Vec::new(),
            includes: Vec::new(),
            diagnostics: Vec::new(),
            stop: None,
        },
        cur: None,
        crlf: None,
    };
    let mut pos = 0;
    let mut line_no: u32 = 1;
    while pos < src.len() {
        let end = line_end(src, pos);
        let next = p.line(pos, end, line_no);
        line_no = line_no.saturating_add(saturate(src[pos..next].matches('\n').count()));
        pos = next;
    }
    if let Some(at) = p.crlf {
        p.doc.diagnostics.push(Diagnostic::error(
            Kind::Crlf,
            Span::at(src, at, 1),
            "CR LF line endings: the shell keeps the `\\r` at the end of every value and command; convert with dos2unix",
        ));
    }
    p.doc
}

fn line_end(src: &str, from: usize) -> usize {
    crate::bytes::find(&src.as_bytes()[from..], b'\n').map_or(src.len(), |i| from + i)
}

impl<'a> Lines<'a> {
    fn span(&self, line_start: usize, line: u32, start: usize, end: usize) -> Span {
        Span {
            line,
            column: saturate(start - line_start + 1),
            start,
            end,
        }
    }

    /// Adds `entry` to section `i` (always the last one).
    fn push(&mut self, i: usize, entry: Entry<'a>) {
        self.doc.entries.push(entry);
        self.doc.sections[i].entries.end = self.doc.entries.len();
    }

    fn section_for_entry(&mut self) -> usize {
        match self.cur {
            Some(i) => i,
            None => {
                self.doc.sections.push(Section {
                    name: Text {
                        text: "",
                        span: Span::default(),
                    },
                    pattern: Cow::Borrowed("unnamed"),
                    header: Span {
                        line: 1,
                        column: 1,
                        start: 0,
                        end: 0,
                    },
                    entries: self.doc.entries.len()..self.doc.entries.len(),
                    unnamed: true,
                });
                let i = self.doc.sections.len() - 1;
                self.cur = Some(i);
                i
            }
        }
    }

    /// Classifies the line `[start, end)`; returns where the next line starts (a value
    /// quoted across lines consumes them).
    fn line(&mut self, start: usize, end: usize, no: u32) -> usize {
        let src = self.src;
        let line = &src[start..end];
        let after = (end + 1).min(src.len()).max(end);
        if let Some((open, close)) = header_brackets(line) {
            self.header(start, no, open, close);
            return after;
        }
        if let Some(eq) = include_eq(line) {
            let raw_end = line.find('#').unwrap_or(line.len());
            let raw = line[eq..raw_end].trim();
            let vstart = start + eq + line[eq..].len() - line[eq..].trim_start().len();
            let i = self.section_for_entry();
            let key = Text {
                text: &line[..7],
                span: self.span(start, no, start, start + 7),
            };
            let value = Value {
                raw,
                span: self.span(start, no, vstart, vstart + raw.len()),
                quoting: Quoting::Bare,
            };
            self.push(
                i,
                Entry {
                    kind: EntryKind::Include,
                    key,
                    value,
                },
            );
            return after;
        }
        if let Some((name_len, eq)) = assignment_eq(line) {
            return self.assignment(start, end, no, name_len, eq);
        }
        self.other(start, no, line);
        after
    }

    fn header(&mut self, start: usize, no: u32, open: usize, close: usize) {
        let line = &self.src[start..start + line_end(self.src, start) - start];
        let name = &line[open + 1..close];
        let pattern = sanitize(line);
        let header = self.span(start, no, start + open, start + close + 1);
        let name_span = self.span(start, no, start + open + 1, start + close);
        let tail = line[close + 1..].trim_start();
        if !tail.is_empty() && !tail.starts_with('#') {
            let at = start + line.len() - tail.len();
            self.doc.diagnostics.push(Diagnostic::warning(
                Kind::UnknownConstruct,
                self.span(start, no, at, start + line.len()),
                format!(
                    "text after `]` is glued onto the section name by ini2sh: this header is `[{pattern}]`"
                ),
            ));
        }
        if pattern.is_empty() {
            self.doc.diagnostics.push(Diagnostic::error(
                Kind::Syntax,
                header,
                "empty section name: ini2sh writes an empty `case` pattern and the shell fails to evaluate the file",
            ));
        } else if pattern == "default" {
            self.doc.diagnostics.push(Diagnostic::warning(
                Kind::UnknownConstruct,
                header,
                "[default] has no meaning in LTSP 19+ (it is a named section nobody includes); use [clients]",
            ));
        }
        self.doc.sections.push(Section {
            name: Text {
                text: name,
                span: name_span,
            },
            pattern,
            header,
            entries: self.doc.entries.len()..self.doc.entries.len(),
            unnamed: false,
        });
        self.cur = Some(self.doc.sections.len() - 1);
    }

    fn assignment(
        &mut self,
        start: usize,
        end: usize,
        no: u32,
        name_len: usize,
        eq: usize,
    ) -> usize {
        let src = self.src;
        let b = src.as_bytes();
        let key = Text {
            text: &src[start..start + name_len],
            span: self.span(start, no, start, start + name_len),
        };
        let eq_span = self.span(start, no, start + eq - 1, start + eq);
        if key.text.is_empty() || key.text.as_bytes()[0].is_ascii_digit() {
            self.doc.diagnostics.push(Diagnostic::error(
                Kind::BadKey,
                if key.text.is_empty() {
                    eq_span
                } else {
                    key.span
                },
                format!(
                    "`{}=` is not an assignment: a shell variable name starts with a letter or `_`",
                    key.text
                ),
            ));
            return (end + 1).min(src.len());
        }
        let mut vstart = start + eq;
        while vstart < end && b[vstart] == b' ' {
            vstart += 1;
        }
        let (vend, closed) = match shell::scan_word(b, vstart) {
            Ok(e) => (e, true),
            Err(q) => {
                self.doc.diagnostics.push(Diagnostic::error(
                    Kind::UnterminatedQuote,
                    Span::at(src, q, 1),
                    format!(
                        "the value of `{}` opens a quote that is never closed: the shell cannot evaluate ltsp.conf",
                        key.text
                    ),
                ));
                (end, false)
            }
        };
        let value = Value {
            raw: &src[vstart..vend],
            span: self.span(start, no, vstart, vend),
            quoting: Quoting::Shell,
        };
        if key.text.eq_ignore_ascii_case("like") {
            self.doc.diagnostics.push(Diagnostic::warning(
                Kind::UnknownConstruct,
                key.span,
                "LIKE has no meaning in LTSP 19+ (it just sets a variable named LIKE); use INCLUDE=",
            ));
        }
        // ini2sh classifies every line on its own, even inside a quoted value.
        let mut nl = vstart;
        while let Some(i) = src[nl..vend].find('\n') {
            let ls = nl + i + 1;
            let le = line_end(src, ls);
            let cont = &src[ls..le];
            if header_brackets(cont).is_some()
                || include_eq(cont).is_some()
                || assignment_eq(cont).is_some()
            {
                self.doc.diagnostics.push(Diagnostic::error(
                    Kind::Syntax,
                    Span::at(src, ls, le - ls),
                    format!(
                        "this line inside the value of `{}` looks like a header, INCLUDE= or NAME= line, and ini2sh rewrites it even inside quotes",
                        key.text
                    ),
                ));
            }
            nl = ls;
        }
        // The rest of the value's last line.
        let last_end = line_end(src, vend);
        if last_end > start && b[last_end - 1] == b'\r' && self.crlf.is_none() {
            self.crlf = Some(last_end - 1);
        }
        let rest = src[vend..last_end].trim_start_matches([' ', '\t']);
        if closed && !rest.is_empty() && !rest.starts_with(['#', ';', '&', '|', '\r']) {
            let at = last_end - rest.len();
            self.doc.diagnostics.push(Diagnostic::error(
                Kind::Syntax,
                Span::at(src, at, rest.len()),
                format!(
                    "the shell runs `{}` as a command with `{}` set only in its environment, so `{}` stays unset: quote the whole value",
                    rest.trim_end(),
                    key.text,
                    key.text
                ),
            ));
        }
        let i = self.section_for_entry();
        self.push(
            i,
            Entry {
                kind: EntryKind::Assign,
                key,
                value,
            },
        );
        (last_end + 1).min(src.len()).max(last_end)
    }

    /// Comments, blank lines and shell code; flags the ones that look like parameters or
    /// headers but are not, for ini2sh.
    fn other(&mut self, start: usize, no: u32, line: &str) {
        let t = line.trim_start_matches([' ', '\t']);
        if t.is_empty() || t.starts_with('#') {
            return;
        }
        let at = start + line.len() - t.len();
        if line.starts_with('\t') && header_brackets(t).is_some() {
            self.doc.diagnostics.push(Diagnostic::warning(
                Kind::UnknownConstruct,
                self.span(start, no, at, start + line.len()),
                "indented with a tab, so ini2sh does not see a section header here (only spaces may precede `[`)",
            ));
            return;
        }
        if let Some((n, eq)) = assignment_eq(t)
            && n > 0
            && !t.as_bytes()[0].is_ascii_digit()
        {
            let spaced = eq - 1 > n;
            let span = self.span(start, no, at, at + n);
            if spaced {
                self.doc.diagnostics.push(Diagnostic::error(
                    Kind::UnknownConstruct,
                    span,
                    format!(
                        "indented `{} =` is passed to the shell as is, which runs `{}` as a command: start the line in column 1 or drop the spaces around `=`",
                        &t[..n],
                        &t[..n]
                    ),
                ));
            } else {
                self.doc.diagnostics.push(Diagnostic::warning(
                    Kind::UnknownConstruct,
                    span,
                    format!(
                        "indented `{}=` is shell code for ini2sh, not a parameter: the shell sets it, but ltsconf does not resolve it; start the line in column 1",
                        &t[..n]
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_sanitized_like_ini2sh() {
        assert_eq!(sanitize("[52:54:00:*]"), "52:54:00:*");
        assert_eq!(sanitize("  [PC 01] # x"), "pc01");
        assert_eq!(sanitize("[a] b"), "ab");
        assert_eq!(sanitize("[b8:27:eb:*|dc:a6:32:*]"), "b8:27:eb:*|dc:a6:32:*");
    }

    #[test]
    fn line_classes() {
        assert!(header_brackets("  [x]").is_some());
        assert!(header_brackets("\t[x]").is_none());
        assert_eq!(include_eq("Include =x"), Some(9));
        assert_eq!(include_eq(" INCLUDE=x"), None);
        assert_eq!(assignment_eq("KEY = v"), Some((3, 5)));
        assert_eq!(assignment_eq("  KEY=v"), None);
    }
}

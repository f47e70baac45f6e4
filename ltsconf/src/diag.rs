//! Diagnostics: every problem found in a file, with its place, instead of LTSP's silent
//! truncation (getltscfg) or a boot-time `die` (ini2sh).

use crate::Span;
use std::fmt::{self, Write as _};

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// LTSP would still work, but probably not as the author meant (a duplicate key, a
    /// value LTSP ignores).
    Warning,
    /// LTSP would lose part of the file, break `eval`, hang or crash.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// What kind of problem a [`Diagnostic`] reports: stable, so tools (and tests) can match on it
/// without parsing messages.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The grammar does not allow this token here (getltscfg stops at the first one).
    Syntax,
    /// A `"` with no closing `"` on its line (lts5), or a quote never closed (ltsp19).
    UnterminatedQuote,
    /// `'` in an lts5 file: not a quote there; getltscfg prints it to stdout, breaking `eval`.
    SingleQuote,
    /// `=` or `[` in an unquoted lts5 value: getltscfg ends the value there and stops parsing.
    UnquotedSpecial,
    /// A key before the first `[section]` (lts5: nothing of the file is used).
    KeyBeforeSection,
    /// A section without any `KEY = value` (lts5: a syntax error for getltscfg).
    EmptySection,
    /// `LIKE` names a section that does not exist (getltscfg ignores it).
    LikeMissing,
    /// `LIKE` sections that refer back to themselves (getltscfg loops forever at boot).
    LikeCycle,
    /// CR LF line endings (getltscfg loses the whole file; ini2sh puts `\r` into values).
    Crlf,
    /// Something that means nothing (or something else) in this dialect: `;` comments,
    /// `LIKE` or `[default]` in ltsp.conf, indented assignments, `include`.
    UnknownConstruct,
    /// The same key twice in one section (the last one wins).
    DuplicateKey,
    /// The same section twice (lts5: the first wins; ltsp19: the last replaces the first).
    DuplicateSection,
    /// A key that is not a shell variable name: `eval` of LTSP's output breaks on it.
    BadKey,
    /// A value LTSP would silently ignore or misread (see [`crate::known`]).
    Value,
    /// A value written on the line after its `=` (allowed by getltscfg, easy to get wrong).
    ValueOnNextLine,
    /// lts5: a quoted value holding `"`: getltscfg's quotes run to the last `"` of the line,
    /// so a trailing `# comment "..."` became part of the value.
    QuoteInValue,
}

/// One problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Machine-readable kind.
    pub kind: Kind,
    /// Where it is; the caret excerpt underlines these bytes.
    pub span: Span,
    /// What is wrong and, where it helps, what LTSP would do and how to fix it.
    pub message: String,
}

impl Diagnostic {
    pub(crate) fn error(kind: Kind, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            kind,
            span,
            message: message.into(),
        }
    }

    pub(crate) fn warning(kind: Kind, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            kind,
            span,
            message: message.into(),
        }
    }

    /// Formats the diagnostic the way compilers do, for a file named `file` whose text is
    /// `source`:
    ///
    /// ```text
    /// farm.conf:3:8: error: `=` in an unquoted value ...
    ///     3 | A = x=y
    ///       |      ^
    /// ```
    ///
    /// The caret line underlines the span (at least one caret, clipped to its first line).
    /// Tabs in the excerpt are kept in the caret line's padding so the caret lines up.
    pub fn render(&self, file: &str, source: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{file}:{}:{}: {}: {}",
            self.span.line, self.span.column, self.severity, self.message
        );
        let start = self.span.start.min(source.len());
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |i| start + i);
        let line = source[line_start..line_end].trim_end_matches('\r');
        let number = self.span.line.to_string();
        let gutter = " ".repeat(number.len());
        let _ = writeln!(out, " {number} | {line}");
        let col = (start - line_start).min(line.len());
        let pad: String = line[..col]
            .chars()
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let width = self
            .span
            .end
            .min(line_start + line.len())
            .saturating_sub(start);
        let carets = line[col..]
            .char_indices()
            .take_while(|&(i, _)| i < width)
            .count()
            .max(1);
        let _ = writeln!(out, " {gutter} | {pad}{}", "^".repeat(carets));
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.span.line, self.span.column, self.severity, self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_puts_the_caret_under_the_span() {
        let src = "[a]\nA = x=y\n";
        let d = Diagnostic::error(Kind::UnquotedSpecial, Span::at(src, 9, 1), "bad");
        assert_eq!(
            d.render("f.conf", src),
            "f.conf:2:6: error: bad\n 2 | A = x=y\n   |      ^\n"
        );
    }

    #[test]
    fn render_keeps_tabs_and_survives_end_of_file() {
        let src = "\tA\t= \"x";
        let d = Diagnostic::warning(Kind::UnterminatedQuote, Span::at(src, 5, 2), "q");
        assert_eq!(
            d.render("f", src),
            "f:1:6: warning: q\n 1 | \tA\t= \"x\n   | \t \t  ^^\n"
        );
        let eof = Diagnostic::error(Kind::Syntax, Span::at(src, 99, 0), "eof");
        assert!(eof.render("f", src).ends_with("| \t \t    ^\n"));
    }
}

//! LTSP5 `lts.conf`: a lexer with getltscfg's exact tokens and a parser for its grammar that,
//! unlike getltscfg, goes on after an error and reports every problem.
//!
//! getltscfg's flex rules (research notes §2), longest match, ties to the earlier rule:
//! `=` `[` `]`, `include` at line start, blank runs, STRING `[^=\n\[\]"'#]*` (trimmed),
//! QSTRING `"[^\n]*"` (greedy to the last `"` of the line, no escapes), `#` comments to the
//! end of the line, newlines (otherwise insignificant). The grammar is
//! `file := ( include | '[' word ']' (word '=' word)+ )*`.

use crate::model::{Dialect, Document, Entry, EntryKind, Quoting, Section, Text, Value};
use crate::{Diagnostic, Kind, Span, span::saturate};
use std::borrow::Cow;

/// Bytes that end an unquoted STRING run.
const fn stop_table() -> [bool; 256] {
    let mut t = [false; 256];
    let stops = b"=\n[]\"'#";
    let mut i = 0;
    while i < stops.len() {
        t[stops[i] as usize] = true;
        i += 1;
    }
    t
}
static STOP: [bool; 256] = stop_table();

/// C `isspace` in the "C" locale: what getltscfg's `trim()` strips.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    Eq,
    Lb,
    Rb,
    /// A STRING (trimmed) or QSTRING (quotes removed): both are the grammar's `STRING`.
    Word(&'a str, bool),
    /// `include path` at the start of a line.
    Include(&'a str),
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    tok: Tok<'a>,
    span: Span,
}

/// The lexer: positions only, so cloning it is a free lookahead.
#[derive(Clone)]
struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: u32,
    line_start: usize,
    /// The first `\r\n` passed (every `\n` of the input goes through [`Lexer::newline`]).
    crlf: Option<usize>,
}

/// A byte the lexer reports instead of tokenizing (flex would ECHO it to stdout).
enum Stray {
    SingleQuote(Span),
    LoneQuote(Span),
    /// `#` on the last line with no newline after it: the whole comment.
    CommentAtEof(Span),
    /// A `\r` before `\n` that getltscfg turns into an empty STRING.
    FatalCr(Span),
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Lexer<'a> {
        Lexer {
            src,
            pos: 0,
            line: 1,
            line_start: 0,
            crlf: None,
        }
    }

    fn span(&self, start: usize, end: usize) -> Span {
        Span {
            line: self.line,
            column: saturate(start - self.line_start + 1),
            start,
            end,
        }
    }

    fn newline(&mut self, at: usize) {
        if self.crlf.is_none() && at > 0 && self.src.as_bytes()[at - 1] == b'\r' {
            self.crlf = Some(at - 1);
        }
        self.line = self.line.saturating_add(1);
        self.line_start = at + 1;
        self.pos = at + 1;
    }

    /// End of the current line (the index of its `\n`, or the end of input).
    fn line_end(&self, from: usize) -> usize {
        let b = self.src.as_bytes();
        crate::bytes::find(&b[from..], b'\n').map_or(b.len(), |i| from + i)
    }

    /// The next token, or a stray byte, or `None` at the end.
    #[inline(always)]
    fn next(&mut self) -> Option<Result<Token<'a>, Stray>> {
        let b = self.src.as_bytes();
        loop {
            let start = self.pos;
            let &c = b.get(start)?;
            let one = |lx: &mut Lexer<'a>, tok| {
                lx.pos = start + 1;
                Some(Ok(Token {
                    tok,
                    span: lx.span(start, start + 1),
                }))
            };
            match c {
                b'\n' => self.newline(start),
                b'=' => return one(self, Tok::Eq),
                b'[' => return one(self, Tok::Lb),
                b']' => return one(self, Tok::Rb),
                b'#' => {
                    let end = self.line_end(start);
                    if end == b.len() {
                        self.pos = end;
                        return Some(Err(Stray::CommentAtEof(self.span(start, end))));
                    }
                    self.newline(end);
                }
                b'\'' => {
                    self.pos = start + 1;
                    return Some(Err(Stray::SingleQuote(self.span(start, start + 1))));
                }
                b'"' => {
                    let end = self.line_end(start);
                    return match b[start + 1..end].iter().rposition(|&c| c == b'"') {
                        Some(i) => {
                            let close = start + 1 + i;
                            self.pos = close + 1;
                            Some(Ok(Token {
                                tok: Tok::Word(&self.src[start + 1..close], true),
                                span: self.span(start, close + 1),
                            }))
                        }
                        None => {
                            self.pos = start + 1;
                            Some(Err(Stray::LoneQuote(self.span(start, start + 1))))
                        }
                    };
                }
                _ => {
                    if start == self.line_start
                        && let Some(tok) = self.include(start)
                    {
                        return Some(Ok(tok));
                    }
                    let mut end = start;
                    while end < b.len() && !STOP[b[end] as usize] {
                        end += 1;
                    }
                    self.pos = end;
                    let run = &b[start..end];
                    let lead = run.iter().take_while(|&&c| is_c_space(c)).count();
                    if lead == run.len() && run.iter().all(|&c| c == b' ' || c == b'\t') {
                        // A blank run: flex's whitespace rule wins the tie.
                        continue;
                    }
                    let trail = run[lead..]
                        .iter()
                        .rev()
                        .take_while(|&&c| is_c_space(c))
                        .count();
                    if lead == run.len() {
                        // Only spaces and `\r`/VT/FF: an empty STRING for getltscfg.
                        let span = self.span(start, end);
                        if run.contains(&b'\r') {
                            return Some(Err(Stray::FatalCr(span)));
                        }
                        return Some(Ok(Token {
                            tok: Tok::Word("", false),
                            span,
                        }));
                    }
                    let (s, e) = (start + lead, end - trail);
                    return Some(Ok(Token {
                        tok: Tok::Word(&self.src[s..e], false),
                        span: self.span(s, e),
                    }));
                }
            }
        }
    }

    /// flex's INC rule: `^[ \t]*include[ \t]+(("[^\n]*")|([^=\n\[\]"'#]*))[ \t]*`, tried at a
    /// line start. Lower-case `include` only.
    fn include(&mut self, start: usize) -> Option<Token<'a>> {
        let b = self.src.as_bytes();
        let mut i = crate::bytes::skip_blanks(b, start);
        let kw = i;
        if !b[i..].starts_with(b"include") {
            return None;
        }
        i += 7;
        let blanks = b[i..]
            .iter()
            .take_while(|&&c| c == b' ' || c == b'\t')
            .count();
        if blanks == 0 {
            return None;
        }
        i += blanks;
        let (path, mut end) = if b.get(i) == Some(&b'"') {
            let line_end = self.line_end(i);
            match b[i + 1..line_end].iter().rposition(|&c| c == b'"') {
                Some(q) => (&self.src[i + 1..i + 1 + q], i + q + 2),
                None => return None,
            }
        } else {
            let mut e = i;
            while e < b.len() && !STOP[b[e] as usize] {
                e += 1;
            }
            (
                self.src[i..e].trim_matches(|c: char| c.is_ascii_whitespace()),
                e,
            )
        };
        while end < b.len() && (b[end] == b' ' || b[end] == b'\t') {
            end += 1;
        }
        self.pos = end;
        Some(Token {
            tok: Tok::Include(path),
            span: self.span(kw, end),
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before any section: keys are errors.
    Top,
    /// Inside section `n`.
    In(usize),
    /// After a broken header: entries are skipped quietly until the next header.
    Skip,
}

struct Parser<'a> {
    lx: Lexer<'a>,
    /// The lookahead token (`None` at the end), loaded unless `pending`.
    tok: Option<Token<'a>>,
    /// The lookahead is not lexed yet: the lexer sits where the previous statement ended,
    /// so [`Parser::plain_lines`] may read whole lines before any token is made.
    pending: bool,
    /// The token path resets `section_errors` right after lexing the token that follows a
    /// header's `]`; a header read by [`Parser::plain_lines`] leaves that reset to the next
    /// lex.
    reset_after_lex: bool,
    doc: Document<'a>,
    state: State,
    /// Errors reported inside the current section (an empty section after a broken entry is
    /// not reported twice).
    section_errors: usize,
    key_before_section_reported: bool,
    fatal_cr: bool,
    /// Read plain lines without tokens ([`Parser::plain_lines`], [`Parser::plain_value`]);
    /// off only to test them against the token path.
    fast: bool,
}

/// Parses `src` as LTSP5 `lts.conf`.
pub(crate) fn parse(src: &str) -> Document<'_> {
    parse_with(src, true)
}

/// [`parse`], with the plain-line fast path on or off (the two must agree on every input).
pub(crate) fn parse_with(src: &str, fast: bool) -> Document<'_> {
    let mut p = Parser {
        lx: Lexer::new(src),
        tok: None,
        pending: true,
        reset_after_lex: false,
        doc: Document {
            dialect: Dialect::Lts5,
            source: src,
            // Guesses that avoid regrowth (a copy of everything so far) on real files: a
            // line is rarely under 24 bytes, a section under 64. Reserved but untouched
            // memory costs nothing.
            sections: Vec::with_capacity(src.len() / 64),
            entries: Vec::with_capacity(src.len() / 24),
            includes: Vec::new(),
            diagnostics: Vec::new(),
            stop: None,
        },
        state: State::Top,
        section_errors: 0,
        key_before_section_reported: false,
        fatal_cr: false,
        fast,
    };
    p.run();
    if !p.fatal_cr
        && let Some(at) = p.lx.crlf
    {
        p.doc.diagnostics.push(Diagnostic::warning(
            Kind::Crlf,
            Span::at(src, at, 1),
            "CR LF line endings: harmless here, but getltscfg drops the whole file as soon as a `\\r` follows `]` or a closing `\"`; convert with dos2unix",
        ));
    }
    p.doc
}

impl<'a> Parser<'a> {
    /// Lexes the lookahead if it is pending.
    #[inline(always)]
    fn fill(&mut self) {
        if self.pending {
            self.pending = false;
            self.tok = self.lex();
            if self.reset_after_lex {
                self.reset_after_lex = false;
                self.section_errors = 0;
            }
        }
    }

    fn next(&mut self) -> Option<Token<'a>> {
        self.fill();
        let t = self.tok;
        if t.is_some() {
            self.tok = self.lex();
        }
        t
    }

    fn peek(&mut self) -> Option<Token<'a>> {
        self.fill();
        self.tok
    }

    /// The next real token; stray bytes become diagnostics on the way.
    #[inline(always)]
    fn lex(&mut self) -> Option<Token<'a>> {
        loop {
            match self.lx.next()? {
                Ok(t) => return Some(t),
                Err(Stray::SingleQuote(span)) => self.error(
                    Kind::SingleQuote,
                    span,
                    "`'` is not a quote in lts.conf: getltscfg prints it to stdout, which breaks `eval $(getltscfg -a)` for every variable; use double quotes",
                ),
                Err(Stray::LoneQuote(span)) => self.error(
                    Kind::UnterminatedQuote,
                    span,
                    "this `\"` has no closing `\"` on its line (lts.conf values cannot span lines): getltscfg prints it to stdout, which breaks `eval`",
                ),
                Err(Stray::CommentAtEof(span)) => {
                    self.stop_at(span.start);
                    self.error(
                        Kind::Syntax,
                        Span { end: span.start + 1, ..span },
                        "comment on the last line without a newline: getltscfg prints `#` (turning its output into a comment) and fails; end the file with a newline",
                    );
                }
                Err(Stray::FatalCr(span)) => {
                    if !self.fatal_cr {
                        self.fatal_cr = true;
                        self.stop_at(span.start);
                        self.error(
                            Kind::Crlf,
                            span,
                            "CR LF line endings: getltscfg reads this `\\r` as an empty word and ignores the rest of the file; convert with dos2unix",
                        );
                    }
                }
            }
        }
    }

    fn error(&mut self, kind: Kind, span: Span, msg: impl Into<String>) {
        self.section_errors += 1;
        self.doc
            .diagnostics
            .push(Diagnostic::error(kind, span, msg));
    }

    /// Records where getltscfg's parse would abort (the earliest such place wins).
    fn stop_at(&mut self, at: usize) {
        if self.doc.stop.is_none_or(|s| at < s) {
            self.doc.stop = Some(at);
        }
    }

    /// A syntax error that aborts getltscfg.
    fn syntax(&mut self, kind: Kind, span: Span, msg: impl Into<String>) {
        self.stop_at(span.start);
        self.error(kind, span, msg);
    }

    /// Error recovery: drops the rest of line `line`.
    fn skip_line(&mut self, line: u32) {
        while self.peek().is_some_and(|t| t.span.line == line) {
            self.next();
        }
    }

    /// The end of the input, located by the lexer (which has reached it) instead of a
    /// second pass over the text.
    fn eof_span(&self) -> Span {
        let len = self.doc.source.len();
        if self.lx.pos >= len {
            self.lx.span(len, len)
        } else {
            Span::at(self.doc.source, len, 0)
        }
    }

    fn run(&mut self) {
        loop {
            if self.pending && self.fast {
                self.plain_lines();
            }
            let Some(t) = self.next() else {
                break;
            };
            match t.tok {
                Tok::Include(path) => {
                    self.close_section(t.span);
                    self.state = State::Top;
                    self.doc.includes.push(Text {
                        text: path,
                        span: t.span,
                    });
                    self.doc.diagnostics.push(Diagnostic::warning(
                        Kind::UnknownConstruct,
                        t.span,
                        "`include`: getltscfg appends the named file's text after this file (into its middle once this file passes 8 KiB) and crashes when it is missing; what follows this line must be a [section]",
                    ));
                }
                Tok::Lb => {
                    self.close_section(t.span);
                    self.header(t);
                }
                Tok::Word(..) => self.declaration(t),
                Tok::Eq => {
                    self.syntax(Kind::Syntax, t.span, "`=` without a key before it");
                    self.skip_line(t.span.line);
                }
                Tok::Rb => {
                    self.syntax(Kind::Syntax, t.span, "`]` without a `[` before it");
                    self.skip_line(t.span.line);
                }
            }
        }
        let eof = self.eof_span();
        self.close_section(eof);
    }

    /// Ends the current section at `next` (the token after it): an empty section is a syntax
    /// error for getltscfg, reported at its header.
    fn close_section(&mut self, next: Span) {
        if let State::In(i) = self.state
            && self.doc.sections[i].entries.is_empty()
            && self.section_errors == 0
        {
            let header = self.doc.sections[i].header;
            self.stop_at(next.start);
            self.error(
                Kind::EmptySection,
                header,
                format!(
                    "empty section [{}]: getltscfg needs at least one `KEY = value` under a header and ignores the rest of the file; add one or remove the header",
                    self.doc.sections[i].name.text
                ),
            );
        }
        self.state = State::Skip;
    }

    fn header(&mut self, lb: Token<'a>) {
        self.state = State::Skip;
        self.section_errors = 0;
        let name = match self.peek() {
            Some(Token {
                tok: Tok::Word(w, _),
                span,
            }) if span.line == lb.span.line => {
                self.next();
                Text { text: w, span }
            }
            Some(t) if t.tok == Tok::Rb && t.span.line == lb.span.line => {
                self.syntax(Kind::Syntax, t.span, "empty section name `[]`");
                self.skip_line(lb.span.line);
                return;
            }
            _ => {
                self.syntax(Kind::Syntax, lb.span, "`[` without a section name after it");
                self.skip_line(lb.span.line);
                return;
            }
        };
        match self.peek() {
            Some(t) if t.tok == Tok::Rb => {
                self.next();
                self.doc.sections.push(Section {
                    name,
                    pattern: Cow::Borrowed(name.text),
                    header: Span {
                        end: t.span.end,
                        ..lb.span
                    },
                    entries: self.doc.entries.len()..self.doc.entries.len(),
                    unnamed: false,
                });
                self.state = State::In(self.doc.sections.len() - 1);
                self.section_errors = 0;
            }
            Some(t) if t.tok == Tok::Lb && t.span.line == lb.span.line => {
                self.syntax(
                    Kind::Syntax,
                    t.span,
                    "`[` inside a section name: lts.conf has no `[...]` globs, only `*` and `?`",
                );
                self.skip_line(lb.span.line);
            }
            _ => {
                let at = Span {
                    start: name.span.end,
                    end: name.span.end,
                    column: name.span.column + saturate(name.span.len()),
                    ..name.span
                };
                self.syntax(
                    Kind::Syntax,
                    at,
                    format!("section header `[{}` is missing its `]`", name.text),
                );
                self.skip_line(lb.span.line);
            }
        }
    }

    fn declaration(&mut self, key_tok: Token<'a>) {
        let Tok::Word(key, _) = key_tok.tok else {
            return;
        };
        let line = key_tok.span.line;
        if key.starts_with(';') {
            self.syntax(
                Kind::UnknownConstruct,
                key_tok.span,
                "`;` does not start a comment in lts.conf (getltscfg stops here); use `#`",
            );
            self.skip_line(line);
            return;
        }
        match self.state {
            State::Top => {
                self.stop_at(key_tok.span.start);
                if !self.key_before_section_reported {
                    self.key_before_section_reported = true;
                    self.error(
                        Kind::KeyBeforeSection,
                        key_tok.span,
                        format!(
                            "`{key}` comes before any [section]: getltscfg rejects the file here and uses nothing after it; put it under [Default]"
                        ),
                    );
                }
            }
            State::Skip | State::In(_) => {}
        }
        // `=`
        let eq = match self.peek() {
            Some(t) if t.tok == Tok::Eq && t.span.line == line => {
                if self.fast
                    && let Some((raw, span, quoted, end, _)) = self.plain_value(self.lx.pos)
                {
                    self.end_line(end);
                    self.pending = true;
                    self.finish_entry(key_tok, key, raw, span, quoted);
                    return;
                }
                self.next();
                t
            }
            other => {
                let span = match other {
                    Some(t) if t.span.line == line => t.span,
                    _ => key_tok.span,
                };
                self.syntax(
                    Kind::Syntax,
                    span,
                    format!("expected `=` after `{key}` (lts.conf lines are `KEY = value`)"),
                );
                self.skip_line(line);
                return;
            }
        };
        // the value
        let value_tok = match self.peek() {
            Some(
                t @ Token {
                    tok: Tok::Word(..), ..
                },
            ) => t,
            _ => {
                self.syntax(
                    Kind::Syntax,
                    eq.span,
                    format!("`{key}` has no value: write `{key} = \"\"` for an empty one"),
                );
                self.skip_line(line);
                return;
            }
        };
        let Tok::Word(raw, quoted) = value_tok.tok else {
            return;
        };
        if value_tok.span.line != line {
            // `A =` then `B = 2`: getltscfg takes `B` as A's value, then fails at the `=`.
            let mut ahead = self.lx.clone();
            let after = loop {
                match ahead.next() {
                    Some(Ok(t)) => break Some(t),
                    Some(Err(_)) => continue,
                    None => break None,
                }
            };
            if after.is_some_and(|t| t.tok == Tok::Eq) {
                self.syntax(
                    Kind::Syntax,
                    eq.span,
                    format!(
                        "`{key}` has no value: getltscfg takes `{raw}` from the next line as its value and then fails; write `{key} = \"\"` for an empty one"
                    ),
                );
                return;
            }
            self.doc.diagnostics.push(Diagnostic::warning(
                Kind::ValueOnNextLine,
                value_tok.span,
                format!("the value of `{key}` is on the line after its `=`"),
            ));
        }
        self.next();
        self.finish_entry(key_tok, key, raw, value_tok.span, quoted);
        // What follows the value on the same line.
        let vline = value_tok.span.line;
        if let Some(t) = self.peek()
            && t.span.line == vline
        {
            let what = match t.tok {
                Tok::Eq => Some("`=`"),
                Tok::Lb => Some("`[`"),
                Tok::Rb => Some("`]`"),
                _ => None,
            };
            match what {
                Some(what) if !quoted => self.syntax(
                    Kind::UnquotedSpecial,
                    t.span,
                    format!(
                        "{what} in an unquoted value: getltscfg ends the value of `{key}` before it and ignores the rest of the file; put the whole value in double quotes"
                    ),
                ),
                _ => self.syntax(
                    Kind::Syntax,
                    t.span,
                    format!(
                        "unexpected text after the value of `{key}`: one `KEY = value` per line, and quote values that contain `\"`, `#`, `=`, `[` or `]` as a whole"
                    ),
                ),
            }
            self.skip_line(vline);
        }
    }

    /// Records the entry `key = raw` (`vspan`: the value token, quotes included) with the
    /// checks both paths share.
    fn finish_entry(
        &mut self,
        key_tok: Token<'a>,
        key: &'a str,
        raw: &'a str,
        vspan: Span,
        quoted: bool,
    ) {
        if !crate::is_shell_name(key) {
            self.bad_key(key_tok.span, key);
        }
        let inner_quote = quoted && crate::bytes::find(raw.as_bytes(), b'"').is_some();
        self.add_entry(key, key_tok.span, raw, vspan, quoted, inner_quote);
    }

    #[cold]
    fn bad_key(&mut self, span: Span, key: &str) {
        self.error(
            Kind::BadKey,
            span,
            format!(
                "`{key}` is not a shell variable name: getltscfg prints it as is and `eval` of its output fails; use letters, digits and `_`"
            ),
        );
    }

    /// Adds the entry to the current section; `inner_quote`: the quoted value holds a `"`.
    #[inline(always)]
    fn add_entry(
        &mut self,
        key: &'a str,
        key_span: Span,
        raw: &'a str,
        vspan: Span,
        quoted: bool,
        inner_quote: bool,
    ) {
        let value = Value {
            raw,
            span: if quoted {
                Span {
                    start: vspan.start + 1,
                    end: vspan.end - 1,
                    column: vspan.column + 1,
                    ..vspan
                }
            } else {
                vspan
            },
            quoting: if quoted {
                Quoting::Quoted
            } else {
                Quoting::Bare
            },
        };
        if inner_quote {
            self.quote_in_value(key, value.span);
        }
        if let State::In(i) = self.state {
            self.doc.entries.push(Entry {
                kind: if key.len() == 4 && key.eq_ignore_ascii_case("like") {
                    EntryKind::Like
                } else {
                    EntryKind::Assign
                },
                key: Text {
                    text: key,
                    span: key_span,
                },
                value,
            });
            self.doc.sections[i].entries.end = self.doc.entries.len();
        }
    }

    #[cold]
    fn quote_in_value(&mut self, key: &str, span: Span) {
        self.doc.diagnostics.push(Diagnostic::warning(
            Kind::QuoteInValue,
            span,
            format!(
                "the value of `{key}` runs to the last `\"` of the line, so it contains `\"`: getltscfg has no escapes, and the `\"` ends the quoting in its output, breaking `eval`"
            ),
        ));
    }

    /// Reads the plain lines at the lexer's position straight from the bytes, without
    /// tokens: blank lines, comments, `[name]` headers and `KEY = value` lines. Stops, having
    /// consumed nothing of it, at the first line that is anything else; the token path then
    /// reads that line, with its diagnostics. Runs only between statements (the lookahead is
    /// pending), where the token path would do exactly the same with these lines.
    /// `tests/fast_path.rs` checks both paths give the same document.
    #[inline(never)]
    fn plain_lines(&mut self) {
        let b = self.lx.src.as_bytes();
        loop {
            let pos = self.lx.pos;
            let i = crate::bytes::skip_blanks(b, pos);
            let Some(&c) = b.get(i) else {
                return;
            };
            match c {
                b'\n' => self.lx.newline(i),
                b'#' => {
                    let end = self.lx.line_end(i);
                    if end == b.len() {
                        return;
                    }
                    self.lx.newline(end);
                }
                _ if pos != self.lx.line_start => return,
                b'[' => {
                    if !self.plain_header(i) {
                        return;
                    }
                }
                _ => {
                    if !self.plain_entry(i) {
                        return;
                    }
                }
            }
        }
    }

    /// `[name]` at `lb` (the rest of its line is left to [`Parser::plain_lines`]).
    #[inline(never)]
    fn plain_header(&mut self, lb: usize) -> bool {
        let src = self.lx.src;
        let b = src.as_bytes();
        // The name runs to the first STOP byte, which must be `]`.
        let k = lb + 1 + crate::bytes::until_stop(&b[lb + 1..]);
        if b.get(k) != Some(&b']') {
            return false;
        }
        let run = &b[lb + 1..k];
        let lead = run.iter().take_while(|&&c| is_c_space(c)).count();
        if lead == run.len() {
            return false;
        }
        let trail = run.iter().rev().take_while(|&&c| is_c_space(c)).count();
        let (s, e) = (lb + 1 + lead, k - trail);
        let lb_span = self.lx.span(lb, lb + 1);
        let name = Text {
            text: &src[s..e],
            span: self.lx.span(s, e),
        };
        // What `run` and `header` do for these tokens.
        self.close_section(lb_span);
        self.doc.sections.push(Section {
            name,
            pattern: Cow::Borrowed(name.text),
            header: Span {
                end: k + 1,
                ..lb_span
            },
            entries: self.doc.entries.len()..self.doc.entries.len(),
            unnamed: false,
        });
        self.state = State::In(self.doc.sections.len() - 1);
        self.section_errors = 0;
        self.reset_after_lex = true;
        self.lx.pos = k + 1;
        true
    }

    /// `KEY = value` with the key at `at` (after the line's blanks): a shell-name key in a
    /// section and a value [`Parser::plain_value`] reads.
    #[inline(always)]
    fn plain_entry(&mut self, at: usize) -> bool {
        if self.state == State::Top {
            return false;
        }
        let src = self.lx.src;
        let b = src.as_bytes();
        let j = at + crate::bytes::name_len(&b[at..]);
        let k = crate::bytes::skip_blanks(b, j);
        if j == at || b[at].is_ascii_digit() || b.get(k) != Some(&b'=') {
            return false;
        }
        let key = &src[at..j];
        if key == "include" {
            return false;
        }
        let Some((raw, vspan, quoted, end, inner_quote)) = self.plain_value(k + 1) else {
            return false;
        };
        let key_span = self.lx.span(at, j);
        self.end_line(end);
        self.reset_after_lex = false;
        // The key is a shell name already: no BadKey check.
        self.add_entry(key, key_span, raw, vspan, quoted, inner_quote);
        true
    }

    /// The common value read straight from the bytes after `=` (at `after_eq`): a bare value
    /// (ended by the end of the line or a `#` comment) or a quoted one (followed only by
    /// blanks and maybe a comment). Returns the value, its token span, whether it was quoted,
    /// the end of its line and whether the quoted value holds a `"`; `None` for anything else
    /// (the token path then reads it, with its diagnostics).
    #[inline(always)]
    fn plain_value(&self, after_eq: usize) -> Option<(&'a str, Span, bool, usize, bool)> {
        use crate::bytes::{find, find2};
        let src = self.lx.src;
        let b = src.as_bytes();
        let i = crate::bytes::skip_blanks(b, after_eq);
        let at = |from: usize, i: Option<usize>| i.map_or(b.len(), |i| from + i);
        let (raw, start, end, quoted, line_end, inner) = match b.get(i) {
            None | Some(b'\n') => return None,
            Some(b'"') => {
                // One pass for the usual `"..."` then the end of the line: the first `"` is
                // the closing one unless another follows on the line (then the last is).
                let q = at(i + 1, find2(&b[i + 1..], b'"', b'\n'));
                if b.get(q) != Some(&b'"') {
                    return None;
                }
                let n = match b.get(q + 1) {
                    None => b.len(),
                    Some(b'\n') => q + 1,
                    Some(_) => at(q + 1, find2(&b[q + 1..], b'"', b'\n')),
                };
                let (close, line_end, inner) = if b.get(n) == Some(&b'"') {
                    let line_end = at(n, find(&b[n..], b'\n'));
                    let last = b[n..line_end].iter().rposition(|&c| c == b'"');
                    (n + last.unwrap_or(0), line_end, true)
                } else {
                    (q, n, false)
                };
                (&src[i + 1..close], i, close + 1, true, line_end, inner)
            }
            Some(_) => {
                // The lexer's STRING run starts right after `=`, blanks included.
                let e = i + crate::bytes::until_stop(&b[i..]);
                let line_end = match b.get(e) {
                    None | Some(b'\n') => e,
                    Some(b'#') => at(e, find(&b[e..], b'\n')),
                    Some(_) => return None,
                };
                let run = &b[after_eq..e];
                // Trimmed as the lexer trims a STRING; the usual value has only blanks
                // before it (already skipped) and nothing after it.
                let lead = if is_c_space(b[i]) {
                    run.iter().take_while(|&&c| is_c_space(c)).count()
                } else {
                    i - after_eq
                };
                if lead == run.len() {
                    return None;
                }
                let trail = if is_c_space(b[e - 1]) {
                    run.iter().rev().take_while(|&&c| is_c_space(c)).count()
                } else {
                    0
                };
                let (s, e) = (after_eq + lead, e - trail);
                (&src[s..e], s, e, false, line_end, false)
            }
        };
        let j = crate::bytes::skip_blanks(&b[..line_end], end);
        if j < line_end && (b[j] != b'#' || line_end == b.len()) {
            return None;
        }
        Some((raw, self.lx.span(start, end), quoted, line_end, inner))
    }

    /// Moves the lexer past the line ending at `line_end` (its `\n` or the end of input).
    fn end_line(&mut self, line_end: usize) {
        if line_end < self.lx.src.len() {
            self.lx.newline(line_end);
        } else {
            self.lx.pos = line_end;
        }
    }
}

/// The lexer alone over `src` (a checksum of its tokens): measures how much of a parse is
/// tokenizing.
pub(crate) fn lex_count(src: &str) -> usize {
    let mut lx = Lexer::new(src);
    let mut n = 0usize;
    while let Some(t) = lx.next() {
        if let Ok(t) = t {
            n = n.wrapping_add(t.span.column as usize ^ t.span.line as usize ^ t.span.end);
            if let Tok::Word(w, _) = t.tok {
                n = n.wrapping_add(w.len());
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<String> {
        let mut lx = Lexer::new(src);
        let mut out = Vec::new();
        while let Some(t) = lx.next() {
            out.push(match t {
                Ok(Token { tok: Tok::Eq, .. }) => "=".to_string(),
                Ok(Token { tok: Tok::Lb, .. }) => "[".to_string(),
                Ok(Token { tok: Tok::Rb, .. }) => "]".to_string(),
                Ok(Token {
                    tok: Tok::Word(w, q),
                    ..
                }) => format!("{}{w}{}", if q { "Q<" } else { "<" }, ">"),
                Ok(Token {
                    tok: Tok::Include(p),
                    ..
                }) => format!("INC<{p}>"),
                Err(Stray::SingleQuote(_)) => "'".into(),
                Err(Stray::LoneQuote(_)) => "\"".into(),
                Err(Stray::CommentAtEof(_)) => "#EOF".into(),
                Err(Stray::FatalCr(_)) => "CR".into(),
            });
        }
        out
    }

    #[test]
    fn lexer_matches_getltscfg_tokens() {
        assert_eq!(toks("\tA\t=\tv v\t\n"), ["<A>", "=", "<v v>"]);
        assert_eq!(toks("A=v#c\n"), ["<A>", "=", "<v>"]);
        assert_eq!(toks("A = \"q # = [x]\""), ["<A>", "=", "Q<q # = [x]>"]);
        assert_eq!(
            toks("A = \"x\" # c \"y\"\n"),
            ["<A>", "=", "Q<x\" # c \"y>"]
        );
        assert_eq!(toks("A='x y'"), ["<A>", "=", "'", "<x y>", "'"]);
        assert_eq!(toks("B=c\\\"d"), ["<B>", "=", "<c\\>", "\"", "<d>"]);
        assert_eq!(toks("[ h1 ]"), ["[", "<h1>", "]"]);
        assert_eq!(toks("[\"h1\"]"), ["[", "Q<h1>", "]"]);
        assert_eq!(
            toks("  include /etc/x.conf \n[a]"),
            ["INC</etc/x.conf>", "[", "<a>", "]"]
        );
        assert_eq!(toks("include \"/a b\""), ["INC</a b>"]);
        assert_eq!(toks("Include x"), ["<Include x>"]);
        assert_eq!(toks("x include y"), ["<x include y>"]);
        assert_eq!(
            toks("[a]\r\nA=1\r\n"),
            ["[", "<a>", "]", "CR", "<A>", "=", "<1>"]
        );
        assert_eq!(toks("# c"), ["#EOF"]);
        assert_eq!(toks("# c\n"), Vec::<String>::new());
    }

    #[test]
    fn spans_point_at_tokens() {
        let src = "[a]\n  KEY = \"v\"\n";
        let doc = parse(src);
        let e = doc.entries[0];
        assert_eq!((e.key.span.line, e.key.span.column), (2, 3));
        assert_eq!(&src[e.key.span.bytes()], "KEY");
        assert_eq!(&src[e.value.span.bytes()], "v");
        assert_eq!(e.value.span.column, 10);
    }
}

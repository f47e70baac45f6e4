//! Entry points for cargo-fuzz targets and the corpus replay test. Each must never panic.

use crate::{Client, Dialect, parse as parse_doc, render, resolve as resolve_doc};

/// Parses the input (if UTF-8) in both dialects and renders every diagnostic.
pub fn parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for dialect in [Dialect::Lts5, Dialect::Ltsp19] {
        let doc = parse_doc(text, dialect);
        for d in &doc.diagnostics {
            let _ = d.render("fuzz", text);
            assert!(d.span.start <= d.span.end && d.span.end <= text.len());
        }
        for s in &doc.sections {
            for e in doc.entries_of(s) {
                assert!(e.key.span.end <= text.len() && e.value.span.end <= text.len());
            }
            assert!(s.entries.end <= doc.entries.len());
        }
        let _ = doc.as_getltscfg_would();
    }
    assert!(
        lts5_paths_agree(text),
        "lts5 fast path and token path disagree"
    );
}

/// True when the lts5 parser's plain-line fast path and its token path read `text` into
/// the same document (entries, spans, diagnostics, truncation point). Diagnostics are
/// compared in the order `parse` gives them (sorted by place): the two paths may find
/// problems on different lines in a different order.
pub fn lts5_paths_agree(text: &str) -> bool {
    let read = |fast| {
        let mut doc = crate::lts5::parse_with(text, fast);
        crate::check::sort(&mut doc.diagnostics);
        doc
    };
    read(true) == read(false)
}

/// The first line of the input names the client (`mac ip hostname`, `-` for none); the rest
/// is the file, resolved in both dialects and rendered.
pub fn resolve(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (head, body) = text.split_once('\n').unwrap_or((text, ""));
    let mut ids = head.split(' ').map(|s| (s != "-").then_some(s));
    let client = Client {
        mac: ids.next().flatten(),
        ip: ids.next().flatten(),
        hostname: ids.next().flatten(),
    };
    for dialect in [Dialect::Lts5, Dialect::Ltsp19] {
        let doc = parse_doc(body, dialect);
        for doc in [doc.as_getltscfg_would(), doc] {
            let r = resolve_doc(&doc, &client);
            let (_, _) = render::shell(&r);
            let _ = render::getltscfg(&r);
            for v in &r.vars {
                let _ = r.explain(&v.name);
                // A prefix of the name (up to 4 bytes, cut at a character boundary).
                let cut = (0..=v.name.len().min(4))
                    .rev()
                    .find(|&i| v.name.is_char_boundary(i))
                    .unwrap_or(0);
                let _ = r.list(&v.name[..cut]);
            }
        }
    }
}

/// The lts5 lexer alone (a checksum of its tokens), for the benchmarks.
pub fn lex_count(text: &str) -> usize {
    crate::lts5::lex_count(text)
}

/// lts5 syntax only, without the document-wide checks, for the benchmarks.
pub fn syntax_only(text: &str) -> usize {
    crate::lts5::parse(text).sections.len()
}

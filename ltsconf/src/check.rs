//! Checks over a whole parsed document, shared by both dialects: duplicate keys and
//! sections, `LIKE` targets and cycles, and the known-variable value rules.

use crate::model::{Dialect, Document, EntryKind};
use crate::{Diagnostic, Kind, known, resolve::same_function};
use std::cmp::Ordering;

pub(crate) fn run(doc: &mut Document<'_>) {
    let mut found = Vec::new();
    duplicate_keys(doc, &mut found);
    let sorted = duplicate_sections(doc, &mut found);
    let any_like = doc
        .sections
        .iter()
        .any(|s| s.entries.iter().any(|e| e.kind == EntryKind::Like));
    if doc.dialect == Dialect::Lts5 && any_like {
        likes(doc, &sorted, &mut found);
    }
    values(doc, &mut found);
    doc.diagnostics.extend(found);
    doc.diagnostics
        .sort_by_key(|d| (d.span.start, d.severity == crate::Severity::Warning));
}

fn cmp_key(dialect: Dialect, a: &str, b: &str) -> Ordering {
    match dialect {
        Dialect::Lts5 => a
            .bytes()
            .map(|c| c.to_ascii_lowercase())
            .cmp(b.bytes().map(|c| c.to_ascii_lowercase())),
        Dialect::Ltsp19 => a.cmp(b),
    }
}

fn duplicate_keys(doc: &Document<'_>, out: &mut Vec<Diagnostic>) {
    let mut idx: Vec<usize> = Vec::new();
    for s in &doc.sections {
        let same = |a: usize, b: usize| {
            cmp_key(doc.dialect, s.entries[a].key.text, s.entries[b].key.text) == Ordering::Equal
        };
        let mut report = |first: usize, again: usize| {
            let (first, again) = (&s.entries[first], &s.entries[again]);
            out.push(Diagnostic::warning(
                Kind::DuplicateKey,
                again.key.span,
                format!(
                    "`{}` is set again in this section (first at line {}): the last one wins",
                    again.key.text, first.key.span.line
                ),
            ));
        };
        let assigns = || (0..s.entries.len()).filter(|&i| s.entries[i].kind == EntryKind::Assign);
        if s.entries.len() <= 16 {
            // Small sections (nearly all): quadratic, but no allocation.
            for b in assigns() {
                if let Some(a) = assigns()
                    .take_while(|&a| a < b)
                    .filter(|&a| same(a, b))
                    .last()
                {
                    report(a, b);
                }
            }
            continue;
        }
        idx.clear();
        idx.extend(assigns());
        idx.sort_by(|&a, &b| {
            cmp_key(doc.dialect, s.entries[a].key.text, s.entries[b].key.text).then(a.cmp(&b))
        });
        for w in idx.windows(2) {
            if same(w[0], w[1]) {
                report(w[0], w[1]);
            }
        }
    }
}

/// Reports duplicate sections; returns the named sections sorted by name (file order among
/// equals), which the `LIKE` check reuses for lookups.
fn duplicate_sections(doc: &Document<'_>, out: &mut Vec<Diagnostic>) -> Vec<usize> {
    let named: Vec<usize> = (0..doc.sections.len())
        .filter(|&i| !doc.sections[i].unnamed)
        .collect();
    let mut idx = named;
    let norm = |c: u8| {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            b'_'
        }
    };
    let key = |i: usize| -> &str {
        match doc.dialect {
            Dialect::Lts5 => doc.sections[i].name.text,
            Dialect::Ltsp19 => &doc.sections[i].pattern,
        }
    };
    let cmp = |a: usize, b: usize| match doc.dialect {
        Dialect::Lts5 => cmp_key(Dialect::Lts5, key(a), key(b)),
        Dialect::Ltsp19 => key(a).bytes().map(norm).cmp(key(b).bytes().map(norm)),
    };
    idx.sort_unstable_by(|&a, &b| cmp(a, b).then(a.cmp(&b)));
    for w in idx.windows(2) {
        let same = match doc.dialect {
            Dialect::Lts5 => cmp(w[0], w[1]) == Ordering::Equal,
            Dialect::Ltsp19 => same_function(key(w[0]), key(w[1])),
        };
        if !same {
            continue;
        }
        let (first, again) = (&doc.sections[w[0]], &doc.sections[w[1]]);
        out.push(match doc.dialect {
            Dialect::Lts5 => Diagnostic::warning(
                Kind::DuplicateSection,
                again.header,
                format!(
                    "section [{}] again (first at line {}): getltscfg only ever uses the first one, so this one is ignored; merge them",
                    again.name.text, first.header.line
                ),
            ),
            Dialect::Ltsp19 => Diagnostic::warning(
                Kind::DuplicateSection,
                first.header,
                format!(
                    "section [{}] is defined again at line {}: ini2sh keeps only the last definition, so this one is lost; merge them",
                    first.name.text, again.header.line
                ),
            ),
        });
    }
    idx
}

/// `LIKE` targets must exist, and must not lead back (getltscfg would loop forever).
fn likes(doc: &Document<'_>, sorted: &[usize], out: &mut Vec<Diagnostic>) {
    let n = doc.sections.len();
    // `sorted`: sections by name (case-insensitive), file order among equals, so a binary
    // search finds the first section of a name, as getltscfg's walk does.
    let by_name = |name: &str| {
        let at = sorted.partition_point(|&i| {
            cmp_key(Dialect::Lts5, doc.sections[i].name.text, name) == Ordering::Less
        });
        sorted
            .get(at)
            .copied()
            .filter(|&i| doc.sections[i].name.text.eq_ignore_ascii_case(name))
    };
    // Edges: (target section, entry index) per section; only the first of duplicate sections
    // is reachable, like getltscfg.
    let mut edges: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    for (i, s) in doc.sections.iter().enumerate() {
        for (k, e) in s.entries.iter().enumerate() {
            if e.kind != EntryKind::Like {
                continue;
            }
            match by_name(e.value.raw) {
                Some(t) => edges[i].push((t, k)),
                None => out.push(Diagnostic::warning(
                    Kind::LikeMissing,
                    e.value.span,
                    format!(
                        "LIKE names a section [{}] that does not exist: getltscfg ignores it",
                        e.value.raw
                    ),
                )),
            }
        }
    }
    // Iterative DFS (a 10,000-long LIKE chain must not overflow the stack).
    #[derive(Clone, Copy, PartialEq)]
    enum Color {
        White,
        Grey,
        Black,
    }
    let mut color = vec![Color::White; n];
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in 0..n {
        if color[root] != Color::White {
            continue;
        }
        stack.clear();
        stack.push((root, 0));
        color[root] = Color::Grey;
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            if let Some(&(t, k)) = edges[v].get(*next) {
                *next += 1;
                match color[t] {
                    Color::White => {
                        color[t] = Color::Grey;
                        stack.push((t, 0));
                    }
                    Color::Grey => {
                        let start = stack.iter().position(|&(s, _)| s == t).unwrap_or(0);
                        let mut path: Vec<&str> = stack[start..]
                            .iter()
                            .map(|&(s, _)| doc.sections[s].name.text)
                            .collect();
                        path.push(doc.sections[t].name.text);
                        let e = &doc.sections[v].entries[k];
                        out.push(Diagnostic::error(
                            Kind::LikeCycle,
                            e.span(),
                            format!(
                                "LIKE cycle [{}]: getltscfg follows it forever and the client hangs at boot",
                                path.join("] → [")
                            ),
                        ));
                    }
                    Color::Black => {}
                }
            } else {
                color[v] = Color::Black;
                stack.pop();
            }
        }
    }
}

fn values(doc: &Document<'_>, out: &mut Vec<Diagnostic>) {
    for s in &doc.sections {
        for e in &s.entries {
            if e.kind != EntryKind::Assign || !e.value.is_literal() {
                continue;
            }
            if doc.dialect == Dialect::Lts5 && e.value.is_none() {
                continue;
            }
            if let Some(msg) = known::check_value(doc.dialect, e.key.text, &e.value.text()) {
                out.push(Diagnostic::warning(Kind::Value, e.span(), msg));
            }
        }
    }
}

//! Checks over a whole parsed document, shared by both dialects: duplicate keys and
//! sections, `LIKE` targets and cycles, and the known-variable value rules.

use crate::model::{Dialect, Document, Entry, EntryKind};
use crate::names::{Fold, Index, Key};
use crate::{Diagnostic, Kind, known};
use std::cmp::Ordering;

pub(crate) fn run(doc: &mut Document<'_>) {
    let mut found = Vec::new();
    // The per-entry checks section by section, while its entries are in cache.
    let mut idx = Vec::new();
    let mut memo = Memo::default();
    for s in &doc.sections {
        let entries = doc.entries_of(s);
        duplicate_keys(doc.dialect, entries, &mut idx, &mut found);
        values(doc.dialect, entries, &mut memo, &mut found);
    }
    let first = duplicate_sections(doc, &mut found);
    let any_like = doc.entries.iter().any(|e| e.kind == EntryKind::Like);
    if doc.dialect == Dialect::Lts5 && any_like {
        likes(doc, &first, &mut found);
    }
    doc.diagnostics.extend(found);
    sort(&mut doc.diagnostics);
}

/// File order, errors before warnings at the same place; stable, so the order in which the
/// parser happened to find problems at one place is kept.
pub(crate) fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by_key(|d| (d.span.start, d.severity == crate::Severity::Warning));
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

/// The same key twice in one section's `entries` (`idx`: a buffer kept between calls).
fn duplicate_keys(
    dialect: Dialect,
    entries: &[Entry<'_>],
    idx: &mut Vec<usize>,
    out: &mut Vec<Diagnostic>,
) {
    let same =
        |a: usize, b: usize| crate::key_eq(dialect, entries[a].key.text, entries[b].key.text);
    let mut report = |first: usize, again: usize| {
        let (first, again) = (&entries[first], &entries[again]);
        out.push(Diagnostic::warning(
            Kind::DuplicateKey,
            again.key.span,
            format!(
                "`{}` is set again in this section (first at line {}): the last one wins",
                again.key.text, first.key.span.line
            ),
        ));
    };
    let assigns = || (0..entries.len()).filter(|&i| entries[i].kind == EntryKind::Assign);
    if entries.len() <= 16 {
        // Small sections (nearly all): quadratic, but no allocation.
        for (b, e) in entries.iter().enumerate() {
            if e.kind != EntryKind::Assign {
                continue;
            }
            if let Some(a) = entries[..b].iter().rposition(|a| {
                a.kind == EntryKind::Assign && crate::key_eq(dialect, a.key.text, e.key.text)
            }) {
                report(a, b);
            }
        }
        return;
    }
    idx.clear();
    idx.extend(assigns());
    idx.sort_by(|&a, &b| {
        cmp_key(dialect, entries[a].key.text, entries[b].key.text).then(a.cmp(&b))
    });
    for w in idx.windows(2) {
        if same(w[0], w[1]) {
            report(w[0], w[1]);
        }
    }
}

/// Reports duplicate sections; returns lts5's first section for each name (what getltscfg's
/// lookups find), which the `LIKE` check reuses.
fn duplicate_sections(doc: &Document<'_>, out: &mut Vec<Diagnostic>) -> Index {
    let name_of = |i: usize| {
        let s = &doc.sections[i];
        match doc.dialect {
            Dialect::Lts5 => Key(s.name.text, Fold::Ascii),
            Dialect::Ltsp19 => Key(&s.pattern, Fold::Function),
        }
    };
    let mut seen = Index::with_capacity(doc.sections.len());
    for (i, s) in doc.sections.iter().enumerate() {
        if s.unnamed {
            continue;
        }
        // ltsp19: the shell keeps the last function of a name.
        let replace = doc.dialect == Dialect::Ltsp19;
        let Some(prev) = seen.insert(name_of(i), i, replace, name_of) else {
            continue;
        };
        let (first, again) = (&doc.sections[prev], s);
        out.push(match doc.dialect {
            Dialect::Lts5 => Diagnostic::warning(
                Kind::DuplicateSection,
                again.header,
                format!(
                    "section [{}] again (first at line {}): getltscfg only ever uses the first one, so this one is ignored; merge them",
                    again.name.text, first.header.line
                ),
            ),
            Dialect::Ltsp19 => lost(first, again),
        });
    }
    seen
}

fn lost(first: &crate::Section<'_>, again: &crate::Section<'_>) -> Diagnostic {
    Diagnostic::warning(
        Kind::DuplicateSection,
        first.header,
        format!(
            "section [{}] is defined again at line {}: ini2sh keeps only the last definition, so this one is lost; merge them",
            first.name.text, again.header.line
        ),
    )
}

/// `LIKE` targets must exist, and must not lead back (getltscfg would loop forever).
fn likes(doc: &Document<'_>, first: &Index, out: &mut Vec<Diagnostic>) {
    let n = doc.sections.len();
    let by_name = |name: &str| {
        first.get(Key(name, Fold::Ascii), |i| {
            Key(doc.sections[i].name.text, Fold::Ascii)
        })
    };
    // Edges (target section, entry index), grouped by section: section `i`'s are
    // `edges[at[i]..at[i + 1]]`. Only the first of duplicate sections is reachable, like
    // getltscfg.
    let mut edges: Vec<(usize, usize)> = Vec::new();
    let mut at: Vec<usize> = Vec::with_capacity(n + 1);
    for s in &doc.sections {
        at.push(edges.len());
        for (k, e) in doc.entries_of(s).iter().enumerate() {
            if e.kind != EntryKind::Like {
                continue;
            }
            match by_name(e.value.raw) {
                Some(t) => edges.push((t, k)),
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
    at.push(edges.len());
    // A cycle needs a LIKE into a section that has LIKEs itself; the usual file (node
    // sections LIKE a group section) has none, and needs no search.
    if edges.iter().all(|&(t, _)| at[t] == at[t + 1]) {
        return;
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
            if let Some(&(t, k)) = edges[at[v]..at[v + 1]].get(*next) {
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
                        let e = &doc.entries_of(&doc.sections[v])[k];
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

/// Remembers the known-name lookups of repeated keys (HOSTNAME in every section): one slot
/// per small hash of the key, compared byte for byte.
#[derive(Default)]
struct Memo<'d>([(&'d str, Option<&'static known::Known>); 16]);

/// The known-variable value rules for `entries`.
fn values<'d>(
    dialect: Dialect,
    entries: &[Entry<'d>],
    memo: &mut Memo<'d>,
    out: &mut Vec<Diagnostic>,
) {
    for e in entries {
        if e.kind != EntryKind::Assign || !e.value.is_literal() {
            continue;
        }
        if dialect == Dialect::Lts5 && e.value.is_none() {
            continue;
        }
        let key = e.key.text;
        let slot = (key.len() ^ usize::from(key.as_bytes().first().copied().unwrap_or(0))) % 16;
        let known = match memo.0[slot] {
            (k, known) if k == key && !k.is_empty() => known,
            _ => {
                let known = known::lookup(dialect, key);
                memo.0[slot] = (key, known);
                known
            }
        };
        if let Some(msg) = known::check_known(dialect, known, key, &e.value.text()) {
            out.push(Diagnostic::warning(Kind::Value, e.span(), msg));
        }
    }
}

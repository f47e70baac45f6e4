//! Just enough POSIX shell to read and write one word: find where an ltsp.conf value ends,
//! decide whether its value is known without running anything, and quote a string so that
//! `eval` gives it back byte for byte.

use std::borrow::Cow;

/// Where a shell word starting at `i` ends, or `Err(quote_start)` for a quote, `$(`, `${`
/// or backtick that the input never closes. Words may span lines inside quotes.
pub(crate) fn scan_word(b: &[u8], mut i: usize) -> Result<usize, usize> {
    while let Some(&c) = b.get(i) {
        match c {
            b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'<' | b'>' | b'(' | b')' => break,
            b'\\' => i += 2,
            b'\'' => i = single(b, i)?,
            b'"' => i = double(b, i)?,
            b'`' => i = backtick(b, i)?,
            b'$' => i = dollar(b, i)?,
            _ => i += 1,
        }
    }
    Ok(i.min(b.len()))
}

fn single(b: &[u8], i: usize) -> Result<usize, usize> {
    match b[i + 1..].iter().position(|&c| c == b'\'') {
        Some(j) => Ok(i + j + 2),
        None => Err(i),
    }
}

fn double(b: &[u8], i: usize) -> Result<usize, usize> {
    let mut j = i + 1;
    loop {
        match b.get(j) {
            None => return Err(i),
            Some(b'\\') => j += 2,
            Some(b'"') => return Ok(j + 1),
            Some(b'`') => j = backtick(b, j)?,
            Some(b'$') => j = dollar(b, j)?,
            Some(_) => j += 1,
        }
    }
}

fn backtick(b: &[u8], i: usize) -> Result<usize, usize> {
    let mut j = i + 1;
    loop {
        match b.get(j) {
            None => return Err(i),
            Some(b'\\') => j += 2,
            Some(b'`') => return Ok(j + 1),
            Some(_) => j += 1,
        }
    }
}

/// `$(...)`, `$((...))`, `${...}` or a plain `$`.
fn dollar(b: &[u8], i: usize) -> Result<usize, usize> {
    let (open, close) = match b.get(i + 1) {
        Some(b'(') => (b'(', b')'),
        Some(b'{') => (b'{', b'}'),
        _ => return Ok(i + 1),
    };
    let mut depth = 1usize;
    let mut j = i + 2;
    loop {
        match b.get(j) {
            None => return Err(i),
            Some(b'\\') => j += 2,
            Some(b'\'') if open == b'(' => j = single(b, j)?,
            Some(b'"') => j = double(b, j)?,
            Some(b'`') => j = backtick(b, j)?,
            Some(&c) if c == open => {
                depth += 1;
                j += 1;
            }
            Some(&c) if c == close => {
                depth -= 1;
                j += 1;
                if depth == 0 {
                    return Ok(j);
                }
            }
            Some(_) => j += 1,
        }
    }
}

/// The string a shell assigns for the word `raw` in `NAME=raw`, when it needs no expansion;
/// `None` when it contains `$`, a backtick or an unquoted `~` (their value depends on the
/// client), or is malformed.
pub(crate) fn decode_word(raw: &str) -> Option<Cow<'_, str>> {
    let b = raw.as_bytes();
    if !b
        .iter()
        .any(|c| matches!(c, b'\\' | b'\'' | b'"' | b'$' | b'`' | b'~'))
    {
        return Some(Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'$' | b'`' | b'~' => return None,
            b'\\' => {
                match b.get(i + 1) {
                    Some(b'\n') => {}
                    Some(&c) => out.push(c),
                    None => return None,
                }
                i += 2;
            }
            b'\'' => {
                let end = i + 1 + b[i + 1..].iter().position(|&c| c == b'\'')?;
                out.extend_from_slice(&b[i + 1..end]);
                i = end + 1;
            }
            b'"' => {
                i += 1;
                loop {
                    match *b.get(i)? {
                        b'"' => break,
                        b'$' | b'`' => return None,
                        b'\\' => {
                            let c = *b.get(i + 1)?;
                            match c {
                                b'\n' => {}
                                b'$' | b'`' | b'"' | b'\\' => out.push(c),
                                _ => out.extend_from_slice(&[b'\\', c]),
                            }
                            i += 2;
                        }
                        c => {
                            out.push(c);
                            i += 1;
                        }
                    }
                }
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    // Only ASCII bytes were removed, so the rest is still UTF-8.
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// Quotes `value` as one shell word that `eval` turns back into exactly `value`.
///
/// Plain words stay bare; everything else is single-quoted (`'` written as `'\''`). After each
/// newline the quote is closed and reopened (`'a⏎''b'`) so that no continuation line can start
/// with `[`, `include=` or `NAME=`, which LTSP 19's `ini2sh` would rewrite even inside quotes.
/// A NUL byte cannot live in a shell variable: callers reject such values first.
pub fn quote(value: &str) -> Cow<'_, str> {
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_@%+:,./-".contains(&c));
    if plain {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("'\\''"),
            '\n' => out.push_str("\n''"),
            c => out.push(c),
        }
    }
    out.push('\'');
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_end_where_the_shell_ends_them() {
        fn w(s: &str) -> Result<&str, usize> {
            scan_word(s.as_bytes(), 0).map(|e| &s[..e])
        }
        assert_eq!(w("abc def"), Ok("abc"));
        assert_eq!(w("\"a b\"c d"), Ok("\"a b\"c"));
        assert_eq!(w("'x\ny' z"), Ok("'x\ny'"));
        assert_eq!(w("$(echo \"a)\" b)x y"), Ok("$(echo \"a)\" b)x"));
        assert_eq!(w("${x:-a b}c;d"), Ok("${x:-a b}c"));
        assert_eq!(w("a#b c"), Ok("a#b"));
        assert_eq!(w("\"open"), Err(0));
        assert_eq!(w("x'open"), Err(1));
    }

    #[test]
    fn decode_knows_static_words_only() {
        assert_eq!(decode_word("plain").as_deref(), Some("plain"));
        assert_eq!(decode_word("\"a b\"").as_deref(), Some("a b"));
        assert_eq!(decode_word("'a\"b'\"'c'\"").as_deref(), Some("a\"b'c'"));
        assert_eq!(decode_word("\"a\\$b\\x\"").as_deref(), Some("a$b\\x"));
        assert_eq!(decode_word("a\\ b").as_deref(), Some("a b"));
        assert_eq!(decode_word("\"${nfs_ip}:/home\""), None);
        assert_eq!(decode_word("~/x"), None);
        assert_eq!(decode_word("'~/x'").as_deref(), Some("~/x"));
    }

    #[test]
    fn quote_is_bare_only_for_plain_words() {
        assert_eq!(quote("198.18.0.1"), "198.18.0.1");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
        assert_eq!(quote("a\n[x]"), "'a\n''[x]'");
    }
}

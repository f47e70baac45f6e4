//! GNU version sort (`sort -V`, gnulib `filevercmp`), which orders LTSP5's numbered variables:
//! LTSP5 runs `env | sort -V` on whole `NAME=value` lines, so `RCFILE_2` comes before
//! `RCFILE_10`, and equal names tie-break on the value.

use std::cmp::Ordering;

/// `sort -V`'s order of two lines: `filevercmp`, then plain byte order when it finds them
/// equal (sort's last-resort comparison in the C locale).
pub fn sort_v(a: &str, b: &str) -> Ordering {
    filevercmp(a.as_bytes(), b.as_bytes()).then_with(|| a.as_bytes().cmp(b.as_bytes()))
}

/// gnulib's `filevercmp`: empty and dot-file special cases, then `verrevcmp` without the
/// file suffixes (`(\.[A-Za-z~][A-Za-z0-9~]*)*$`), then with them if that was a tie.
pub fn filevercmp(a: &[u8], b: &[u8]) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        _ => {}
    }
    for special in [&b"."[..], b".."] {
        match (a == special, b == special) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
    }
    match (a[0] == b'.', b[0] == b'.') {
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        _ => {}
    }
    let (ap, bp) = (prefix_len(a), prefix_len(b));
    let one_pass = ap == a.len() && bp == b.len();
    let r = verrevcmp(&a[..ap], &b[..bp]);
    if r != Ordering::Equal || one_pass {
        r
    } else {
        verrevcmp(a, b)
    }
}

/// Length of `s` without its file suffix (gnulib `file_prefixlen`).
fn prefix_len(s: &[u8]) -> usize {
    let n = s.len();
    let mut prefix = 0;
    let mut i = 0;
    loop {
        if i == n {
            return prefix;
        }
        i += 1;
        prefix = i;
        while i + 1 < n && s[i] == b'.' && (s[i + 1].is_ascii_alphabetic() || s[i + 1] == b'~') {
            i += 2;
            while i < n && (s[i].is_ascii_alphanumeric() || s[i] == b'~') {
                i += 1;
            }
        }
    }
}

/// The weight of a non-digit byte: letters first, then `~` before everything (even the end),
/// then all other bytes after letters.
fn order(c: u8) -> i32 {
    if c.is_ascii_digit() {
        0
    } else if c.is_ascii_alphabetic() {
        i32::from(c)
    } else if c == b'~' {
        -1
    } else {
        i32::from(c) + 256
    }
}

/// Debian's version comparison as gnulib implements it: alternate non-digit runs (compared by
/// [`order`]) and digit runs (compared numerically, leading zeros ignored).
fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let ac = a.get(i).map_or(0, |&c| order(c));
            let bc = b.get(j).map_or(0, |&c| order(c));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while i < a.len() && j < b.len() && a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if i < a.len() && a[i].is_ascii_digit() {
            return Ordering::Greater;
        }
        if j < b.len() && b[j].is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_sort_by_value() {
        let mut v = vec!["RCFILE_10=c", "RCFILE_2=b", "RCFILE_1=a", "RCFILE_01_X=z"];
        v.sort_by(|a, b| sort_v(a, b));
        // As `LC_ALL=C sort -V` prints them.
        assert_eq!(
            v,
            ["RCFILE_1=a", "RCFILE_01_X=z", "RCFILE_2=b", "RCFILE_10=c"]
        );
    }
}

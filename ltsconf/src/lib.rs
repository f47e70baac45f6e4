//! lts.conf (LTSP5) and ltsp.conf (LTSP 19+): lexer, parser, resolver and safe shell renderer.
//!
//! Everything borrows from the input: section names, keys and values are slices of the file
//! with their [`Span`]s, so diagnostics can point at the exact byte.
//!
//! ```
//! use netboot_ltsconf::Span;
//! let text = "[Default]\nSERVER = 198.18.0.1\n";
//! let span = Span::at(text, text.find("SERVER").unwrap(), 6);
//! assert_eq!((span.line, span.column), (2, 1));
//! ```

use std::ops::Range;

/// Where a token sits in its file: 1-based line and column (in bytes) and the byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// 1-based line number.
    pub line: u32,
    /// 1-based column, counted in bytes.
    pub column: u32,
    /// The token's bytes in the input.
    pub bytes: Range<usize>,
}

impl Span {
    /// The span of `len` bytes at `offset` in `text`; offsets past the end are clamped.
    pub fn at(text: &str, offset: usize, len: usize) -> Span {
        let offset = offset.min(text.len());
        let before = &text.as_bytes()[..offset];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        Span {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(offset - line_start + 1).unwrap_or(u32::MAX),
            bytes: offset..offset.saturating_add(len).min(text.len()),
        }
    }
}

#[doc(hidden)]
pub mod fuzzing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_count_lines_and_columns_from_one() {
        let text = "# c\n[Default]\n  LDM_DIRECTX = True\n";
        let at = text.find("LDM").unwrap();
        assert_eq!(
            Span::at(text, at, 11),
            Span {
                line: 3,
                column: 3,
                bytes: at..at + 11
            }
        );
        assert_eq!(Span::at(text, 999, 5).bytes, text.len()..text.len());
    }
}

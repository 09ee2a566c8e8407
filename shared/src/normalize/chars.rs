//! Character classes exactly as Meta's param-builder (JavaScript) sees them.
//!
//! JavaScript's `\s` and `String.prototype.trim` use a fixed set that differs from
//! Rust's `char::is_whitespace` (JS includes U+FEFF, excludes U+0085), so hashes
//! only match Meta's when we use the same set.

/// JavaScript's `\s`: WhiteSpace plus LineTerminator.
pub(crate) fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ' | '\u{A0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200A}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202F}'
                | '\u{205F}'
                | '\u{3000}'
                | '\u{FEFF}'
    )
}

/// A control character that is not whitespace to JavaScript (NUL, BEL, DEL, the C1
/// range …): pasted from spreadsheets or form tools, never part of a name, place or
/// address, and so removed before any field is normalised. Tabs and newlines stay:
/// they are whitespace, and each field already treats whitespace its own way.
fn is_stray_control(c: char) -> bool {
    c.is_control() && !is_js_space(c)
}

/// `input` without its stray control characters, borrowed when it has none (nearly
/// always), so the common path allocates nothing.
pub(crate) fn without_controls(input: &str) -> std::borrow::Cow<'_, str> {
    if input.contains(is_stray_control) {
        std::borrow::Cow::Owned(input.chars().filter(|c| !is_stray_control(*c)).collect())
    } else {
        std::borrow::Cow::Borrowed(input)
    }
}

/// ASCII punctuation as listed by param-builder: ``!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~``.
pub(crate) fn is_ascii_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
}

/// `String.prototype.trim`.
pub(crate) fn js_trim(s: &str) -> &str {
    s.trim_matches(is_js_space)
}

/// Already a SHA-256 (64 hex, any case) or MD5 (32 lowercase hex) digest: Meta accepts
/// it as sent, so it is passed through rather than hashed twice.
pub(crate) fn looks_like_hashed(s: &str) -> bool {
    let b = s.as_bytes();
    (b.len() == 64 && b.iter().all(u8::is_ascii_hexdigit))
        || (b.len() == 32 && b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')))
}

/// Length as JavaScript counts it (UTF-16 code units), for param-builder's length checks.
pub(crate) fn js_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Collects at most `capacity` bytes of characters without regrowing: the
/// normalisers only ever drop or case-fold ASCII, so the input's length suffices.
pub(crate) fn collect_sized(chars: impl Iterator<Item = char>, capacity: usize) -> String {
    let mut out = String::with_capacity(capacity);
    out.extend(chars);
    out
}

//! Turning header bytes into IMAP strings that always encode.

use data_encoding::BASE64;
use imap_codec::imap_types::core::{IString, NString, Quoted};

/// An IMAP string for `bytes`: quoted when it can be, a literal otherwise. NUL, CR and LF are
/// dropped first — no quoted string may hold them and a NUL is in no IMAP string at all —
/// so this cannot fail.
pub(super) fn istring(bytes: &[u8]) -> IString<'static> {
    let clean: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !matches!(b, 0 | b'\r' | b'\n'))
        .collect();
    // Unreachable after the filter above; an empty string is the harmless answer.
    IString::try_from(clean).unwrap_or_else(|_| IString::Quoted(Quoted::unvalidated("")))
}

pub(super) fn nstring(bytes: Option<&[u8]>) -> NString<'static> {
    NString(bytes.map(istring))
}

/// A decoded (UTF-8) header text in a form an IMAP4rev1 client expects in ENVELOPE and
/// BODYSTRUCTURE: as is when ASCII, otherwise as one RFC 2047 encoded word, which is how
/// mail-parser's decoded names and parameters get back to the undecoded form clients decode.
pub(super) fn encoded_word(text: &str) -> Vec<u8> {
    if text.is_ascii() {
        return text.as_bytes().to_vec();
    }
    format!("=?UTF-8?B?{}?=", BASE64.encode(text.as_bytes())).into_bytes()
}

/// A token (type, subtype, parameter name) the way RFC 9051's examples write them.
pub(super) fn upper(s: &str) -> IString<'static> {
    istring(s.to_ascii_uppercase().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istring_never_fails() {
        assert!(matches!(istring(b"plain"), IString::Quoted(_)));
        assert!(matches!(
            istring("caf\u{e9}".as_bytes()),
            IString::Literal(_)
        ));
        assert!(matches!(istring(b"a\0b\r\nc"), IString::Quoted(_)));
        assert_eq!(istring(b"a\0b\r\nc").into_inner().as_ref(), b"abc");
    }

    #[test]
    fn encoded_word_only_for_non_ascii() {
        assert_eq!(encoded_word("Ann"), b"Ann");
        assert_eq!(encoded_word("\u{e9}"), b"=?UTF-8?B?w6k=?=");
    }
}

//! `BINARY[part]` (RFC 3516): a part's content with its transfer encoding undone, using
//! mail-parser's own decoders so that BINARY and SEARCH read the same content.

use std::borrow::Cow;
use std::num::NonZeroU32;

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::parsers::MessageStream;

use super::tree::Node;
use super::BinaryError;

pub(super) fn binary<'a>(
    root: &Node<'_, 'a>,
    path: &[NonZeroU32],
) -> Result<Cow<'a, [u8]>, BinaryError> {
    let node = root.resolve(path).ok_or(BinaryError::NoPart)?;
    let body = node.body_bytes();
    let cte = node
        .mime_value("Content-Transfer-Encoding")
        .map(|v| token(&v))
        .unwrap_or_default();
    match cte.as_str() {
        "" | "7bit" | "8bit" | "binary" => Ok(body),
        "base64" => base64(&body).map(Cow::Owned).ok_or(BinaryError::UnknownCte),
        "quoted-printable" => Ok(quoted_printable(body)),
        _ => Err(BinaryError::UnknownCte),
    }
}

/// The encoding's name, lower-cased, without any trailing comment.
fn token(value: &[u8]) -> String {
    let end = value
        .iter()
        .position(|b| b.is_ascii_whitespace() || matches!(b, b';' | b'('))
        .unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end]).to_ascii_lowercase()
}

/// The MIME decoder skips line breaks and stops at padding; base64 that carries stray
/// characters (a signature line, a mangled relay) is retried with only the alphabet kept,
/// as the lenient decoders of mail clients do. Only what still fails is refused.
fn base64(body: &[u8]) -> Option<Vec<u8>> {
    let (end, bytes) = MessageStream::new(body).decode_base64_mime(b"");
    if end != usize::MAX {
        return Some(bytes.into_owned());
    }
    let kept: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        .collect();
    base64_decode(&kept)
}

/// Quoted-printable decoding never refuses: a malformed escape is kept as written, which
/// is what RFC 2045 §6.7 advises a robust decoder to do.
fn quoted_printable(body: Cow<'_, [u8]>) -> Cow<'_, [u8]> {
    let (end, bytes) = MessageStream::new(&body).decode_quoted_printable_mime(b"");
    if end != usize::MAX {
        return Cow::Owned(bytes.into_owned());
    }
    match quoted_printable_decode(&body) {
        Some(decoded) => Cow::Owned(decoded),
        None => body,
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::super::tests::{MIXED, NESTED};
    use super::super::{BinaryError, MessageView};

    fn path(p: &[u32]) -> Vec<NonZeroU32> {
        p.iter().filter_map(|&n| NonZeroU32::new(n)).collect()
    }

    fn one_part(cte: &str, body: &str) -> Vec<u8> {
        format!("Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{body}")
            .into_bytes()
    }

    #[test]
    fn base64_is_decoded() {
        let view = MessageView::parse(MIXED);
        assert_eq!(view.binary(&path(&[2])).as_deref(), Ok(&b"%PDF-1.4\n"[..]));
        let raw = one_part("BASE64", "SGVsbG8s\r\nIHdvcmxk\r\n");
        let view = MessageView::parse(&raw);
        assert_eq!(
            view.binary(&path(&[1])).as_deref(),
            Ok(&b"Hello, world"[..])
        );
        // Stray characters are skipped rather than refused.
        let raw = one_part("base64", "SGVs*bG8=\r\n");
        let view = MessageView::parse(&raw);
        assert_eq!(view.binary(&path(&[1])).as_deref(), Ok(&b"Hello"[..]));
    }

    #[test]
    fn quoted_printable_is_decoded() {
        let raw = one_part("quoted-printable", "caf=C3=A9 =\r\nsoft break=3D\r\n");
        let view = MessageView::parse(&raw);
        assert_eq!(
            view.binary(&path(&[1])).as_deref(),
            Ok("caf\u{e9} soft break=\r\n".as_bytes())
        );
        let raw = one_part("quoted-printable", "bad == escape");
        assert!(MessageView::parse(&raw).binary(&path(&[1])).is_ok());
    }

    #[test]
    fn identity_unknown_and_missing() {
        let view = MessageView::parse(MIXED);
        assert_eq!(
            view.binary(&path(&[1, 1])).as_deref(),
            Ok(&b"Hello world.\r\n"[..])
        );
        assert_eq!(view.binary(&path(&[3])), Err(BinaryError::NoPart));
        assert_eq!(view.binary(&path(&[1, 9])), Err(BinaryError::NoPart));
        assert_eq!(view.binary(&[]).as_deref(), Ok(MIXED));
        let raw = one_part("x-uuencode", "begin 644 a\r\n");
        let view = MessageView::parse(&raw);
        assert_eq!(view.binary(&path(&[1])), Err(BinaryError::UnknownCte));
        let raw = one_part("8bit (plain)", "caf\u{e9}\r\n");
        let view = MessageView::parse(&raw);
        assert_eq!(
            view.binary(&path(&[1])).as_deref(),
            Ok("caf\u{e9}\r\n".as_bytes())
        );
        // An encapsulated message comes back as it is.
        let view = MessageView::parse(NESTED);
        assert!(view
            .binary(&path(&[2]))
            .is_ok_and(|b| b.starts_with(b"Subject: inner")));
    }
}

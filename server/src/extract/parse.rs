//! mail-parser glue: envelope fields, the decoded bodies and the attachment list.
//!
//! mail-parser already decodes transfer encodings, charsets and RFC 2047 words, and files
//! each MIME part as text body, HTML body or attachment (it walks multipart/alternative,
//! /related and /mixed). When a message has only one of the two bodies it lists that part
//! under both; we take only parts of the matching type, so `text` is really text/plain and
//! `html` really text/html.

use std::sync::LazyLock;

use mail_parser::{Address, HeaderValue, Message, MessagePart, MimeHeaders, PartType};
use regex::Regex;

use super::text::re;
use super::{Addr, AttachmentInfo, Extracted};

/// The decoded bodies of a message, before any cleaning.
pub(crate) struct Bodies {
    /// text/plain exactly as decoded.
    pub text: Option<String>,
    /// The same with format=flowed lines joined (RFC 3676), for extraction.
    pub text_unflowed: Option<String>,
    pub html: Option<String>,
}

/// Envelope and header fields (the raw header list only `with_headers`); bodies,
/// attachments and derived fields are left default.
pub(crate) fn envelope(message: &Message<'_>, with_headers: bool) -> Extracted {
    Extracted {
        subject: message.subject().unwrap_or_default().trim().to_string(),
        from: message
            .from()
            .and_then(|a| addrs(Some(a)).into_iter().next()),
        to: addrs(message.to()),
        cc: addrs(message.cc()),
        reply_to: addrs(message.reply_to()),
        date: message
            .date()
            .filter(|d| d.is_valid())
            .map(|d| d.to_timestamp()),
        message_id: message.message_id().and_then(clean_id),
        in_reply_to: ids(message.in_reply_to()),
        references: ids(message.references()),
        headers: if with_headers {
            raw_headers(message)
        } else {
            Vec::new()
        },
        ..Extracted::default()
    }
}

pub(crate) fn bodies(message: &Message<'_>) -> Bodies {
    let (text, unflowed): (Vec<String>, Vec<String>) = message
        .text_bodies()
        .filter_map(|part| match &part.body {
            PartType::Text(t) => Some((
                t.to_string(),
                if is_flowed(part) {
                    unflow(t, delsp(part))
                } else {
                    t.to_string()
                },
            )),
            _ => None,
        })
        .unzip();
    let html: Vec<&str> = message
        .html_bodies()
        .filter_map(|part| match &part.body {
            PartType::Html(h) => Some(h.as_ref()),
            _ => None,
        })
        .collect();
    Bodies {
        text: (!text.is_empty()).then(|| text.join("\n\n")),
        text_unflowed: (!unflowed.is_empty()).then(|| unflowed.join("\n\n")),
        html: (!html.is_empty()).then(|| html.join("\n")),
    }
}

pub(crate) fn attachments(message: &Message<'_>) -> Vec<AttachmentInfo> {
    message
        .attachments()
        .enumerate()
        .map(|(i, part)| info(i, part))
        .collect()
}

pub(crate) fn attachment(message: &Message<'_>, id: u32) -> Option<(AttachmentInfo, Vec<u8>)> {
    let part = message.attachment(id)?;
    Some((info(id as usize, part), part.contents().to_vec()))
}

/// HTTP(S) targets of `List-Unsubscribe` (RFC 2369); mailto: targets are not links.
pub(crate) fn list_unsubscribe_urls(message: &Message<'_>) -> Vec<String> {
    static ANGLE_URL: LazyLock<Regex> = LazyLock::new(|| re(r"<\s*(https?://[^>\s]+)\s*>"));
    raw_headers(message)
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("List-Unsubscribe"))
        .flat_map(|(_, value)| {
            ANGLE_URL
                .captures_iter(value)
                .filter_map(|c| c.get(1).map(|m| m.as_str().to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn info(index: usize, part: &MessagePart<'_>) -> AttachmentInfo {
    let content_type = match part.content_type() {
        Some(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        },
        None => match part.body {
            PartType::Text(_) => "text/plain".to_string(),
            PartType::Html(_) => "text/html".to_string(),
            PartType::Message(_) => "message/rfc822".to_string(),
            _ => "application/octet-stream".to_string(),
        },
    }
    .to_ascii_lowercase();
    AttachmentInfo {
        id: u32::try_from(index).unwrap_or(u32::MAX),
        filename: part
            .attachment_name()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string),
        content_type,
        size: part.len() as u64,
    }
}

fn addrs(address: Option<&Address<'_>>) -> Vec<Addr> {
    let Some(address) = address else {
        return Vec::new();
    };
    address
        .iter()
        .filter_map(|a| {
            let email = a.address()?.trim();
            if email.is_empty() {
                return None;
            }
            Some(Addr {
                name: a
                    .name()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_string),
                email: email.to_string(),
            })
        })
        .collect()
}

fn ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(t) => clean_id(t).into_iter().collect(),
        HeaderValue::TextList(list) => list.iter().filter_map(|t| clean_id(t)).collect(),
        _ => Vec::new(),
    }
}

fn clean_id(id: &str) -> Option<String> {
    let id = id
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// Top-level headers as written: the name's own spelling and the value unfolded
/// (RFC 5322 §2.2.3: folding CRLFs removed) and trimmed. Non-UTF-8 bytes are replaced,
/// not dropped, so the list always has every field.
fn raw_headers(message: &Message<'_>) -> Vec<(String, String)> {
    let raw = message.raw_message();
    message
        .root_part()
        .headers()
        .iter()
        .map(|h| {
            let name = slice(raw, h.offset_field(), h.offset_start());
            let name = name.trim().trim_end_matches(':').trim_end().to_string();
            let value: String = slice(raw, h.offset_start(), h.offset_end())
                .chars()
                .filter(|c| *c != '\r' && *c != '\n')
                .collect();
            (name, value.trim().to_string())
        })
        .collect()
}

fn slice(raw: &[u8], start: u32, end: u32) -> String {
    let (start, end) = (start as usize, end as usize);
    raw.get(start..end.min(raw.len()))
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

fn is_flowed(part: &MessagePart<'_>) -> bool {
    part.content_type()
        .and_then(|ct| ct.attribute("format"))
        .is_some_and(|f| f.eq_ignore_ascii_case("flowed"))
}

fn delsp(part: &MessagePart<'_>) -> bool {
    part.content_type()
        .and_then(|ct| ct.attribute("delsp"))
        .is_some_and(|f| f.eq_ignore_ascii_case("yes"))
}

/// RFC 3676 format=flowed: a line ending in a space continues on the next line (same quote
/// depth). Done here because quote and code detection work line by line.
fn unflow(text: &str, delsp: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut open: Option<usize> = None; // quote depth of an unfinished flowed line
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let depth = line.chars().take_while(|c| *c == '>').count();
        let mut content = &line[depth..];
        if let Some(rest) = content.strip_prefix(' ') {
            content = rest; // space-stuffing
        }
        if open != Some(depth) {
            if open.is_some() {
                out.push('\n');
            }
            out.push_str(&">".repeat(depth));
            if depth > 0 {
                out.push(' ');
            }
        }
        let flowed = content.ends_with(' ') && content.trim() != "--";
        if flowed {
            out.push_str(if delsp {
                &content[..content.len() - 1]
            } else {
                content
            });
            open = Some(depth);
        } else {
            out.push_str(content);
            out.push('\n');
            open = None;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn msg(raw: &str) -> Message<'_> {
        MessageParser::default().parse(raw.as_bytes()).unwrap()
    }

    #[test]
    fn envelope_fields() {
        let raw = "From: \"Jane Doe\" <jane@example.com>\r\nTo: a@example.com, Bob <b@example.com>\r\n\
                   Cc: undisclosed:;\r\nReply-To: <r@example.com>\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n\
                   Date: Mon, 8 Jan 2024 10:12:00 +0000\r\nMessage-ID: <abc@x.example>\r\n\
                   In-Reply-To: <p@x.example>\r\nReferences: <o@x.example>\r\n <p@x.example>\r\n\r\nbody\r\n";
        let m = msg(raw);
        let e = envelope(&m, true);
        assert_eq!(e.subject, "Grüße");
        assert_eq!(
            e.from,
            Some(Addr {
                name: Some("Jane Doe".into()),
                email: "jane@example.com".into()
            })
        );
        assert_eq!(e.to.len(), 2);
        assert_eq!(e.to[1].name.as_deref(), Some("Bob"));
        assert!(e.cc.is_empty());
        assert_eq!(e.reply_to[0].email, "r@example.com");
        assert_eq!(e.date, Some(1_704_708_720));
        assert_eq!(e.message_id.as_deref(), Some("abc@x.example"));
        assert_eq!(e.in_reply_to, vec!["p@x.example"]);
        assert_eq!(e.references, vec!["o@x.example", "p@x.example"]);
        let refs = e.headers.iter().find(|(n, _)| n == "References").unwrap();
        assert_eq!(refs.1, "<o@x.example> <p@x.example>");
        assert_eq!(e.headers[0].0, "From");
    }

    #[test]
    fn bodies_are_typed() {
        let raw = "Subject: x\r\nContent-Type: text/html\r\n\r\n<p>Hi</p>\r\n";
        let b = bodies(&msg(raw));
        assert!(b.text.is_none());
        assert_eq!(b.html.as_deref().map(str::trim), Some("<p>Hi</p>"));
    }

    #[test]
    fn flowed_text_kept_as_sent_and_unflowed_for_extraction() {
        let raw =
            "Subject: x\r\nContent-Type: text/plain; format=flowed\r\n\r\nOne long \r\nline.\r\n";
        let b = bodies(&msg(raw));
        assert_eq!(b.text.as_deref(), Some("One long \r\nline.\r\n"));
        assert_eq!(b.text_unflowed.as_deref(), Some("One long line.\n\n"));
    }

    #[test]
    fn list_unsubscribe_http_only() {
        let raw = "Subject: x\r\nList-Unsubscribe: <mailto:u@example.com>,\r\n <https://ex.example/u?id=1>\r\n\r\nb\r\n";
        assert_eq!(
            list_unsubscribe_urls(&msg(raw)),
            vec!["https://ex.example/u?id=1"]
        );
    }

    #[test]
    fn unflow_joins_soft_breaks() {
        let t =
            "This is a long \r\nline that flows.\r\n> quoted \r\n> more\r\nend\r\n-- \r\nsig\r\n";
        assert_eq!(
            unflow(t, false),
            "This is a long line that flows.\n> quoted more\nend\n-- \nsig\n\n"
        );
        assert_eq!(unflow("ab \r\ncd\r\n", true), "abcd\n\n");
    }
}

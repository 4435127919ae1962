//! TEMPORARY stand-in for the extract module, written on the `mailbox` branch so the mailbox
//! compiles and tests. It has exactly the public API the real module provides; the lead
//! replaces this file with the real one at merge time. It is crude on purpose: no quote or
//! signature stripping, no codes, no links.

use mail_parser::{HeaderValue, MessageParser, MimeHeaders};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Extracted {
    pub subject: String,
    pub from: Option<Addr>,
    pub to: Vec<Addr>,
    pub cc: Vec<Addr>,
    pub reply_to: Vec<Addr>,
    pub date: Option<i64>,
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    pub extracted_text: String,
    pub preview: String,
    pub codes: Vec<Code>,
    pub links: Vec<Link>,
    pub attachments: Vec<AttachmentInfo>,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Addr {
    pub name: Option<String>,
    pub email: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Code {
    pub code: String,
    pub context: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Link {
    pub url: String,
    pub kind: LinkKind,
    pub text: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    Verification,
    SignIn,
    PasswordReset,
    Unsubscribe,
    Other,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AttachmentInfo {
    pub id: u32,
    pub filename: Option<String>,
    pub content_type: String,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("the message has no parseable header")]
    Unparseable,
}

fn addrs(v: Option<&mail_parser::Address<'_>>) -> Vec<Addr> {
    v.map(|a| {
        a.iter()
            .filter_map(|x| {
                Some(Addr {
                    name: x.name.as_ref().map(|n| n.to_string()),
                    email: x.address.as_ref()?.to_string(),
                })
            })
            .collect()
    })
    .unwrap_or_default()
}

fn ids(v: &HeaderValue<'_>) -> Vec<String> {
    match v {
        HeaderValue::Text(t) => vec![t.to_string()],
        HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
}

fn content_type(p: &mail_parser::MessagePart<'_>) -> String {
    p.content_type()
        .map(|ct| match &ct.c_subtype {
            Some(s) => format!("{}/{}", ct.c_type, s),
            None => ct.c_type.to_string(),
        })
        .unwrap_or_else(|| "application/octet-stream".into())
        .to_ascii_lowercase()
}

fn attachment_info(id: u32, p: &mail_parser::MessagePart<'_>) -> AttachmentInfo {
    AttachmentInfo {
        id,
        filename: p.attachment_name().map(str::to_string),
        content_type: content_type(p),
        size: p.contents().len() as u64,
    }
}

pub fn parse(raw: &[u8]) -> Result<Extracted, ExtractError> {
    let m = MessageParser::default()
        .parse(raw)
        .ok_or(ExtractError::Unparseable)?;
    let text = m.body_text(0).map(|t| t.into_owned());
    let html = m.body_html(0).map(|t| t.into_owned());
    let extracted_text = text.clone().unwrap_or_default();
    let preview: String = extracted_text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(200)
        .collect();
    Ok(Extracted {
        subject: m.subject().unwrap_or_default().to_string(),
        from: addrs(m.from()).into_iter().next(),
        to: addrs(m.to()),
        cc: addrs(m.cc()),
        reply_to: addrs(m.reply_to()),
        date: m.date().map(|d| d.to_timestamp()),
        message_id: m.message_id().map(str::to_string),
        in_reply_to: ids(m.in_reply_to()),
        references: ids(m.references()),
        text,
        html,
        extracted_text,
        preview,
        codes: Vec::new(),
        links: Vec::new(),
        attachments: m
            .attachments()
            .enumerate()
            .map(|(i, p)| attachment_info(i as u32, p))
            .collect(),
        headers: m
            .headers_raw()
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect(),
    })
}

pub fn attachment(raw: &[u8], id: u32) -> Option<(AttachmentInfo, Vec<u8>)> {
    let m = MessageParser::default().parse(raw)?;
    let p = m.attachment(id)?;
    Some((attachment_info(id, p), p.contents().to_vec()))
}

//! What FETCH sends of one message: the items asked for, each once, planned and encoded
//! (RFC 9051 §6.4.5, BINARY per RFC 3516). The batching and streaming around it is in
//! `fetch.rs`.

use super::Reply;
use crate::imap::render::{self, BinaryError, MessageView};
use crate::mailbox::StoredMessage;
use imap_codec::encode::Encoder;
use imap_codec::imap_types::core::{IString, Literal, LiteralMode, NString, NString8, Vec1};
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::extensions::binary::Literal8;
use imap_codec::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName,
};
use imap_codec::imap_types::response::{Data, Response};
use imap_codec::ResponseCodec;
use std::borrow::Cow;
use std::num::{NonZeroU32, NonZeroU64};

/// What the items ask of each message.
pub(super) struct Plan {
    pub(super) names: Vec<MessageDataItemName<'static>>,
    pub(super) needs_raw: bool,
    /// Every body item is the top-level header (`BODY[HEADER]`, `RFC822.HEADER`): what a
    /// client syncing a mailbox asks, answered from the header alone.
    pub(super) header_only: bool,
    /// Items that can be as large as the message.
    pub(super) content_items: u64,
    pub(super) sets_seen: bool,
}

/// The items, each once (a client naming one twice gets it once), or why not.
/// `max_content`: `imap.max_fetch_content_items`, the items that can each be as large as
/// the message and are built in memory.
pub(super) fn plan(
    items: MacroOrMessageDataItemNames<'static>,
    uid: bool,
    modseq: bool,
    max_content: usize,
) -> Result<Plan, Reply> {
    use MessageDataItemName as N;
    let asked: Vec<N<'static>> = match items {
        MacroOrMessageDataItemNames::Macro(m) => m
            .expand()
            .into_iter()
            .map(imap_codec::imap_types::IntoStatic::into_static)
            .collect(),
        MacroOrMessageDataItemNames::MessageDataItemNames(v) => v,
    };
    let mut names: Vec<N<'static>> = Vec::with_capacity(asked.len());
    for n in asked {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    if uid && !names.contains(&N::Uid) {
        names.insert(0, N::Uid);
    }
    if modseq && !names.contains(&N::ModSeq) {
        names.push(N::ModSeq);
    }
    let light = |n: &N<'_>| {
        matches!(
            n,
            N::Uid | N::Flags | N::InternalDate | N::Rfc822Size | N::ModSeq
        )
    };
    let content_items = names.iter().filter(|n| !light(n)).count();
    if content_items > max_content {
        return Err(Reply::bad(format!(
            "At most {max_content} body, section or structure items per FETCH"
        )));
    }
    let sets_seen = names.iter().any(|n| match n {
        N::BodyExt { peek, .. } | N::Binary { peek, .. } => !peek,
        N::Rfc822 | N::Rfc822Text => true,
        _ => false,
    });
    let header_only = content_items > 0
        && names.iter().all(|n| {
            light(n)
                || matches!(
                    n,
                    N::Rfc822Header
                        | N::BodyExt {
                            section: Some(imap_codec::imap_types::fetch::Section::Header(None)),
                            ..
                        }
                )
        });
    Ok(Plan {
        names,
        needs_raw: content_items > 0,
        header_only,
        content_items: content_items as u64,
        sets_seen,
    })
}

pub(super) fn internal_date(ms: i64) -> Option<DateTime> {
    let utc = chrono::DateTime::from_timestamp_millis(ms)?;
    let fixed = utc.with_timezone(&chrono::FixedOffset::east_opt(0)?);
    DateTime::try_from(fixed).ok()
}

pub(super) fn literal(bytes: Cow<'_, [u8]>) -> NString<'_> {
    NString(Some(IString::Literal(Literal::unvalidated(bytes))))
}

/// The items of one message. `stream_whole`: leave a whole-message item to be streamed
/// (it is encoded as NIL, last, and replaced on the wire).
pub(super) fn items_for<'a>(
    plan: &Plan,
    rec: &StoredMessage,
    view: Option<&'a MessageView<'a>>,
    stream_whole: bool,
    unknown_cte: &mut bool,
) -> (Vec<MessageDataItem<'a>>, Option<MessageDataItem<'a>>) {
    use MessageDataItem as I;
    use MessageDataItemName as N;
    let mut out = Vec::with_capacity(plan.names.len());
    let mut streamed = None;
    for n in &plan.names {
        let item = match n {
            N::Uid => NonZeroU32::new(rec.uid).map(I::Uid),
            N::Flags => Some(I::Flags(super::selected::flags_of(rec))),
            N::InternalDate => internal_date(rec.received_at_ms).map(I::InternalDate),
            N::Rfc822Size => Some(I::Rfc822Size(u32::try_from(rec.size).unwrap_or(u32::MAX))),
            N::ModSeq => NonZeroU64::new(rec.modseq.max(1)).map(I::ModSeq),
            N::Envelope => view.map(|v| I::Envelope(v.envelope())),
            N::Body => view.map(|v| I::Body(v.body_structure(false))),
            N::BodyStructure => view.map(|v| I::BodyStructure(v.body_structure(true))),
            N::Rfc822 => {
                if stream_whole {
                    streamed = Some(I::Rfc822(NString(None)));
                    None
                } else {
                    view.map(|v| I::Rfc822(literal(v.section(None))))
                }
            }
            N::Rfc822Header => view.map(|v| {
                let s = imap_codec::imap_types::fetch::Section::Header(None);
                I::Rfc822Header(literal(v.section(Some(&s))))
            }),
            N::Rfc822Text => view.map(|v| {
                let s = imap_codec::imap_types::fetch::Section::Text(None);
                I::Rfc822Text(literal(v.section(Some(&s))))
            }),
            N::BodyExt {
                section, partial, ..
            } => {
                if stream_whole && section.is_none() && partial.is_none() {
                    streamed = Some(I::BodyExt {
                        section: None,
                        origin: None,
                        data: NString(None),
                    });
                    None
                } else {
                    view.map(|v| {
                        let bytes = v.section(section.as_ref());
                        let data = match partial {
                            Some((o, l)) => {
                                let cut = render::partial(&bytes, *o, Some(l.get())).to_vec();
                                literal(Cow::Owned(cut))
                            }
                            None => literal(bytes),
                        };
                        I::BodyExt {
                            section: section.clone(),
                            origin: partial.map(|p| p.0),
                            data,
                        }
                    })
                }
            }
            N::Binary {
                section, partial, ..
            } => view.and_then(|v| match v.binary(section) {
                Ok(bytes) => {
                    let data = match partial {
                        Some((o, l)) => {
                            Cow::Owned(render::partial(&bytes, *o, Some(l.get())).to_vec())
                        }
                        None => bytes,
                    };
                    Some(I::Binary {
                        section: section.clone(),
                        value: NString8::Literal8(Literal8 {
                            data,
                            mode: LiteralMode::Sync,
                        }),
                    })
                }
                Err(BinaryError::UnknownCte) => {
                    *unknown_cte = true;
                    None
                }
                Err(BinaryError::NoPart) => Some(I::Binary {
                    section: section.clone(),
                    value: NString8::NString(NString(None)),
                }),
            }),
            N::BinarySize { section } => view.and_then(|v| match v.binary(section) {
                Ok(b) => Some(I::BinarySize {
                    section: section.clone(),
                    size: u32::try_from(b.len()).unwrap_or(u32::MAX),
                }),
                Err(BinaryError::UnknownCte) => {
                    *unknown_cte = true;
                    None
                }
                Err(BinaryError::NoPart) => Some(I::BinarySize {
                    section: section.clone(),
                    size: 0,
                }),
            }),
        };
        out.extend(item);
    }
    (out, streamed)
}

pub(super) fn encode_fetch(seq: u32, items: Vec<MessageDataItem<'_>>) -> Option<Vec<u8>> {
    let d = Data::Fetch {
        seq: NonZeroU32::new(seq)?,
        items: Vec1::try_from(items).ok()?,
    };
    Some(ResponseCodec::default().encode(&Response::Data(d)).dump())
}

/// RFC822 or BODY[] (PEEK or not): the whole message as it is stored.
pub(super) fn is_whole(n: &MessageDataItemName) -> bool {
    matches!(n, MessageDataItemName::Rfc822)
        || matches!(
            n,
            MessageDataItemName::BodyExt {
                section: None,
                partial: None,
                ..
            }
        )
}

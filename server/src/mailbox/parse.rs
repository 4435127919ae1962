//! How much of a message a delivery parses, and what it stores when the parse fails.

use super::Folder;
use crate::extract::{self, Extracted};

/// What a message we cannot parse is stored as: the raw bytes are kept whole, so nothing a
/// sender was told we accepted is lost; only the derived fields are empty.
pub(super) fn unparsed() -> Extracted {
    Extracted {
        subject: String::new(),
        from: None,
        to: vec![],
        cc: vec![],
        reply_to: vec![],
        date: None,
        message_id: None,
        in_reply_to: vec![],
        references: vec![],
        text: None,
        html: None,
        extracted_text: String::new(),
        preview: String::new(),
        codes: vec![],
        links: vec![],
        attachments: vec![],
        headers: vec![],
    }
}

/// A message parsed for delivery by [`parse_for`]: in full, or (`own`) for the record only.
pub struct Parsed {
    pub(super) own: bool,
    pub(super) ex: Extracted,
    /// Full-text search terms (`search`), computed here on the blocking pool with the parse.
    pub(super) terms: Vec<String>,
}

/// Parses `raw` as much as a delivery into `folder` stores: in full for mail from others,
/// only what the record needs for the agent's own (their content is derived when read). A
/// message that does not parse, or makes the parser panic, is stored whole with empty
/// derived fields: nothing a sender was told we accepted is lost.
pub fn parse_for(folder: Folder, raw: &[u8]) -> Parsed {
    let own = is_own(folder);
    let parsed = std::panic::catch_unwind(|| {
        if own {
            extract::parse_own(raw)
        } else {
            extract::parse(raw)
        }
    });
    let ex = match parsed {
        Ok(Ok(ex)) => ex,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "storing a message that does not parse");
            unparsed()
        }
        Err(_) => {
            tracing::error!("the message parser panicked; storing raw only");
            unparsed()
        }
    };
    let addrs = ex.from.iter().chain(&ex.to).chain(&ex.cc);
    let terms = super::search::message_terms(
        &ex.subject,
        addrs,
        &[ex.text.as_deref(), Some(&ex.extracted_text)],
    );
    Parsed { own, ex, terms }
}

/// The agent's own messages: written by it, not data from outside.
pub(super) fn is_own(folder: Folder) -> bool {
    matches!(folder, Folder::Sent | Folder::Drafts)
}

//! mail-parser + `extract`: what delivery and reading run on every message, called
//! directly (without the `catch_unwind` the mailbox wraps them in) so a parser panic shows.

use crate::{Target, Verdict};

pub struct Mime;

impl Target for Mime {
    fn name(&self) -> &'static str {
        "mime"
    }

    fn dictionary(&self) -> &'static [&'static [u8]] {
        super::MIME_DICT
    }

    fn run(&mut self, input: &[u8]) -> Verdict {
        let full = legate::extract::parse(input);
        let _ = legate::extract::parse_own(input);
        if let Ok(ex) = full {
            for a in ex.attachments.iter().take(16) {
                let _ = legate::extract::attachment(input, a.id);
            }
            if serde_json::to_vec(&ex.codes).is_err() || serde_json::to_vec(&ex.links).is_err() {
                return Verdict::Bad("extracted fields do not serialise".into());
            }
        }
        Verdict::Ok
    }
}

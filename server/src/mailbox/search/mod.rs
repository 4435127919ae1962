//! Full-text search over an agent's mail without scanning it (`GET /v1/messages?q=`, the
//! MCP list tool, later IMAP SEARCH TEXT/BODY).
//!
//! - `tokens`: what a word is (UAX #29), folded (case, accents), and the caps that bound
//!   what one message may write.
//! - `postings`: the index as store keys, maintained in the transactions that deliver and
//!   purge messages, so it is exactly as consistent as the mail itself, also across nodes
//!   sharing one database.
//! - `blocks`: how a term's positions are packed, up to 128 per store entry.
//! - `merge`: moves newly indexed and purged messages into the blocks, a batch at a time.
//! - `query`: a complete page of matches, newest first, from the index.
//! - `backfill`: indexes the messages stored before the index existed (schema 4).
//!
//! Indexed per message: the subject, the From/To/Cc names and addresses, the text body and
//! the extracted text (which is where an HTML-only body's words are, rendered to text).
//! Moving a message (to Trash too) leaves its index entries alone: folders are a filter on
//! the record, so `q=` without `folder` skips Trash as the plain listing does.

mod backfill;
mod blocks;
mod merge;
mod postings;
mod query;
pub mod tokens;

pub(super) use postings::{decode_doc, index_message, unindex_message};
pub(super) use query::Window;

use crate::extract::Addr;

/// The terms a message is indexed under: subject first, then addresses, then bodies, so
/// the cap on terms per message drops the tail of a long body, never the subject.
pub fn message_terms<'a>(
    subject: &str,
    addrs: impl Iterator<Item = &'a Addr>,
    bodies: &[Option<&str>],
) -> Vec<String> {
    let mut t = tokens::Terms::new();
    t.add(subject);
    for a in addrs {
        if let Some(n) = &a.name {
            t.add(n);
        }
        t.add(&a.email);
    }
    for b in bodies.iter().flatten() {
        t.add(b);
    }
    t.into_sorted()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_addresses_and_bodies_are_indexed() {
        let from = Addr {
            name: Some("Jörg Müller".into()),
            email: "joerg@bank.test".into(),
        };
        let t = message_terms(
            "Your invoice",
            [&from].into_iter(),
            &[Some("plain words"), None, Some("rendered html")],
        );
        for w in [
            "invoice",
            "jorg",
            "muller",
            "joerg",
            "bank.test",
            "plain",
            "html",
        ] {
            assert!(tokens::has_prefix(&t, w), "{w} in {t:?}");
        }
    }
}

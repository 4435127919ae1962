//! The text SEARCH compares for SUBJECT, FROM, TO and CC, lower-cased, per message id,
//! shared by every session.
//!
//! Why: these keys are answered from the message record, but a whole record is a random
//! tree lookup and a decode of everything it holds (preview, verdict, attachments), some
//! 5-8 µs per message: a `SEARCH SUBJECT x` over thousands of messages spent nearly all
//! its time there, and lower-cased every subject again for every search. A message's
//! subject and addresses never change after delivery (a move keeps its id), so an entry is
//! valid for as long as the id names a live record; a search reaches ids only through the
//! records of the agent's own folder, so no entry is ever seen by another agent.
//!
//! Bounded by entries (`imap.search_cache_messages`, about 200 bytes each); when full it
//! is emptied and refills from the records as searches ask.

use crate::extract::Addr;
use crate::mailbox::StoredMessage;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One message's searchable header text, lower-cased as SEARCH compares it.
#[derive(Debug, PartialEq)]
pub struct Texts {
    pub subject: Box<str>,
    pub from: Box<str>,
    pub to: Box<str>,
    pub cc: Box<str>,
}

/// Addresses as SEARCH FROM/TO/CC see them: `Name <addr>` or `addr`, comma-separated.
pub fn addr_text(a: &[Addr]) -> String {
    a.iter()
        .map(|a| match &a.name {
            Some(n) => format!("{n} <{}>", a.email),
            None => a.email.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Texts {
    /// From a whole record (not a light one: its text fields are empty).
    pub fn of(rec: &StoredMessage) -> Texts {
        Texts {
            subject: rec.subject.to_lowercase().into(),
            from: addr_text(rec.from.as_slice()).to_lowercase().into(),
            to: addr_text(&rec.to).to_lowercase().into(),
            cc: addr_text(&rec.cc).to_lowercase().into(),
        }
    }
}

pub struct SearchTexts {
    cap: usize,
    map: Mutex<HashMap<String, Arc<Texts>>>,
}

impl SearchTexts {
    /// Keeps at most `cap` messages; 0 keeps none (every search reads the records).
    pub fn new(cap: usize) -> SearchTexts {
        SearchTexts {
            cap,
            map: Mutex::default(),
        }
    }

    /// The kept texts of `ids`, in order (None where not kept), under one lock.
    pub fn get_many<'a>(&self, ids: impl Iterator<Item = &'a str>) -> Vec<Option<Arc<Texts>>> {
        let m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        ids.map(|id| m.get(id).cloned()).collect()
    }

    /// Keeps the texts of whole records just read.
    pub fn put_many(&self, recs: &[StoredMessage]) -> Vec<Arc<Texts>> {
        let made: Vec<Arc<Texts>> = recs.iter().map(|r| Arc::new(Texts::of(r))).collect();
        if self.cap == 0 {
            return made;
        }
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        for (r, t) in recs.iter().zip(&made) {
            if m.len() >= self.cap && !m.contains_key(&r.id) {
                m.clear();
                m.shrink_to(self.cap.min(4096));
            }
            m.insert(r.id.clone(), t.clone());
        }
        made
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, subject: &str) -> StoredMessage {
        StoredMessage {
            id: id.to_string(),
            subject: subject.to_string(),
            from: Some(Addr {
                name: Some("Ann Ö".to_string()),
                email: "Ann@Example.com".to_string(),
            }),
            to: vec![
                Addr {
                    name: None,
                    email: "bot@agents.test".to_string(),
                },
                Addr {
                    name: None,
                    email: "B@x.test".to_string(),
                },
            ],
            agent_id: "agent".to_string(),
            folder: crate::mailbox::Folder::Inbox,
            uid: 1,
            thread_id: String::new(),
            modseq: 1,
            flags: Vec::new(),
            labels: Vec::new(),
            received_at_ms: 0,
            size: 10,
            cc: Vec::new(),
            reply_to: Vec::new(),
            date: None,
            message_id: None,
            preview: String::new(),
            attachments: Vec::new(),
            auth_json: None,
            envelope_from: String::new(),
            envelope_to: Vec::new(),
            external: true,
            trust: None,
        }
    }

    #[test]
    fn texts_are_the_record_fields_lower_cased() {
        let t = Texts::of(&rec("m1", "Café ÉTÉ Report"));
        assert_eq!(&*t.subject, "café été report");
        assert_eq!(&*t.from, "ann ö <ann@example.com>");
        assert_eq!(&*t.to, "bot@agents.test, b@x.test");
        assert_eq!(&*t.cc, "");
    }

    #[test]
    fn kept_up_to_the_bound_then_emptied() {
        let c = SearchTexts::new(2);
        c.put_many(&[rec("a", "A"), rec("b", "B")]);
        let got = c.get_many(["a", "b", "z"].into_iter());
        assert_eq!(got[0].as_deref().map(|t| &*t.subject), Some("a"));
        assert_eq!(got[1].as_deref().map(|t| &*t.subject), Some("b"));
        assert!(got[2].is_none());
        // Full: the next new id empties the cache first.
        c.put_many(&[rec("c", "C")]);
        assert_eq!(c.len(), 1);
        assert!(c.get_many(["a"].into_iter())[0].is_none());
        // Nothing kept with a bound of 0, but the texts are still made.
        let off = SearchTexts::new(0);
        assert_eq!(off.put_many(&[rec("a", "A")]).len(), 1);
        assert_eq!(off.len(), 0);
    }
}

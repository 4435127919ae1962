//! The whole message as `GET /v1/messages/{id}` and every `message.*` event show it,
//! serialised straight from the record and its content.
//!
//! Why: each event is rendered for the webhooks and the live streams, at the rate mail
//! arrives. Built as a `serde_json::Value` tree, a message cost a copy of its text, HTML and
//! extracted text, an object per header and three parses of the stored verdict before the
//! tree was serialised. [`Full`] borrows instead and parses the verdict once; only `auth`
//! (the verdict, whose fields are whatever the checks recorded) stays a tree.

use super::summary::{AuthSummary, Summary};
use super::Message;
use crate::extract::{Code, Link};
use serde::Serialize;
use serde_json::{Map, Value};

/// The full record of DESIGN §5 "Reading": the list item with the whole verdict as `auth`,
/// plus bodies, extracted text, codes, links, headers, threading and the envelope.
#[derive(Serialize)]
pub struct Full<'a> {
    #[serde(flatten)]
    summary: Summary<'a, Value>,
    text: Option<&'a str>,
    html: Option<&'a str>,
    extracted_text: &'a str,
    codes: &'a [Code],
    links: &'a [Link],
    headers: Vec<HeaderField<'a>>,
    in_reply_to: &'a [String],
    references: &'a [String],
    envelope: Envelope<'a>,
}

#[derive(Serialize)]
struct HeaderField<'a> {
    name: &'a str,
    value: &'a str,
}

#[derive(Serialize)]
struct Envelope<'a> {
    from: &'a str,
    to: &'a [String],
}

/// The top-level fields of [`Full`]: a caller adding fields of its own (an event's) leaves
/// these to the message.
pub const FULL_FIELDS: [&str; 30] = [
    "attachments",
    "auth",
    "cc",
    "codes",
    "date",
    "envelope",
    "external_content",
    "extracted_text",
    "flags",
    "folder",
    "from",
    "headers",
    "html",
    "id",
    "in_reply_to",
    "labels",
    "links",
    "message_id",
    "preview",
    "received_at",
    "references",
    "reply_to",
    "size",
    "subject",
    "text",
    "thread_id",
    "to",
    "trust",
    "uid",
    "unread",
];

impl Message {
    /// The full view, borrowing this message.
    pub fn view(&self) -> Full<'_> {
        let m = &self.meta;
        let c = &self.content;
        let AuthSummary {
            from_domain,
            sender_authenticated,
        } = m.auth_summary_parts();
        // The whole verdict, with the summary's two fields on top.
        let mut auth = match m.auth() {
            Value::Object(v) => v,
            _ => Map::new(),
        };
        auth.insert(
            "sender_authenticated".into(),
            Value::Bool(sender_authenticated),
        );
        auth.insert("from_domain".into(), from_domain.into());
        // The Agent-Signature verdict as `trust.agent` states it: a signature copied onto
        // mail whose From domain is not authenticated does not vouch for it.
        if let Some(a) = m.agent_trust_given(sender_authenticated) {
            auth.insert("agent".into(), a);
        }
        Full {
            summary: m.summary_with(Value::Object(auth), sender_authenticated),
            text: c.text.as_deref(),
            html: c.html.as_deref(),
            extracted_text: &c.extracted_text,
            codes: &c.codes,
            links: &c.links,
            headers: c
                .headers
                .iter()
                .map(|(name, value)| HeaderField { name, value })
                .collect(),
            in_reply_to: &c.in_reply_to,
            references: &c.references,
            envelope: Envelope {
                from: &m.envelope_from,
                to: &m.envelope_to,
            },
        }
    }

    /// The full view as a JSON value, for callers that add to it.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.view()).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::tests::sample;
    use super::super::MessageContent;
    use super::*;
    use serde_json::json;

    /// The full view as the `json!` tree built it before: the typed one gives the same JSON.
    fn reference(m: &Message) -> Value {
        let mut v = m.meta.summary_json();
        let c = &m.content;
        let headers: Vec<Value> = c
            .headers
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        let Value::Object(o) = &mut v else {
            panic!("summary is an object")
        };
        o.insert("text".into(), json!(c.text));
        o.insert("html".into(), json!(c.html));
        o.insert("extracted_text".into(), json!(c.extracted_text));
        o.insert("codes".into(), json!(c.codes));
        o.insert("links".into(), json!(c.links));
        let mut auth = serde_json::to_value(m.meta.auth_summary_parts()).unwrap();
        if let (Value::Object(sum), Value::Object(verdict)) = (&mut auth, m.meta.auth()) {
            for (k, v) in verdict {
                sum.entry(k).or_insert(v);
            }
            if let Some(a) = m.meta.agent_trust() {
                sum.insert("agent".into(), a);
            }
        }
        o.insert("auth".into(), auth);
        o.insert("headers".into(), Value::Array(headers));
        o.insert("in_reply_to".into(), json!(c.in_reply_to));
        o.insert("references".into(), json!(c.references));
        o.insert(
            "envelope".into(),
            json!({"from": m.meta.envelope_from, "to": m.meta.envelope_to}),
        );
        v
    }

    /// The top-level keys of a JSON object as written, repeats included (a `Value` would
    /// keep one of each).
    fn written_keys(json: &[u8]) -> Vec<String> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = Vec<String>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<Self::Value, M::Error> {
                let mut out = Vec::new();
                while let Some((k, _)) = m.next_entry::<String, serde::de::IgnoredAny>()? {
                    out.push(k);
                }
                Ok(out)
            }
        }
        let mut d = serde_json::Deserializer::from_slice(json);
        serde::Deserializer::deserialize_map(&mut d, Keys).unwrap()
    }

    #[test]
    fn typed_full_view_gives_the_json_of_the_tree_and_names_its_fields() {
        let verdicts = [
            None,
            Some(json!({"dmarc": {"result": "pass", "from_domain": "b.test"}, "spf": "pass"})),
            Some(json!({"sender_authenticated": true, "from_domain": "forged.test"})),
            Some(json!({"agent": {"verified": true, "did": "did:web:x"}})),
            Some(json!({"agent": "not an object"})),
            Some(json!(["not", "an", "object", "agent"])),
        ];
        for auth in verdicts {
            let mut meta = sample();
            meta.auth_json = auth.as_ref().map(|a| a.to_string());
            let m = Message {
                meta,
                content: MessageContent {
                    text: Some("t".into()),
                    html: None,
                    extracted_text: "x".into(),
                    headers: vec![("Subject".into(), "hi".into()), ("X".into(), "y".into())],
                    in_reply_to: vec!["<a@b>".into()],
                    ..Default::default()
                },
            };
            let bytes = serde_json::to_vec(&m.view()).unwrap();
            let typed: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(typed, reference(&m), "{auth:?}");
            assert_eq!(m.to_json(), typed);
            // Each field once, and exactly the fields named.
            let mut keys = written_keys(&bytes);
            keys.sort_unstable();
            assert_eq!(keys, FULL_FIELDS);
        }
    }
}

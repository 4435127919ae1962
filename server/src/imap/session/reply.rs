//! A command's tagged answer (OK, NO or BAD, a response code, a text), made by handlers
//! and encoded by the session after any untagged data the command caused.

use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::response::{Code, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ok,
    No,
    Bad,
    /// Already answered (STARTTLS answers before the handshake).
    None,
}

#[derive(Debug)]
pub(in crate::imap) struct Reply {
    kind: Kind,
    code: Option<Code<'static>>,
    text: String,
}

impl Reply {
    pub fn ok(text: impl Into<String>) -> Reply {
        Reply::new(Kind::Ok, text)
    }

    pub fn no(text: impl Into<String>) -> Reply {
        Reply::new(Kind::No, text)
    }

    pub fn bad(text: impl Into<String>) -> Reply {
        Reply::new(Kind::Bad, text)
    }

    pub fn none() -> Reply {
        Reply::new(Kind::None, "")
    }

    fn new(kind: Kind, text: impl Into<String>) -> Reply {
        Reply {
            kind,
            code: None,
            text: text.into(),
        }
    }

    pub fn code(mut self, code: Code<'static>) -> Reply {
        self.code = Some(code);
        self
    }

    pub fn is_bad(&self) -> bool {
        self.kind == Kind::Bad
    }

    pub fn status_label(&self) -> &'static str {
        match self.kind {
            Kind::Ok => "ok",
            Kind::No => "no",
            Kind::Bad => "bad",
            Kind::None => "ok",
        }
    }

    /// Response text is one line of printable text: anything else a message carried (a
    /// header value in an error, say) is replaced, never sent raw.
    fn clean(text: &str) -> String {
        let t: String = text
            .chars()
            .take(400)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let t = t.trim().trim_start_matches('[').to_string();
        if t.is_empty() {
            "done".to_string()
        } else {
            t
        }
    }

    pub fn into_status(self, tag: Option<Tag<'static>>) -> Option<Status<'static>> {
        let text = Reply::clean(&self.text);
        let code = self.code;
        let made = match self.kind {
            Kind::Ok => Status::ok(tag, code, text),
            Kind::No => Status::no(tag, code, text),
            Kind::Bad => Status::bad(tag, code, text),
            Kind::None => return None,
        };
        made.ok()
    }

    /// The answer to a message with no tag: a BAD must still be said, untagged.
    pub fn into_untagged(self) -> Option<Status<'static>> {
        self.into_status(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_codec::encode::Encoder;
    use imap_codec::imap_types::response::Response;
    use imap_codec::ResponseCodec;

    fn wire(r: Reply) -> String {
        let tag = Tag::try_from("a1").unwrap();
        let s = r.into_status(Some(tag)).unwrap();
        String::from_utf8(ResponseCodec::default().encode(&Response::Status(s)).dump()).unwrap()
    }

    #[test]
    fn texts_are_one_clean_line() {
        assert_eq!(wire(Reply::ok("done\r\n* BYE")), "a1 OK done  * BYE\r\n");
        assert_eq!(wire(Reply::no("")), "a1 NO done\r\n");
        assert_eq!(
            wire(Reply::no("x").code(Code::TooBig)),
            "a1 NO [TOOBIG] x\r\n"
        );
        assert_eq!(wire(Reply::bad("[fake] x")), "a1 BAD fake] x\r\n");
    }
}

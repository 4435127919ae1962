//! SMTP replies with RFC 3463 enhanced status codes.

use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: &'static str,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Self {
        Self {
            code,
            enhanced,
            text: text.into(),
        }
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut s = String::new();
        // Writing to a String cannot fail.
        // Intermediate replies (354) carry no enhanced code (RFC 2034 §3).
        let _ = if self.enhanced.is_empty() {
            write!(s, "{} {}\r\n", self.code, self.text)
        } else {
            write!(s, "{} {} {}\r\n", self.code, self.enhanced, self.text)
        };
        out.extend_from_slice(s.as_bytes());
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }
}

pub fn ok(text: &str) -> Reply {
    Reply::new(250, "2.0.0", text)
}
pub fn bad_sequence(text: &str) -> Reply {
    Reply::new(503, "5.5.1", text)
}
pub fn syntax(text: &str) -> Reply {
    Reply::new(501, "5.5.4", text)
}
/// The data disk is below `storage.min_free_mb` (RFC 1870 §6.1, RFC 3463 "mail system
/// full"): a temporary refusal, so the sender keeps the message and retries.
pub fn insufficient_storage() -> Reply {
    Reply::new(452, "4.3.1", "Insufficient system storage; try again later")
}

pub fn temp_failure() -> Reply {
    Reply::new(
        451,
        "4.3.0",
        "Temporary failure storing the message; try again later",
    )
}

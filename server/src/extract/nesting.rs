//! Messages nested too deep to parse safely.
//!
//! mail-parser builds one `Message` per encapsulated message/rfc822 and frees them
//! recursively: some 50,000 levels (under 2 MB of mail, far below the size limit) overflow
//! a thread's stack, which aborts the whole process — a crash anyone who can send mail
//! could cause. Every level needs a Content-Type naming a message type, or a
//! multipart/digest whose parts default to one, so counting those words bounds the depth
//! before any parse; real mail stays far below the limit. Every full parse of stored or
//! received mail (extraction, attachments, IMAP rendering, outbound line fitting) asks
//! [`nesting_bomb`] first and falls back to the headers alone.

/// Words that can open a nesting level a message may hold before it is not parsed in full.
pub const MAX_NESTING_WORDS: usize = 4096;

/// Counts "message" (not "message-", as in Message-ID) and "digest", case-insensitively.
pub fn nesting_bomb(raw: &[u8]) -> bool {
    let mut count = 0usize;
    for (i, w) in raw.windows(6).enumerate() {
        let hit = if w.eq_ignore_ascii_case(b"messag") {
            raw.get(i + 6)
                .is_some_and(|b| b.eq_ignore_ascii_case(&b'e'))
                && raw.get(i + 7) != Some(&b'-')
        } else {
            w.eq_ignore_ascii_case(b"digest")
        };
        if hit {
            count += 1;
            if count > MAX_NESTING_WORDS {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `levels` message/rfc822 parts, each inside the one before.
    pub(crate) fn bomb(levels: usize) -> Vec<u8> {
        let mut m = Vec::new();
        for _ in 0..levels {
            m.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
        }
        m.extend_from_slice(b"Subject: core\r\n\r\nbody\r\n");
        m
    }

    #[test]
    fn deep_nesting_is_seen_and_ordinary_mail_is_not() {
        assert!(nesting_bomb(&bomb(100_000)));
        assert!(!nesting_bomb(&bomb(100)));
        assert!(!nesting_bomb(&b"Message-ID: <a@b>\r\n".repeat(10_000)));
        assert!(nesting_bomb(&b"MESSAGE/rfc822 digest ".repeat(3_000)));
    }

    #[test]
    fn extraction_of_a_nesting_bomb_does_not_crash() {
        // 100,000 levels: 3.2 MB, well under the size limit, and enough to overflow the
        // stack if it were parsed in full.
        let raw = [b"Subject: nested\r\n".as_slice(), &bomb(100_000)].concat();
        let out = super::super::parse(&raw).expect("headers at least");
        assert_eq!(out.subject, "nested");
        assert!(super::super::attachment(&raw, 0).is_none());
    }
}

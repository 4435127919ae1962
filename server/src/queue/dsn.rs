//! Delivery status notifications (RFC 3464, in a multipart/report of RFC 6522): what the
//! sender's INBOX gets when a recipient fails for good, expires, or is delayed.

use super::model::{QueuedMessage, Recipient};

/// Why a DSN is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnKind {
    /// Permanent failure or expiry: `Action: failed`.
    Failed,
    /// Still trying after the delay-notice time: `Action: delayed`.
    Delayed,
}

/// The original message's header block (up to the blank line), for the
/// `text/rfc822-headers` part: enough to recognise the message without resending its body.
pub fn header_block(raw: &[u8]) -> &[u8] {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 2)
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| i + 1))
        .unwrap_or(raw.len());
    &raw[..end]
}

/// The enhanced status code at the start of a reply (`550 5.1.1 text` -> `5.1.1`), else a
/// generic one of the reply's class.
fn status_of(reply: &str, kind: DsnKind) -> String {
    let mut words = reply.split_whitespace();
    let code = words.next().unwrap_or("");
    if let Some(esc) = words.next() {
        let parts: Vec<&str> = esc.split('.').collect();
        if parts.len() == 3
            && matches!(parts[0], "2" | "4" | "5")
            && parts[1..]
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        {
            return esc.to_string();
        }
    }
    match (kind, code.as_bytes().first()) {
        (DsnKind::Delayed, _) | (_, Some(b'4')) => "4.0.0".into(),
        _ => "5.0.0".into(),
    }
}

/// Builds the DSN for `rcpts` of `msg`. `reporting_mta` is our hostname, `to` the sender's
/// address; the DSN itself has the null envelope sender and is never bounced.
pub fn build(
    kind: DsnKind,
    msg: &QueuedMessage,
    rcpts: &[&Recipient],
    original: &[u8],
    reporting_mta: &str,
    to: &str,
    now_unix: i64,
) -> Vec<u8> {
    let boundary = format!("dsn_{}", crate::util::new_id("b"));
    let date = crate::util::rfc2822(now_unix);
    let arrival = crate::util::rfc2822(msg.created_ms / 1000);
    let (subject, action) = match kind {
        DsnKind::Failed => ("Undelivered Mail Returned to Sender", "failed"),
        DsnKind::Delayed => ("Delayed Mail (still being retried)", "delayed"),
    };
    let mut human = String::new();
    match kind {
        DsnKind::Failed => human.push_str(
            "Your message could not be delivered to one or more recipients.\r\n\
             It will not be retried.\r\n\r\n",
        ),
        DsnKind::Delayed => human.push_str(
            "Your message has not been delivered yet to one or more recipients.\r\n\
             Delivery will be retried; you will be told if it finally fails.\r\n\r\n",
        ),
    }
    for r in rcpts {
        human.push_str(&format!(
            "<{}>: {}\r\n",
            r.address,
            r.last_reply.as_deref().unwrap_or("no reply")
        ));
    }
    let mut status = format!("Reporting-MTA: dns; {reporting_mta}\r\nArrival-Date: {arrival}\r\n");
    if let Some(id) = &msg.message_id {
        status.push_str(&format!("Original-Envelope-Id: {}\r\n", sanitize(id)));
    }
    for r in rcpts {
        let reply = sanitize(r.last_reply.as_deref().unwrap_or(""));
        status.push_str(&format!(
            "\r\nFinal-Recipient: rfc822; {}\r\nAction: {action}\r\nStatus: {}\r\n",
            sanitize(&r.address),
            status_of(&reply, kind)
        ));
        if let Some(h) = &r.remote_host {
            status.push_str(&format!("Remote-MTA: dns; {}\r\n", sanitize(h)));
        }
        if !reply.is_empty() {
            status.push_str(&format!("Diagnostic-Code: smtp; {reply}\r\n"));
        }
        if let Some(t) = r.last_attempt_ms {
            status.push_str(&format!(
                "Last-Attempt-Date: {}\r\n",
                crate::util::rfc2822(t / 1000)
            ));
        }
        if kind == DsnKind::Delayed {
            status.push_str(&format!(
                "Will-Retry-Until: {}\r\n",
                crate::util::rfc2822(r.next_attempt_ms / 1000)
            ));
        }
    }
    let mut out = Vec::with_capacity(2048 + original.len().min(64 * 1024));
    out.extend_from_slice(
        format!(
            "From: Mail Delivery System <mailer-daemon@{reporting_mta}>\r\n\
             To: <{to}>\r\n\
             Subject: {subject}\r\n\
             Date: {date}\r\n\
             Message-ID: <{}@{reporting_mta}>\r\n\
             Auto-Submitted: auto-replied\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status;\r\n\
             \tboundary=\"{boundary}\"\r\n\
             \r\n\
             This is a MIME-encapsulated delivery status notification.\r\n\
             \r\n\
             --{boundary}\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             \r\n\
             {human}\r\n\
             --{boundary}\r\n\
             Content-Type: message/delivery-status\r\n\
             \r\n\
             {status}\r\n\
             --{boundary}\r\n\
             Content-Type: text/rfc822-headers\r\n\
             \r\n",
            crate::util::new_id("dsn").trim_start_matches("dsn_"),
        )
        .as_bytes(),
    );
    out.extend_from_slice(header_block(original));
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// One header line's worth of text from something a remote server said.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(900)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::model::{RcptStatus, Recipient};
    use super::*;

    fn msg() -> QueuedMessage {
        let mut r = Recipient::new("bob@b.test".into(), "b.test".into(), None, 0);
        r.status = RcptStatus::PermanentFailure;
        r.last_reply = Some("550 5.1.1 No such user\r\nhere".into());
        r.remote_host = Some("mx.b.test [127.0.0.1]".into());
        r.last_attempt_ms = Some(1_700_000_000_000);
        QueuedMessage {
            id: "msg_1".into(),
            agent_id: "ag_1".into(),
            mail_from: "ops@a.test".into(),
            chain: vec![],
            created_ms: 1_700_000_000_000,
            size: 10,
            message_id: Some("abc@a.test".into()),
            subject: "Hi".into(),
            recipients: vec![r],
        }
    }

    #[test]
    fn failed_dsn_parses_as_a_report_with_status_and_original_headers() {
        let m = msg();
        let original = b"Subject: Hi\r\nMessage-ID: <abc@a.test>\r\n\r\nsecret body\r\n";
        let rcpts: Vec<&Recipient> = m.recipients.iter().collect();
        let raw = build(
            DsnKind::Failed,
            &m,
            &rcpts,
            original,
            "mx.a.test",
            "ops@a.test",
            0,
        );
        let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
        use mail_parser::MimeHeaders;
        assert_eq!(parsed.content_type().unwrap().subtype(), Some("report"));
        let text = String::from_utf8(raw).unwrap();
        assert!(text.contains("report-type=delivery-status"));
        assert!(text.contains("Final-Recipient: rfc822; bob@b.test"));
        assert!(text.contains("Action: failed"));
        assert!(text.contains("Status: 5.1.1"));
        assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1 No such user  here"));
        assert!(text.contains("Remote-MTA: dns; mx.b.test [127.0.0.1]"));
        assert!(text.contains("Message-ID: <abc@a.test>"));
        assert!(!text.contains("secret body"), "only headers are returned");
    }

    #[test]
    fn status_falls_back_to_the_reply_class() {
        assert_eq!(status_of("421 try later", DsnKind::Failed), "4.0.0");
        assert_eq!(status_of("554 go away", DsnKind::Failed), "5.0.0");
        assert_eq!(status_of("451 4.4.1 refused", DsnKind::Delayed), "4.4.1");
        assert_eq!(status_of("", DsnKind::Delayed), "4.0.0");
    }
}

//! RFC 9051 §7.5.2 ENVELOPE.
//!
//! Unstructured fields (date, subject, message ids) go out raw, encoded words and all, as
//! IMAP4rev1 clients expect to decode them themselves. Addresses come from mail-parser's
//! parse, which decodes display names; a non-ASCII name is re-encoded as an RFC 2047 word so
//! the client sees the same kind of string either way.

use imap_codec::imap_types::core::NString;
use imap_codec::imap_types::envelope::{Address, Envelope};
use mail_parser::{Addr, HeaderValue};

use super::strings::{encoded_word, nstring};
use super::tree::Node;

/// What RFC 9051 has a server put for the missing halves of a malformed address (Dovecot's
/// words), since NIL there would read as group syntax.
const MISSING_MAILBOX: &str = "MISSING_MAILBOX";
const MISSING_DOMAIN: &str = "MISSING_DOMAIN";

/// The envelope of the message whose root part is `root`.
pub(super) fn envelope(root: &Node<'_, '_>) -> Envelope<'static> {
    let raw = |name: &str| nstring(root.first_value(name).as_deref());
    let from = addresses(root, "From");
    // RFC 9051 §7.5.2: an absent or empty Sender or Reply-To reads as From.
    let or_from = |list: Vec<Address<'static>>| {
        if list.is_empty() {
            from.clone()
        } else {
            list
        }
    };
    Envelope {
        date: raw("Date"),
        subject: raw("Subject"),
        sender: or_from(addresses(root, "Sender")),
        reply_to: or_from(addresses(root, "Reply-To")),
        to: addresses(root, "To"),
        cc: addresses(root, "Cc"),
        bcc: addresses(root, "Bcc"),
        in_reply_to: raw("In-Reply-To"),
        message_id: raw("Message-ID"),
        from,
    }
}

/// The addresses of the first field called `name`, with group syntax as RFC 9051 spells it:
/// a start marker holding the group name in the mailbox slot, the members, an end marker.
fn addresses(root: &Node<'_, '_>, name: &str) -> Vec<Address<'static>> {
    let Some(header) = root
        .part
        .headers
        .iter()
        .find(|h| h.name.as_str().eq_ignore_ascii_case(name))
    else {
        return Vec::new();
    };
    let HeaderValue::Address(value) = &header.value else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for group in value.clone().into_group() {
        match &group.name {
            Some(group_name) => {
                out.push(marker(Some(encoded_word(group_name))));
                out.extend(group.addresses.iter().filter_map(address));
                out.push(marker(None));
            }
            None => out.extend(group.addresses.iter().filter_map(address)),
        }
    }
    out
}

fn marker(group_name: Option<Vec<u8>>) -> Address<'static> {
    Address {
        name: NString::NIL,
        adl: NString::NIL,
        mailbox: nstring(group_name.as_deref()),
        host: NString::NIL,
    }
}

fn address(addr: &Addr<'_>) -> Option<Address<'static>> {
    let name = addr.name.as_deref().filter(|n| !n.trim().is_empty());
    let spec = addr
        .address
        .as_deref()
        .map(str::trim)
        .filter(|a| !a.is_empty());
    if name.is_none() && spec.is_none() {
        return None;
    }
    let (mailbox, host) = match spec.and_then(|a| a.rsplit_once('@')) {
        Some((local, domain)) => (local, domain),
        None => (spec.unwrap_or(MISSING_MAILBOX), MISSING_DOMAIN),
    };
    let nonempty =
        |s: &str, missing: &'static str| if s.is_empty() { missing } else { s }.to_owned();
    Some(Address {
        name: nstring(name.map(encoded_word).as_deref()),
        adl: NString::NIL,
        mailbox: nstring(Some(nonempty(mailbox, MISSING_MAILBOX).as_bytes())),
        host: nstring(Some(nonempty(host, MISSING_DOMAIN).as_bytes())),
    })
}

#[cfg(test)]
mod tests {
    use imap_codec::imap_types::core::NString;

    use super::super::MessageView;

    fn s(n: &NString<'_>) -> Option<String> {
        n.0.as_ref()
            .map(|i| String::from_utf8_lossy(i.clone().into_inner().as_ref()).into_owned())
    }

    #[test]
    fn plain_envelope() {
        let raw = b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\
From: Fred Foobar <foobar@Blurdybloop.example>\r\n\
Subject: afternoon meeting\r\n\
To: mooch@owatagu.siam.edu.example\r\n\
Message-Id: <B27397-0100000@Blurdybloop.example>\r\n\
\r\n\
Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n";
        let view = MessageView::parse(raw);
        let env = view.envelope();
        assert_eq!(
            s(&env.date).as_deref(),
            Some("Mon, 7 Feb 1994 21:52:25 -0800")
        );
        assert_eq!(s(&env.subject).as_deref(), Some("afternoon meeting"));
        assert_eq!(env.from.len(), 1);
        assert_eq!(s(&env.from[0].name).as_deref(), Some("Fred Foobar"));
        assert_eq!(s(&env.from[0].mailbox).as_deref(), Some("foobar"));
        assert_eq!(s(&env.from[0].host).as_deref(), Some("Blurdybloop.example"));
        assert_eq!(env.sender, env.from);
        assert_eq!(env.reply_to, env.from);
        assert_eq!(s(&env.to[0].name), None);
        assert_eq!(s(&env.to[0].mailbox).as_deref(), Some("mooch"));
        assert!(env.cc.is_empty() && env.bcc.is_empty());
        assert_eq!(env.in_reply_to, NString::NIL);
        assert_eq!(
            s(&env.message_id).as_deref(),
            Some("<B27397-0100000@Blurdybloop.example>")
        );
    }

    /// The ENVELOPE of RFC 9051 §7.5.2's FETCH example, byte for byte as imap-codec writes it.
    #[test]
    fn rfc9051_example_on_the_wire() {
        use imap_codec::encode::Encoder;
        use imap_codec::imap_types::core::Vec1;
        use imap_codec::imap_types::fetch::MessageDataItem;
        use imap_codec::imap_types::response::{Data, Response};
        use imap_codec::ResponseCodec;
        use std::num::NonZeroU32;

        let raw = b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n\
From: Terry Gray <gray@cac.washington.edu>\r\n\
Subject: IMAP4rev2 WG mtg summary and minutes\r\n\
To: imap@cac.washington.edu\r\n\
cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n\
Message-Id: <B27397-0100000@cac.washington.edu>\r\n\
\r\n\
body\r\n";
        let item = MessageDataItem::Envelope(MessageView::parse(raw).envelope());
        let response = Response::Data(Data::Fetch {
            seq: NonZeroU32::MIN,
            items: Vec1::from(item),
        });
        let wire = ResponseCodec::default().encode(&response).dump();
        assert_eq!(
            String::from_utf8_lossy(&wire),
            "* 1 FETCH (ENVELOPE (\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \
\"IMAP4rev2 WG mtg summary and minutes\" \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) \
((NIL NIL \"imap\" \"cac.washington.edu\")) \
((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) \
NIL NIL \"<B27397-0100000@cac.washington.edu>\"))\r\n"
        );
    }

    #[test]
    fn subject_stays_encoded_and_folds_unfold() {
        let raw = b"Subject: =?UTF-8?Q?Caf=C3=A9?=\r\n and more\r\nFrom: =?UTF-8?Q?Ren=C3=A9?= <r@x.example>\r\n\r\nbody\r\n";
        let env = MessageView::parse(raw).envelope();
        assert_eq!(
            s(&env.subject).as_deref(),
            Some("=?UTF-8?Q?Caf=C3=A9?= and more")
        );
        // The decoded name goes back out as an encoded word.
        assert_eq!(
            s(&env.from[0].name).as_deref(),
            Some("=?UTF-8?B?UmVuw6k=?=")
        );
    }

    #[test]
    fn groups_and_explicit_sender() {
        let raw = b"From: a@x.example\r\nSender: b@y.example\r\n\
To: Team: c@z.example, d@z.example;, e@w.example\r\nCc: undisclosed-recipients:;\r\n\r\n";
        let env = MessageView::parse(raw).envelope();
        assert_eq!(s(&env.sender[0].mailbox).as_deref(), Some("b"));
        assert_eq!(env.reply_to, env.from);
        let to: Vec<_> = env.to.iter().map(|a| (s(&a.mailbox), s(&a.host))).collect();
        assert_eq!(
            to,
            vec![
                (Some("Team".into()), None),
                (Some("c".into()), Some("z.example".into())),
                (Some("d".into()), Some("z.example".into())),
                (None, None),
                (Some("e".into()), Some("w.example".into())),
            ]
        );
        assert_eq!(env.cc.len(), 2);
        assert_eq!(
            s(&env.cc[0].mailbox).as_deref(),
            Some("undisclosed-recipients")
        );
    }

    #[test]
    fn first_of_duplicates_and_raw_eight_bit() {
        let raw = "Subject: caf\u{e9}\r\nSubject: second\r\nFrom: a@x.example\r\n\
From: b@y.example\r\nDate: bogus\r\n\r\n"
            .as_bytes();
        let env = MessageView::parse(raw).envelope();
        assert_eq!(s(&env.subject).as_deref(), Some("caf\u{e9}"));
        assert_eq!(s(&env.from[0].mailbox).as_deref(), Some("a"));
        // An unparseable date is still shown as written.
        assert_eq!(s(&env.date).as_deref(), Some("bogus"));
    }

    #[test]
    fn missing_headers_are_nil() {
        let env = MessageView::parse(b"X-Nothing: here\r\n\r\nbody").envelope();
        assert_eq!(env.date, NString::NIL);
        assert_eq!(env.subject, NString::NIL);
        assert!(env.from.is_empty() && env.sender.is_empty() && env.to.is_empty());
    }
}

//! VERP envelope senders (issue 24, item 3): each remote recipient of a message gets the
//! reverse-path `local+b.<id>.<index>.<mac>@domain`, so a bounce coming back, however late
//! and in whatever shape, names its message and recipient for certain. The MAC (80 bits of
//! HMAC-SHA256 over message id and index, vault key) makes a guessed or altered token link
//! nothing. Lower case throughout: some servers lower-case what they send back.

use data_encoding::BASE32_NOPAD;

/// The tag prefix that marks a bounce address.
pub const TAG: &str = "b.";

fn mac_text(mac: &[u8; 32]) -> String {
    BASE32_NOPAD.encode(&mac[..10]).to_ascii_lowercase()
}

fn input(id: &str, index: usize) -> Vec<u8> {
    format!("{id}\0{index}").into_bytes()
}

/// The bounce address of recipient `index` of message `id` (`msg_...`) sent by `from`.
pub fn address(from: &str, id: &str, index: usize, mac: impl Fn(&[u8]) -> [u8; 32]) -> String {
    let (local, domain) = from.rsplit_once('@').unwrap_or((from, ""));
    let suffix = id.strip_prefix("msg_").unwrap_or(id);
    let m = mac_text(&mac(&input(id, index)));
    format!("{local}+{TAG}{suffix}.{index}.{m}@{domain}")
}

/// The (message id, recipient index) a bounce-address tag (the part after `+`) names, if
/// its MAC is right. Anything else, a forged token included, is `None`.
pub fn parse(tag: &str, mac: impl Fn(&[u8]) -> [u8; 32]) -> Option<(String, usize)> {
    let tag = tag.to_ascii_lowercase();
    let rest = tag.strip_prefix(TAG)?;
    let mut parts = rest.split('.');
    let (suffix, index, given) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || suffix.is_empty() || suffix.len() > 40 {
        return None;
    }
    if index.is_empty() || index.len() > 4 || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let index: usize = index.parse().ok()?;
    let id = format!("msg_{suffix}");
    if !crate::util::is_id_of(&id, "msg") {
        return None;
    }
    let want = mac_text(&mac(&input(&id, index)));
    // Constant time: the comparison must not tell a prober how much of a guess was right.
    let same = want.len() == given.len()
        && want
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    same.then_some((id, index))
}

/// The tag of a `local+tag@domain` address, if it is a bounce address.
pub fn tag_of(address: &str) -> Option<&str> {
    let (local, _) = address.rsplit_once('@')?;
    let (_, tag) = local.split_once('+')?;
    tag.get(..TAG.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(TAG))
        .then_some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(k: u8) -> impl Fn(&[u8]) -> [u8; 32] {
        move |m: &[u8]| {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update([k]);
            h.update(m);
            h.finalize().into()
        }
    }

    #[test]
    fn a_token_round_trips_and_a_forged_one_links_nothing() {
        let a = address("ops@a.test", "msg_abcdefgh23456789", 3, mac(1));
        assert!(a.starts_with("ops+b.abcdefgh23456789.3."), "{a}");
        assert!(a.ends_with("@a.test"));
        let tag = tag_of(&a).unwrap();
        assert_eq!(
            parse(tag, mac(1)),
            Some(("msg_abcdefgh23456789".to_string(), 3))
        );
        // Upper-cased on the way back: still ours.
        assert!(parse(&tag.to_ascii_uppercase(), mac(1)).is_some());
        // Another key, another index, a changed id or MAC: nothing.
        assert_eq!(parse(tag, mac(2)), None);
        let other = tag.replacen(".3.", ".4.", 1);
        assert_eq!(parse(&other, mac(1)), None);
        let other = tag.replacen("abcdefgh", "abcdefgi", 1);
        assert_eq!(parse(&other, mac(1)), None);
        for bad in [
            "b.",
            "b.x",
            "b.x.1",
            "b.x.1.y.z",
            "b.x.99999.y",
            "b..1.aaaa",
            "x.y.1.z",
        ] {
            assert_eq!(parse(bad, mac(1)), None, "{bad}");
        }
        assert_eq!(tag_of("ops+signup@a.test"), None);
        assert_eq!(tag_of("ops@a.test"), None);
    }
}

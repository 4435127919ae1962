//! Quoted history and forwards in text (plain bodies, and HTML after rendering).
//!
//! History starts at the first of: a reply header ("On <date>, X wrote:" and its forms in
//! German, French, Spanish, Portuguese, Italian, Dutch, Scandinavian, Polish, Japanese and
//! Chinese), an "-----Original Message-----" separator, an Outlook header block
//! ("From: / Sent: / To: / Subject:" in those languages) or a trailing run of `>` lines.
//! `>` lines between new paragraphs (inline replies) are dropped one by one. A reply header
//! *above* quoted text that is followed by new text (bottom-posting) is dropped, not cut at.
//!
//! A forward marker ("---------- Forwarded message ---------", "Begin forwarded message:")
//! met before any history starts a forwarded part, which is content (see `mod.rs`); with a
//! forward subject ("Fwd:", "WG:", "TR:", ...) an Outlook block or separator counts as one.

use std::sync::LazyLock;

use regex::Regex;

use super::text::re;

/// Reply headers, matched on up to three lines joined by a space (clients wrap them).
static REPLY_HEADER: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        r"^On\s.+\swrote\s*:$",
        r"^Am\s.+\sschrieb\b.*:$",
        r"^Le\s.+\sa\s+écrit\s*:$",
        r"^El\s.+\sescribió\s*:$",
        r"^(?:Em|No dia)\s.+\sescreveu\s*:$",
        r"^Il\s.+\sha\s+scritto\s*:$",
        r"^Op\s.+\sschreef\b.*:$",
        r"^(?:Den|På)\s.+\sskrev\b.*:$",
        r"^(?:W dniu|Dnia)\s.+\snapisał(?:a|\(a\))?\s*:$",
        r"^\d{4}年\d{1,2}月\d{1,2}日.*[:：]$",
        r"^.+(?:のメッセージ|が書きました)\s*[:：]?$",
        r"^在.+写道\s*[:：]$",
        r"^.{0,300}\b(?:wrote|schrieb|a écrit|escribió|escreveu|ha scritto|schreef|skrev|napisał|пишет|написал)\s*[:：]$",
    ]
    .iter()
    .map(|p| re(p))
    .collect()
});

static ORIGINAL_SEPARATOR: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^[-_=\s]{2,}\s*(?:original message|ursprüngliche nachricht|originalnachricht|message d'origine|mensaje original|messaggio originale|oorspronkelijk bericht|mensagem original|originalmeddelande|oprindelig meddelelse|opprinnelig melding|alkuperäinen viesti|wiadomość oryginalna|исходное сообщение|元のメッセージ|原始邮件)\s*[-_=]{2,}$",
    )
});

static FORWARD_SEPARATOR: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^[-_=\s]{2,}\s*(?:forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado|messaggio inoltrato|doorgestuurd bericht|mensagem encaminhada|vidarebefordrat meddelande|videresendt meddelelse|przekazana wiadomość|пересылаемое сообщение|転送されたメッセージ|转发的邮件)\s*[-_=]{2,}$",
    )
});

static FORWARD_INTRO: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^(?:begin forwarded message|anfang der weitergeleiteten nachricht|début du message réexpédié|inicio del mensaje reenviado|inizio messaggio inoltrato|begin doorgestuurd bericht|início da mensagem encaminhada)\s*[:：]$",
    )
});

static FORWARD_PHRASE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)forwarded message|weitergeleitete nachricht|message transféré|mensaje reenviado|messaggio inoltrato|doorgestuurd bericht|mensagem encaminhada|begin forwarded message|転送されたメッセージ",
    )
});

static FORWARD_SUBJECT: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)^\s*(?:fwd?|wg|tr|rv|enc|doorst|vs|vb|転送|转发)\s*[:：]"));

/// Keys of an Outlook header block (optionally `*bold*` as Gmail renders them in text).
static FROM_KEY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^\**\s*(?:from|von|de|da|van|fra|från|od|lähettäjä|差出人|发件人|寄件者|от|отправитель)\s*\**\s*[:：]",
    )
});
static SUBJECT_KEY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?:^|\s|\*)(?:subject|betreff|objet|asunto|oggetto|onderwerp|assunto|emne|ämne|temat|aihe|件名|主题|主旨|тема)\s*\**\s*[:：]",
    )
});
static SENT_OR_TO_KEY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?:^|\s|\*)(?:sent|date|to|gesendet|datum|an|envoyé|date|à|enviado|fecha|para|inviato|data|a|verzonden|aan|enviada|sendt|skickat|till|til|wysłano|do|送信日時|宛先|日付|发送时间|收件人|отправлено|кому)\s*\**\s*[:：]",
    )
});

/// How many lines after a `From:` line the rest of its block may appear.
const BLOCK_WINDOW: usize = 8;
/// Longer lines are prose, not reply headers (and would make the regexes slow).
const MAX_HEADER_LINE: usize = 400;
/// Forwards inside forwards are followed this deep.
pub(crate) const MAX_FORWARD_DEPTH: usize = 8;

pub(crate) fn is_forward_subject(subject: &str) -> bool {
    FORWARD_SUBJECT.is_match(subject)
}

/// True when `s` names a forward (used on the HTML of a Gmail quote container).
pub(crate) fn mentions_forward(s: &str) -> bool {
    FORWARD_PHRASE.is_match(s)
}

pub(crate) fn is_quoted(line: &str) -> bool {
    line.trim_start().starts_with('>')
}

/// Index of the line where a forwarded message starts, if one starts before any history.
pub(crate) fn find_forward(lines: &[String], forward_subject: bool) -> Option<usize> {
    for i in 0..lines.len() {
        let line = lines[i].trim();
        if is_forward_marker(line) {
            return Some(i);
        }
        // Apple Mail puts the whole forward in a cite blockquote: with a forward subject,
        // a quoted marker is the forward, not history.
        if forward_subject && is_forward_marker(unquote(line)) {
            return Some(i);
        }
        if let Some(kind) = history_at(lines, i) {
            return (forward_subject && kind != History::Reply).then_some(i);
        }
        if is_quoted(line)
            && lines[i..]
                .iter()
                .all(|l| is_quoted(l) || l.trim().is_empty())
        {
            return None;
        }
    }
    None
}

fn is_forward_marker(line: &str) -> bool {
    FORWARD_SEPARATOR.is_match(line) || FORWARD_INTRO.is_match(line)
}

fn unquote(line: &str) -> &str {
    line.trim_start().trim_start_matches('>').trim()
}

/// End (exclusive) of the forwarded header block that starts at the marker `at`.
pub(crate) fn forward_header_end(lines: &[String], at: usize) -> usize {
    let marker = lines.get(at).map(|l| unquote(l)).unwrap_or_default();
    let mut i = at;
    if FORWARD_SEPARATOR.is_match(marker)
        || FORWARD_INTRO.is_match(marker)
        || ORIGINAL_SEPARATOR.is_match(marker)
        || is_rule(marker)
    {
        i += 1;
    }
    while i < lines.len() && unquote(&lines[i]).is_empty() {
        i += 1;
    }
    let mut seen = false;
    while i < lines.len() {
        let line = unquote(&lines[i]);
        if line.is_empty() {
            break;
        }
        if !(looks_like_header(line) || seen && lines[i].starts_with([' ', '\t'])) {
            break;
        }
        seen = true;
        i += 1;
    }
    i
}

/// The new lines of a reply: history cut off, interleaved `>` lines and headers dropped.
pub(crate) fn cut_reply(lines: &[String]) -> Vec<String> {
    let n = lines.len();
    // tail_quoted[i]: every line from i on is quoted or blank.
    let mut tail_quoted = vec![true; n + 1];
    for i in (0..n).rev() {
        tail_quoted[i] = tail_quoted[i + 1] && (is_quoted(&lines[i]) || lines[i].trim().is_empty());
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        match history_at(lines, i) {
            Some(History::Reply) => {
                let taken = reply_header_len(lines, i).unwrap_or(1);
                let next = next_nonblank(lines, i + taken);
                // Bottom-posting: header, quote, then new text below it.
                if next < n && is_quoted(&lines[next]) && !tail_quoted[next] {
                    i += taken;
                    continue;
                }
                break;
            }
            Some(_) => break,
            None => {}
        }
        if is_quoted(&lines[i]) {
            if tail_quoted[i] {
                break;
            }
            i += 1;
            continue;
        }
        out.push(lines[i].clone());
        i += 1;
    }
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum History {
    /// "On ... wrote:"
    Reply,
    /// "-----Original Message-----" or a rule line before an Outlook block.
    Separator,
    /// "From: ... Sent: ... To: ... Subject: ..."
    OutlookBlock,
}

fn history_at(lines: &[String], i: usize) -> Option<History> {
    let line = lines[i].trim();
    if line.is_empty() || is_quoted(line) {
        return None;
    }
    if ORIGINAL_SEPARATOR.is_match(line) {
        return Some(History::Separator);
    }
    if is_rule(line) && outlook_block_at(lines, next_nonblank(lines, i + 1)) {
        return Some(History::Separator);
    }
    if outlook_block_at(lines, i) {
        return Some(History::OutlookBlock);
    }
    reply_header_len(lines, i).map(|_| History::Reply)
}

/// Lines taken by a reply header starting at `i`, if one does.
fn reply_header_len(lines: &[String], i: usize) -> Option<usize> {
    if lines[i].len() > MAX_HEADER_LINE {
        return None;
    }
    let mut joined = String::new();
    for k in 0..3 {
        let line = lines.get(i + k)?.trim();
        if line.is_empty() || is_quoted(line) {
            return None;
        }
        if k > 0 {
            joined.push(' ');
        }
        joined.push_str(line);
        // A real header names a date or an address; "On reflection, she wrote:" does not.
        let specific = joined.contains('@') || joined.chars().any(|c| c.is_ascii_digit());
        if specific
            && could_end_reply_header(&joined)
            && REPLY_HEADER.iter().any(|r| r.is_match(&joined))
        {
            return Some(k + 1);
        }
    }
    None
}

/// Every `REPLY_HEADER` pattern ends in a colon, or (Japanese) in a phrase with an optional
/// one. Checking the end first skips the thirteen regexes for nearly every line of a body:
/// they were a fifth of the inbound MTA's CPU time per message (bench/smtp_inbound.sh).
/// `joined` is built from trimmed lines, so the patterns' trailing `\s*` is already gone.
fn could_end_reply_header(joined: &str) -> bool {
    joined.ends_with([':', '：'])
        || joined.ends_with("のメッセージ")
        || joined.ends_with("が書きました")
}

fn outlook_block_at(lines: &[String], i: usize) -> bool {
    let Some(first) = lines.get(i) else {
        return false;
    };
    let first = first.trim();
    if !FROM_KEY.is_match(first) {
        return false;
    }
    let window: Vec<&str> = lines[i..lines.len().min(i + BLOCK_WINDOW)]
        .iter()
        .map(|l| l.trim())
        .collect();
    let joined = window.join("\n");
    // A flight itinerary has "From:" and "To:" too; only mail headers carry a subject.
    SUBJECT_KEY.is_match(&joined) && SENT_OR_TO_KEY.is_match(&joined)
}

fn looks_like_header(line: &str) -> bool {
    static HEADER_LINE: LazyLock<Regex> =
        LazyLock::new(|| re(r"^\**\s*[\p{L}][\p{L} .-]{0,30}?\s*\**\s*[:：](?:\s|$)"));
    HEADER_LINE.is_match(line)
}

/// Outlook's plain-text rule above a header block: a line of underscores or dashes.
fn is_rule(line: &str) -> bool {
    line.chars().count() >= 10 && line.chars().all(|c| c == '_' || c == '-' || c == '—')
}

fn next_nonblank(lines: &[String], from: usize) -> usize {
    (from..lines.len())
        .find(|&j| !lines[j].trim().is_empty())
        .unwrap_or(lines.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefilter_lets_every_reply_header_through() {
        let samples = [
            "On Mon, 23 Nov 2026 at 10:00, Alice <a@b.c> wrote:",
            "Am 23.11.2026 um 10:00 schrieb Alice <a@b.c>:",
            "Le 23 nov. 2026 à 10:00, Alice <a@b.c> a écrit :",
            "El 23 nov 2026, a las 10:00, Alice <a@b.c> escribió:",
            "Em 23/11/2026 10:00, Alice <a@b.c> escreveu:",
            "Il giorno 23/11/2026 10:00 Alice <a@b.c> ha scritto:",
            "Op 23-11-2026 om 10:00 schreef Alice <a@b.c>:",
            "Den 23 nov 2026 kl. 10:00 skrev Alice <a@b.c>:",
            "W dniu 23.11.2026 o 10:00, Alice <a@b.c> napisał:",
            "2026年11月23日(月) 10:00 Alice <a@b.c>:",
            "2026/11/23 10:00 Alice <a@b.c>のメッセージ",
            "2026/11/23 10:00 Alice <a@b.c>が書きました：",
            "在 2026年11月23日 10:00，Alice <a@b.c> 写道：",
            "23.11.2026, 10:00, Alice <a@b.c> пишет:",
        ];
        for s in samples {
            assert!(REPLY_HEADER.iter().any(|r| r.is_match(s)), "{s}");
            assert!(could_end_reply_header(s), "{s}");
        }
        assert!(!could_end_reply_header("Order 1234 shipped on 23 Nov"));
    }

    #[test]
    fn patterns_compile() {
        LazyLock::force(&REPLY_HEADER);
        LazyLock::force(&ORIGINAL_SEPARATOR);
        LazyLock::force(&FORWARD_SEPARATOR);
        LazyLock::force(&FORWARD_INTRO);
        LazyLock::force(&FORWARD_PHRASE);
        LazyLock::force(&FORWARD_SUBJECT);
        LazyLock::force(&FROM_KEY);
        LazyLock::force(&SUBJECT_KEY);
        LazyLock::force(&SENT_OR_TO_KEY);
    }

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_string).collect()
    }

    fn cut(s: &str) -> String {
        cut_reply(&lines(s)).join("\n")
    }

    #[test]
    fn gmail_reply_header_wrapped_over_two_lines() {
        let s = "Sounds good.\n\nOn Mon, Jan 8, 2024 at 10:12 AM Jane Doe <jane@example.com>\nwrote:\n\n> Old\n> text";
        assert_eq!(cut(s), "Sounds good.");
    }

    #[test]
    fn reply_headers_in_several_languages() {
        for header in [
            "Am 08.01.2024 um 10:12 schrieb Jane Doe <jane@example.com>:",
            "Le lun. 8 janv. 2024 à 10:12, Jane Doe <jane@example.com> a écrit :",
            "El lun, 8 ene 2024 a las 10:12, Jane Doe (<jane@example.com>) escribió:",
            "Em seg., 8 de jan. de 2024 às 10:12, Jane Doe <jane@example.com> escreveu:",
            "Il giorno lun 8 gen 2024 alle ore 10:12 Jane Doe <jane@example.com> ha scritto:",
            "Op ma 8 jan. 2024 om 10:12 schreef Jane Doe <jane@example.com>:",
            "Den mån 8 jan. 2024 kl 10:12 skrev Jane Doe <jane@example.com>:",
            "2024年1月8日(月) 10:12 Jane Doe <jane@example.com>:",
            "在 2024年1月8日 10:12，Jane Doe <jane@example.com> 写道：",
        ] {
            let s = format!("Neu.\n\n{header}\n\nAlt, ohne Zitatzeichen.");
            assert_eq!(cut(&s), "Neu.", "header not found: {header}");
        }
    }

    #[test]
    fn prose_with_wrote_is_not_a_header() {
        let s = "On reflection, she wrote:\nThe plan stands.";
        assert_eq!(cut(s), s);
    }

    #[test]
    fn outlook_block_and_separator() {
        let s = "Yes.\n\n________________________________\nFrom: Jane <j@x.example>\nSent: Monday\nTo: Sam\nSubject: Q\n\nOld";
        assert_eq!(cut(s), "Yes.");
        let s = "Ja.\n\n-----Ursprüngliche Nachricht-----\nVon: Jane\nGesendet: Montag\nAn: Sam\nBetreff: Q\n\nAlt";
        assert_eq!(cut(s), "Ja.");
        let s = "Oui.\n\nDe : Jane <j@x.example>\nEnvoyé : lundi\nÀ : Sam\nObjet : Q\n\nVieux";
        assert_eq!(cut(s), "Oui.");
    }

    #[test]
    fn itinerary_from_to_is_not_a_block() {
        let s = "Your flight\nFrom: SFO\nTo: JFK\nDate: 8 Jan";
        assert_eq!(cut(s), s);
    }

    #[test]
    fn interleaved_and_bottom_posted() {
        let s = "> question one\nanswer one\n> question two\nanswer two\n\n> trailing\n> quote";
        assert_eq!(cut(s), "answer one\nanswer two");
        let s = "On Mon, Jan 8, 2024, Jane <j@x.example> wrote:\n> old\n\nMy answer below.";
        assert_eq!(cut(s), "\nMy answer below.");
    }

    #[test]
    fn forward_found_before_history_only() {
        let fwd = lines("FYI\n\n---------- Forwarded message ---------\nFrom: A <a@x.example>\nDate: Mon\nSubject: S\nTo: b@x.example\n\nBody");
        assert_eq!(find_forward(&fwd, false), Some(2));
        assert_eq!(forward_header_end(&fwd, 2), 7);
        let quoted = lines("Hi\n\nOn Mon, Jan 8, 2024 Jane <j@x.example> wrote:\n> ---------- Forwarded message ---------");
        assert_eq!(find_forward(&quoted, false), None);
        let outlook =
            lines("See below\n\nFrom: A <a@x.example>\nSent: Mon\nTo: B\nSubject: S\n\nBody");
        assert_eq!(find_forward(&outlook, true), Some(2));
        assert_eq!(find_forward(&outlook, false), None);
        let apple =
            lines("Begin forwarded message:\n\n> From: A\n> Subject: S\n> Date: Mon\n\n> Body");
        assert_eq!(find_forward(&apple, false), Some(0));
        assert_eq!(forward_header_end(&apple, 0), 5);
        let quoted = lines(
            "Please reset\n\n> Begin forwarded message:\n>\n> From: A\n> Subject: S\n>\n> Body",
        );
        assert_eq!(find_forward(&quoted, true), Some(2));
        assert_eq!(find_forward(&quoted, false), None);
        assert_eq!(forward_header_end(&quoted, 2), 6);
    }

    #[test]
    fn forward_subjects() {
        assert!(is_forward_subject("Fwd: Your receipt"));
        assert!(is_forward_subject("FW: x"));
        assert!(is_forward_subject("WG: Rechnung"));
        assert!(!is_forward_subject("Re: Fwd: x"));
        assert!(!is_forward_subject("Forward planning"));
    }
}

//! Signatures, mobile sign-offs, footers and web-view boilerplate.
//!
//! Removed: everything from a `-- ` delimiter (RFC 3676 §4.3; also `--` since renderers
//! trim), from a mobile sign-off ("Sent from my iPhone" and its translations), and from the
//! first footer line (unsubscribe blocks, "You are receiving this email because", copyright,
//! confidentiality disclaimers, "do not reply") found in the later part of the text. Lines
//! like "View this email in your browser" are dropped wherever they are.
//!
//! Not removed: unmarked signatures ("Best, Jane" and a title block). Telling them from the
//! last paragraph of a message is guesswork, and cutting real content is the worse mistake.

use std::sync::LazyLock;

use regex::Regex;

use super::text::re;

static MOBILE_SIGNOFF: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^(?:sent from my \S+|sent from (?:outlook|mail|yahoo mail|my mobile|samsung)\b.*|sent via \S+|get outlook for (?:ios|android)|von meinem \S+ gesendet|gesendet von meinem \S+|envoyé de mon \S+|enviado desde mi \S+|enviado do meu \S+|inviato da(?:l mio)? \S+|verzonden (?:vanaf|met) (?:mijn )?\S+|skickat från min \S+|sendt fra min \S+|iphoneから送信|android ?から送信|从我的iphone发送)[.!]?$",
    )
});

/// Lines that start a footer. Unsubscribe wording must look like a footer (at the start of
/// a line, or among `|`-separated links) so "Please unsubscribe me" from a person stays.
static FOOTER: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?ix)
        ^(?:to\ )?unsubscribe\b
      | \|\s*unsubscribe | unsubscribe\s*\| | unsubscribe\ (?:here|from\ (?:this|these|our|all))
      | click\ here\ to\ unsubscribe | opt[-\ ]out\ of
      | you(?:'re|\ are|\ have\ been)\ receiving\ this | you\ received\ this\ (?:e-?mail|message)
      | this\ (?:e-?mail|message|newsletter)\ was\ sent\ (?:to|by)
      | ^manage\ (?:your\ )?(?:e-?mail\ |notification\ |subscription\ )?(?:preferences|settings|subscriptions)
      | update\ your\ (?:e-?mail\ )?preferences
      | if\ you\ (?:no\ longer\ wish|would\ (?:prefer\ )?not\ like)\ to\ receive
      | ^(?:©|\(c\)|copyright)\s*(?:\d{4}|[A-Z]) | ©\s*\d{4} | all\ rights\ reserved
      | confidentiality\ notice | ^disclaimer\s*:
      | this\ (?:e-?mail|message|communication)(?:\ and\ any\ attachments?)?\ (?:is|are|may\ be|contains?)\ (?:confidential|privileged|intended)
      | the\ information\ (?:contained\ )?in\ this\ (?:e-?mail|message|communication)
      | if\ you\ are\ not\ the\ intended\ recipient
      | (?:please\ )?do\ not\ reply\ to\ this | this\ is\ an\ automated\ (?:message|e-?mail)
      | sie\ erhalten\ diese\ (?:e-?mail|nachricht) | ^(?:newsletter\ )?abmelden\b | \|\s*abmelden
      | diese\ (?:e-?mail|nachricht)\ (?:enthält|ist)\ vertraulich | bitte\ antworten\ sie\ nicht
      | vous\ recevez\ (?:cet|ce)\ (?:e-?mail|courriel|message) | ^se\ désabonner | \|\s*se\ désabonner
      | ce\ (?:message|courriel)\ (?:est|et\ ses\ pièces\ jointes\ sont)\ confidentiel
      | (?:recibes|has\ recibido)\ este\ (?:correo|e-?mail|mensaje) | ^darse\ de\ baja | cancelar\ (?:la\ )?suscripción
      | este\ (?:correo|mensaje)\ (?:es|y\ sus\ anexos\ son)\ confidencial
      | ricevi\ questa\ e-?mail | je\ ontvangt\ deze\ e-?mail | ^uitschrijven | você\ está\ recebendo
      | 配信停止 | このメールは送信専用
    ")
});

static WEB_VIEW: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^(?:view (?:this (?:e-?mail|message) |it )?(?:in|on) (?:your |a )?(?:web )?browser|(?:having trouble|trouble|can't see|problems?) (?:viewing|reading) this|(?:e-mail |newsletter )?im browser (?:ansehen|anzeigen|öffnen)|(?:voir|afficher) (?:la version en ligne|dans (?:votre|le) navigateur)|ver (?:en (?:el|tu) navegador|versión web))\b",
    )
});

/// Postal-address and company lines that sit just above a footer and belong to it.
static ADDRESS: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:Inc|LLC|Ltd|GmbH|AG|S\.A|B\.V|Corp|Pty|SAS|SARL|KK)\b\.?|\b[A-Z]{2} \d{5}(?:-\d{4})?\b|\b\d{4,5} [A-ZÄÖÜ][a-zäöüß]+|\s[·•|]\s|〒\d{3}-\d{4}|株式会社",
    )
});
/// Address lines are short; a sentence mentioning "Inc" is not one.
const MAX_ADDRESS_LINE: usize = 120;

/// A footer line only counts in the last part of the text: this share of the non-blank
/// lines must come before it. Footers never open a message.
const FOOTER_MIN_POSITION: f64 = 0.4;

/// Lines with signature, sign-off, footer and web-view boilerplate removed.
pub(crate) fn strip(lines: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    for line in lines {
        let t = line.trim();
        if t == "--" || t == "-- " || MOBILE_SIGNOFF.is_match(t) {
            break;
        }
        if WEB_VIEW.is_match(t) {
            continue;
        }
        out.push(line.clone());
    }
    if let Some(at) = footer_start(&out) {
        out.truncate(at);
    }
    // A rule that separated the body from what was cut is now trailing noise.
    while out.last().is_some_and(|l| is_rule_or_blank(l)) {
        out.pop();
    }
    out
}

fn footer_start(lines: &[String]) -> Option<usize> {
    let total = lines.iter().filter(|l| !l.trim().is_empty()).count();
    let mut seen = 0usize;
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        if seen > 0 && seen as f64 >= total as f64 * FOOTER_MIN_POSITION && FOOTER.is_match(t) {
            return Some(extend_over_address(lines, i));
        }
        seen += 1;
    }
    None
}

fn is_rule_or_blank(line: &str) -> bool {
    line.trim()
        .chars()
        .all(|c| matches!(c, '-' | '_' | '=' | '*' | '~' | '—' | '─'))
}

/// Moves a footer start up over the company/address lines directly above it.
fn extend_over_address(lines: &[String], mut at: usize) -> usize {
    while at > 1 {
        let above = lines[at - 1].trim();
        if above.is_empty() || above.chars().count() > MAX_ADDRESS_LINE || !ADDRESS.is_match(above)
        {
            break;
        }
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        LazyLock::force(&MOBILE_SIGNOFF);
        LazyLock::force(&FOOTER);
        LazyLock::force(&WEB_VIEW);
        LazyLock::force(&ADDRESS);
    }

    fn strip_str(s: &str) -> String {
        let lines: Vec<String> = s.lines().map(str::to_string).collect();
        strip(&lines).join("\n")
    }

    #[test]
    fn dash_dash_space_signature() {
        assert_eq!(
            strip_str("Hi\n\nSee you.\n-- \nJane\n+1 555 0100"),
            "Hi\n\nSee you."
        );
        assert_eq!(strip_str("Hi\n--\nJane"), "Hi");
    }

    #[test]
    fn mobile_signoffs() {
        assert_eq!(strip_str("Ok!\n\nSent from my iPhone"), "Ok!");
        assert_eq!(strip_str("Passt.\n\nVon meinem iPhone gesendet"), "Passt.");
        assert_eq!(strip_str("Vale\n\nEnviado desde mi iPhone"), "Vale");
        assert_eq!(strip_str("了解\n\niPhoneから送信"), "了解");
        assert_eq!(strip_str("Noted.\n\nGet Outlook for iOS"), "Noted.");
    }

    #[test]
    fn footer_in_latter_part() {
        let s = "Big news this week.\nWe shipped things.\nMore things.\nYou are receiving this email because you signed up.\nAcme, 1 Main St";
        assert_eq!(
            strip_str(s),
            "Big news this week.\nWe shipped things.\nMore things."
        );
        let s = "Story one.\nStory two.\nStory three.\nUnsubscribe | Preferences\n© 2024 Acme Inc.";
        assert_eq!(strip_str(s), "Story one.\nStory two.\nStory three.");
    }

    #[test]
    fn address_above_footer_goes_with_it() {
        let s = "Your code is below.\nCode: 1234\nThanks\nBrightpath GmbH · Torstraße 109 · 10119 Berlin\nThis is an automated message, please do not reply.";
        assert_eq!(strip_str(s), "Your code is below.\nCode: 1234\nThanks");
    }

    #[test]
    fn trailing_rule_dropped_with_footer() {
        let s = "News.\nMore news.\n\n-----------------\nYou are receiving this because you subscribed.";
        assert_eq!(strip_str(s), "News.\nMore news.");
    }

    #[test]
    fn person_asking_to_unsubscribe_is_content() {
        let s = "Hi,\nPlease unsubscribe me from this list.";
        assert_eq!(strip_str(s), s);
    }

    #[test]
    fn footer_words_at_the_top_do_not_cut() {
        let s = "Unsubscribe requests are handled below.\nLine two.\nLine three.\nLine four.";
        assert_eq!(strip_str(s), s);
    }

    #[test]
    fn web_view_line_dropped_anywhere() {
        assert_eq!(
            strip_str("View this email in your browser\nHello\nWorld"),
            "Hello\nWorld"
        );
    }

    #[test]
    fn disclaimer_cut() {
        let s = "Please find the report attached.\nThanks\nCONFIDENTIALITY NOTICE: This e-mail is confidential.";
        assert_eq!(strip_str(s), "Please find the report attached.\nThanks");
    }
}

//! One-time / verification codes.
//!
//! A candidate is 4–8 digits; 4–8 upper-case letters and digits with at least one of each;
//! two equal groups of 3 or 4 joined by a space or hyphen ("123 456", "K7F-Q2M"), reported
//! joined as the user would type them; a one-letter prefix before digits ("G-123456"),
//! reported as the digits; or 6–8 capital letters right after "code:".
//!
//! A candidate counts only next to a code word (code, OTP, passcode, PIN, one-time,
//! verification, Bestätigungscode, código, コード, 验证码, ...): the nearest keyword before it
//! on its line decides, else the nearest after it, else, when the code stands alone on its
//! line (a big code in an HTML cell), the lines around it. Negative keywords (order,
//! invoice, tracking, reference, account number, zip/promo code, currency, ...) compete in
//! the same nearest-wins way, so "Order 123456" and "use code 4821 for 10% off" give
//! nothing. Shapes that are not codes are refused before keywords are looked at: anything
//! inside a longer digit run (phone numbers, dates, IBANs, card numbers), decimals and
//! thousands (prices), times, years (unless right after "code:"), numbers glued to `#`, a
//! currency sign or `%`, and anything inside a URL or an e-mail address.

use std::sync::LazyLock;

use regex::Regex;

use super::text::{collapse_line, re};
use super::Code;
use shape::{candidates, fold_fullwidth, Candidate};

mod shape;

static POSITIVE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\w*code\b|\bcodes\b|\bpin\b|\botp\b|passcode|pass code|one[- ]?time|verification|\bverif\w*|\b2fa\b|two[- ]factor|2-step|\bmfa\b|c[oó]digo|\bcodice\b|\bkode\b|\bkod\b|bestätigung\w*|einmal\w*|vérification|verificación|verificação|verificatie\w*|コード|認証番号|確認番号|暗証番号|パスコード|验证码|校验码|驗證碼",
    )
});

static NEGATIVE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?ix)
        \b(?:zip|postal|post|area|country|bar|qr|promo|promotional|discount|coupon|voucher|gift|referral|source|dress|tracking|gutschein|rabatt|postleit|invite|invitation)[-\ ]?codes?\b
        | \b(?:category|sort|swift|bank|branch|routing|tax|country|dial|area|error|status|exit|response|reason|http|product|item|style|color|colour|hs|tariff)\ code | \bmcc\b | \brouting\ number
        | \bcode\s+review | \bpull\ request
        | \b(?:account|customer|member|membership|kunden|client|policy|confirmation|phone|mobile)[-\ ]?(?:number|no\.?|nr\.?|\#|id)\b
        | \b(?:order|orders|bestellung|bestellnummer|commande|pedido|ordine|bestelling|encomenda
        |invoice|rechnung|rechnungsnummer|facture|factura|fattura|factuur|fatura|receipt|quittung|reçu|recibo
        |tracking|sendungsnummer|shipment|parcel|package|paket|colis|paquete
        |ref|reference|referenz|référence|referencia|booking|buchung|reservation|réservation|reserva
        |transaction|transaktion|ticket|case|serial|sku|item|artikel|model|flight|seat|gate|room|iban|bic
        |suite|ste|apt|street|st|ave|avenue|road|rd|blvd|straße|strasse|rue|calle|plz|postcode|zip
        |pr|issue|bug|commit|tel|fax|call|usd|eur|gbp|chf|jpy|cad|aud|ending|endet|last\ 4|version|build)\b
        | \#|№|\$|€|£|¥|₹
    ")
});

/// Promotions: a "code" on such a line is a discount, never a login.
static PROMO: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\bpromo|coupon|discount|voucher|gift ?card|referral|\d+\s?% off|\brabatt|gutschein|réduction|descuento|cupón|sconto|at checkout",
    )
});

/// Right after one of these, a candidate is surely the code (a year or plain capitals too).
static STRONG_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)(?:code|passcode|otp|pin|c[oó]digo|codice|コード|验证码)\s*(?:is|lautet|est|es|é|è|ist|は|:|：|-)?\s*[:：]?\s*$",
    )
});

static URL_OR_EMAIL: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)https?://\S+|www\.\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"));

/// How far (in bytes) a code word may be from the candidate on the same line.
const PREFIX_WINDOW: usize = 120;
const SUFFIX_WINDOW: usize = 80;
/// Negative words only veto from close by ("Order 5512340", "1299 EUR"): in "Your OTP for
/// transaction of INR 5,000.00 is 482913" the transaction is not what the number is.
const CLOSE_BEFORE: usize = 32;
const CLOSE_AFTER: usize = 16;
/// A message has few real codes; more candidates than this means we are reading noise.
const MAX_CODES: usize = 5;
const MAX_CONTEXT: usize = 240;

/// Codes in the body, then any in the subject that the body did not already have.
pub(crate) fn find(subject: &str, body: &str) -> Vec<Code> {
    let mut out = scan(body);
    for code in scan(subject) {
        if !out.iter().any(|c| c.code == code.code) {
            out.push(code);
        }
    }
    out.truncate(MAX_CODES);
    out
}

fn scan(text: &str) -> Vec<Code> {
    let lines: Vec<String> = text
        .lines()
        .map(|l| collapse_line(&URL_OR_EMAIL.replace_all(&fold_fullwidth(l), " ")))
        .collect();
    let mut out: Vec<Code> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        for cand in candidates(line) {
            if out.iter().any(|c| c.code == cand.code) || !accepted(&lines, i, &cand) {
                continue;
            }
            out.push(Code {
                code: cand.code.clone(),
                context: context(&lines, i, &cand),
            });
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Positive,
    Negative,
}

/// The keyword nearest to the end of `s` (for text before a candidate).
fn last_signal(s: &str) -> Option<Signal> {
    let pos = POSITIVE.find_iter(s).map(|m| m.end()).max();
    let neg = NEGATIVE.find_iter(s).map(|m| m.end()).max();
    match (pos, neg) {
        (Some(p), Some(n)) if n >= p => Some(Signal::Negative),
        (Some(_), _) => Some(Signal::Positive),
        (None, Some(_)) => Some(Signal::Negative),
        (None, None) => None,
    }
}

/// The keyword nearest to the start of `s` (for text after a candidate).
fn first_signal(s: &str) -> Option<Signal> {
    let pos = POSITIVE.find(s).map(|m| m.start());
    let neg = NEGATIVE.find(s).map(|m| m.start());
    match (pos, neg) {
        (Some(p), Some(n)) if n <= p => Some(Signal::Negative),
        (Some(_), _) => Some(Signal::Positive),
        (None, Some(_)) => Some(Signal::Negative),
        (None, None) => None,
    }
}

fn window_before(line: &str, at: usize, len: usize) -> &str {
    let mut from = at.saturating_sub(len);
    while !line.is_char_boundary(from) {
        from += 1;
    }
    &line[from..at]
}

fn window_after(line: &str, at: usize, len: usize) -> &str {
    let mut to = (at + len).min(line.len());
    while !line.is_char_boundary(to) {
        to -= 1;
    }
    &line[at..to]
}

/// Close by, the nearest keyword decides (positive or negative); farther away on the line
/// only code words count; for a code alone on its line, the lines around it decide.
fn accepted(lines: &[String], i: usize, cand: &Candidate) -> bool {
    let line = &lines[i];
    if PROMO.is_match(line) {
        return false;
    }
    let close_before = window_before(line, cand.start, CLOSE_BEFORE);
    if cand.weak && !STRONG_PREFIX.is_match(close_before) {
        return false;
    }
    let close_after = window_after(line, cand.end, CLOSE_AFTER);
    let signal = last_signal(close_before)
        .or_else(|| first_signal(close_after))
        .or_else(|| {
            let far = POSITIVE.is_match(window_before(line, cand.start, PREFIX_WINDOW))
                || POSITIVE.is_match(window_after(line, cand.end, SUFFIX_WINDOW));
            far.then_some(Signal::Positive)
        })
        .or_else(|| {
            alone_on_line(line, cand)
                .then(|| nearby_signal(lines, i))
                .flatten()
        });
    signal == Some(Signal::Positive)
}

/// The code is (nearly) all its line holds, as in a big code in its own HTML cell.
fn alone_on_line(line: &str, cand: &Candidate) -> bool {
    let rest = line[..cand.start].chars().chain(line[cand.end..].chars());
    rest.filter(|c| c.is_alphanumeric()).count() <= 3
}

/// A keyword on the closest non-blank line above, or failing that, below.
fn nearby_signal(lines: &[String], i: usize) -> Option<Signal> {
    let above = lines[..i]
        .iter()
        .rev()
        .take(3)
        .find(|l| !l.trim().is_empty());
    let below = lines[i + 1..].iter().take(3).find(|l| !l.trim().is_empty());
    above
        .and_then(|l| last_signal(l))
        .or_else(|| below.and_then(|l| first_signal(l)))
}

/// The sentence around the code; for a code alone on its line, the line above and it.
fn context(lines: &[String], i: usize, cand: &Candidate) -> String {
    let line = &lines[i];
    let ctx = if alone_on_line(line, cand) {
        match lines[..i]
            .iter()
            .rev()
            .take(3)
            .find(|l| !l.trim().is_empty())
        {
            Some(above) => format!("{} {}", above.trim(), line.trim()),
            None => line.trim().to_string(),
        }
    } else {
        sentence(line, cand.start, cand.end).to_string()
    };
    if ctx.chars().count() <= MAX_CONTEXT {
        return ctx;
    }
    ctx.chars().take(MAX_CONTEXT).collect::<String>() + "…"
}

fn sentence(line: &str, start: usize, end: usize) -> &str {
    let is_stop = |w: &[u8]| matches!(w, [b'.' | b'!' | b'?', b' ']);
    let bytes = line.as_bytes();
    let from = (1..start)
        .rev()
        .find(|&k| is_stop(&bytes[k - 1..=k]))
        .map(|k| k + 1)
        .unwrap_or(0);
    let to = (end..bytes.len().saturating_sub(1))
        .find(|&k| is_stop(&bytes[k..=k + 1]))
        .map(|k| k + 1)
        .unwrap_or(line.len());
    line.get(from..to).unwrap_or(line).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        LazyLock::force(&POSITIVE);
        LazyLock::force(&NEGATIVE);
        LazyLock::force(&PROMO);
        LazyLock::force(&STRONG_PREFIX);
        LazyLock::force(&URL_OR_EMAIL);
    }

    fn codes(text: &str) -> Vec<String> {
        find("", text).into_iter().map(|c| c.code).collect()
    }

    #[test]
    fn plain_phrasings() {
        assert_eq!(codes("Your verification code is 482913."), ["482913"]);
        assert_eq!(
            codes("482913 is your Instagram code. Don't share it."),
            ["482913"]
        );
        assert_eq!(codes("Use code 5521 to sign in"), ["5521"]);
        assert_eq!(codes("Your one-time passcode: 83920174"), ["83920174"]);
        assert_eq!(
            codes("G-482915 is your Google verification code."),
            ["482915"]
        );
        assert_eq!(codes("Your login code: K7FQ2M"), ["K7FQ2M"]);
    }

    #[test]
    fn split_codes_are_joined() {
        assert_eq!(codes("Your code is 482 913"), ["482913"]);
        assert_eq!(codes("Verification code: 4829-1377"), ["48291377"]);
        assert_eq!(codes("Your sign-in code: K7F-Q2M"), ["K7FQ2M"]);
    }

    #[test]
    fn code_alone_on_its_line() {
        assert_eq!(
            codes("Enter this code to continue:\n\n  739104  \n\nIt expires in 10 minutes."),
            ["739104"]
        );
        assert_eq!(codes("739104\nThis is your login code"), ["739104"]);
        let c = find("", "Your login code\n\n739104");
        assert_eq!(c[0].context, "Your login code 739104");
    }

    #[test]
    fn other_languages() {
        assert_eq!(codes("Ihr Bestätigungscode lautet: 734291"), ["734291"]);
        assert_eq!(codes("Tu código de verificación es 551203"), ["551203"]);
        assert_eq!(codes("Votre code de vérification : 902114"), ["902114"]);
        assert_eq!(codes("認証コードは482913です。"), ["482913"]);
        assert_eq!(codes("確認コード：４８２９１３"), ["482913"]);
    }

    #[test]
    fn numbers_that_are_not_codes() {
        for text in [
            "Order #12345678 confirmed. Total: $1,234.56",
            "Order number 5512340 has shipped",
            "Invoice no. 20240117 for $49.00",
            "Call us at (555) 123-4567 or +1 555 123 4567",
            "Delivered on 2024-01-08 at 10:30",
            "Copyright 2024 Acme Inc.",
            "Acme Inc, 548 Market St, San Francisco, CA 94104",
            "Tracking number: 1Z999AA10123456784",
            "Use promo code SAVE20 for 20% off at checkout",
            "Enter your zip code 94103 to find a store",
            "Your account number 55123411 has a new statement",
            "The meeting is on 12/05/2024 in room 4102",
            "Price 1299 EUR",
            "Card ending in 4242",
            "Your code review for PR 4821 is ready",
            "The API returned error code 5030 at 10:42",
            "Our code of conduct was updated in 2024",
            "Your Zoom meeting ID is 823 4412 9910",
            "Version 2.4.1 build 20240117 fixes the verification bug",
        ] {
            assert!(
                codes(text).is_empty(),
                "false code in: {text} -> {:?}",
                codes(text)
            );
        }
    }

    #[test]
    fn far_negative_words_do_not_veto() {
        assert_eq!(
            codes("Your OTP for transaction of INR 5,000.00 at Acme Store is 482913"),
            ["482913"]
        );
        assert_eq!(
            codes("Use this code to verify your account: 482913"),
            ["482913"]
        );
        assert!(codes("Verification complete. Reference number: 88231904").is_empty());
    }

    #[test]
    fn year_only_in_strong_position() {
        assert!(codes("Verification for 2024 is done").is_empty());
        assert_eq!(codes("Your code: 2024"), ["2024"]);
    }

    #[test]
    fn order_then_code_on_one_line() {
        assert_eq!(
            codes("To confirm changes to order 5512340, your verification code is 661204"),
            ["661204"]
        );
    }

    #[test]
    fn codes_inside_urls_are_ignored() {
        assert!(codes("Verify: https://ex.example/verify?code=482913").is_empty());
    }

    #[test]
    fn subject_codes_after_body_codes() {
        let c = find("123456 is your code", "Your verification code is 123456");
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].context, "Your verification code is 123456");
        let c = find("Your Acme code: 654321", "Hello");
        assert_eq!(c[0].code, "654321");
    }

    #[test]
    fn context_is_the_sentence() {
        let c = find(
            "",
            "Hi Sam. Thanks for signing up! Your verification code is 482913. It expires soon.",
        );
        assert_eq!(c[0].context, "Your verification code is 482913.");
    }
}

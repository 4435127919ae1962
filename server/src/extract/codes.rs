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

use super::text::collapse_line;
use super::Code;

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static regex")
}

static POSITIVE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\w*code\b|\bcodes\b|\bpin\b|\botp\b|passcode|pass code|one[- ]?time|verification|\bverif\w*|\b2fa\b|two[- ]factor|2-step|\bmfa\b|c[oó]digo|\bcodice\b|\bkode\b|\bkod\b|bestätigung\w*|einmal\w*|vérification|verificación|verificação|verificatie\w*|コード|認証番号|確認番号|暗証番号|パスコード|验证码|校验码|驗證碼",
    )
});

static NEGATIVE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?ix)
        \b(?:zip|postal|post|area|country|bar|qr|promo|promotional|discount|coupon|voucher|gift|referral|source|dress|tracking|gutschein|rabatt|postleit|invite|invitation)[-\ ]?codes?\b
        | \b(?:category|sort|swift|bank|branch|routing|tax|country|dial|area)\ code | \bmcc\b | \brouting\ number
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

/// How far (in bytes) a keyword may be from the candidate on the same line.
const PREFIX_WINDOW: usize = 120;
const SUFFIX_WINDOW: usize = 80;
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

#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    code: String,
    start: usize,
    end: usize,
    /// Shapes that are codes only in a strong position (years, capitals only).
    weak: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Digits,
    Upper,
    UpperAlnum,
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    s: &'a str,
    start: usize,
    end: usize,
    class: Class,
}

fn tokens(line: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in line
        .char_indices()
        .chain(std::iter::once((line.len(), ' ')))
    {
        match (c.is_ascii_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                let text = &line[s..i];
                out.push(Token {
                    s: text,
                    start: s,
                    end: i,
                    class: classify(text),
                });
                start = None;
            }
            _ => {}
        }
    }
    out
}

fn classify(s: &str) -> Class {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    let upper = s.bytes().filter(u8::is_ascii_uppercase).count();
    match (digits, upper) {
        (d, _) if d == s.len() => Class::Digits,
        (0, u) if u == s.len() => Class::Upper,
        (d, u) if d + u == s.len() => Class::UpperAlnum,
        _ => Class::Other,
    }
}

/// The separator between two tokens, if it is a single space, hyphen or dot.
fn joiner<'a>(line: &'a str, a: &Token<'_>, b: &Token<'_>) -> Option<&'a str> {
    let sep = line.get(a.end..b.start)?;
    matches!(sep, " " | "-" | "." | "\u{2013}").then_some(sep)
}

fn candidates(line: &str) -> Vec<Candidate> {
    let toks = tokens(line);
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        // A run: code-ish tokens joined by single separators.
        let mut j = i + 1;
        while j < toks.len()
            && toks[j - 1].class != Class::Other
            && toks[j].class != Class::Other
            && joiner(line, &toks[j - 1], &toks[j]).is_some()
        {
            j += 1;
        }
        let run = &toks[i..j];
        out.extend(from_run(line, run));
        i = j;
    }
    out.retain(|c| boundary_ok(line, c.start, c.end));
    out
}

fn from_run(line: &str, run: &[Token<'_>]) -> Vec<Candidate> {
    let all_digits = run.iter().all(|t| t.class == Class::Digits);
    let span = |a: &Token<'_>, b: &Token<'_>, code: String, weak: bool| Candidate {
        code,
        start: a.start,
        end: b.end,
        weak,
    };
    match run {
        [t] => single(t).into_iter().collect(),
        [a, b] => {
            let sep = joiner(line, a, b).unwrap_or_default();
            let equal = a.s.len() == b.s.len() && (a.s.len() == 3 || a.s.len() == 4);
            let joined = format!("{}{}", a.s, b.s);
            if all_digits && equal && (sep == " " || sep == "-") {
                vec![span(a, b, joined, false)]
            } else if !all_digits && equal && sep == "-" {
                let has_digit = joined.bytes().any(|c| c.is_ascii_digit());
                let has_alpha = joined.bytes().any(|c| c.is_ascii_alphabetic());
                vec![span(a, b, joined, !(has_digit && has_alpha))]
            } else if a.s.len() == 1
                && a.class == Class::Upper
                && sep == "-"
                && b.class == Class::Digits
                && (4..=8).contains(&b.s.len())
            {
                vec![span(a, b, b.s.to_string(), false)]
            } else if !all_digits {
                // "CODE 123456", "IS 482913": a word in capitals next to a code.
                run.iter().filter_map(single).collect()
            } else {
                Vec::new()
            }
        }
        _ if all_digits => Vec::new(), // phone numbers, dates, card numbers
        _ => run
            .iter()
            .filter(|t| t.class != Class::Digits || !line_has_digit_neighbour(line, run, t))
            .filter_map(single)
            .collect(),
    }
}

/// In a mixed run ("YOUR CODE IS 482913"), a digit token next to another digit token is
/// part of a number, not a code.
fn line_has_digit_neighbour(line: &str, run: &[Token<'_>], t: &Token<'_>) -> bool {
    run.windows(2).any(|w| {
        (w[0].start == t.start && w[1].class == Class::Digits
            || w[1].start == t.start && w[0].class == Class::Digits)
            && joiner(line, &w[0], &w[1]).is_some()
    })
}

fn single(t: &Token<'_>) -> Option<Candidate> {
    let len = t.s.len();
    let c = |weak: bool| Candidate {
        code: t.s.to_string(),
        start: t.start,
        end: t.end,
        weak,
    };
    match t.class {
        Class::Digits if (4..=8).contains(&len) => {
            let year = len == 4 && matches!(t.s.parse::<u32>(), Ok(1900..=2100));
            Some(c(year))
        }
        Class::UpperAlnum if (4..=8).contains(&len) && !is_unit(t.s) => Some(c(false)),
        Class::Upper if (6..=8).contains(&len) => Some(c(true)),
        _ => None,
    }
}

/// "10AM", "100MB", "24H": a number with a unit.
fn is_unit(s: &str) -> bool {
    let letters = s.trim_start_matches(|c: char| c.is_ascii_digit());
    letters.len() < s.len() && letters.len() <= 3 && letters.bytes().all(|c| c.is_ascii_uppercase())
}

/// Refuses numbers that continue past the token: decimals, thousands, times, dates with
/// slashes, `#12345`, `$1234`, `1234%`, `x_1234`.
fn boundary_ok(line: &str, start: usize, end: usize) -> bool {
    let before: Vec<char> = line[..start].chars().rev().take(2).collect();
    let after: Vec<char> = line[end..].chars().take(2).collect();
    let glued_before = |c: char| "#$€£¥₹+@/\\_=&%№".contains(c);
    let glued_after = |c: char| "%$€£/\\_@=".contains(c);
    let numeric_sep = |c: char| ".,:".contains(c);
    if let Some(&b) = before.first() {
        if glued_before(b) || numeric_sep(b) && before.get(1).is_some_and(char::is_ascii_digit) {
            return false;
        }
    }
    if let Some(&a) = after.first() {
        if glued_after(a) || numeric_sep(a) && after.get(1).is_some_and(char::is_ascii_alphanumeric)
        {
            return false;
        }
    }
    true
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

fn window_before(line: &str, at: usize) -> &str {
    let mut from = at.saturating_sub(PREFIX_WINDOW);
    while !line.is_char_boundary(from) {
        from += 1;
    }
    &line[from..at]
}

fn window_after(line: &str, at: usize) -> &str {
    let mut to = (at + SUFFIX_WINDOW).min(line.len());
    while !line.is_char_boundary(to) {
        to -= 1;
    }
    &line[at..to]
}

fn accepted(lines: &[String], i: usize, cand: &Candidate) -> bool {
    let line = &lines[i];
    if PROMO.is_match(line) {
        return false;
    }
    let before = window_before(line, cand.start);
    let strong = STRONG_PREFIX.is_match(before);
    if cand.weak && !strong {
        return false;
    }
    let signal = last_signal(before)
        .or_else(|| first_signal(window_after(line, cand.end)))
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

/// Full-width digits and Latin letters (common in Japanese mail) as ASCII.
fn fold_fullwidth(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{ff10}'..='\u{ff19}' | '\u{ff21}'..='\u{ff3a}' | '\u{ff41}'..='\u{ff5a}' => {
                char::from_u32(c as u32 - 0xfee0).unwrap_or(c)
            }
            _ => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ] {
            assert!(
                codes(text).is_empty(),
                "false code in: {text} -> {:?}",
                codes(text)
            );
        }
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

//! Candidate shapes: which strings could be a code at all, before any keyword is read.
//!
//! Tokens are runs of ASCII letters and digits; a run is tokens joined by one space, hyphen
//! or dot. A run of digits with more than two parts is a phone number, a date, an IBAN or a
//! card number, never a code; two equal parts of 3 or 4 are a split code ("123 456").

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Candidate {
    pub code: String,
    pub start: usize,
    pub end: usize,
    /// Shapes that are codes only in a strong position (years, capitals only).
    pub weak: bool,
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

pub(super) fn candidates(line: &str) -> Vec<Candidate> {
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

/// Full-width digits and Latin letters (common in Japanese mail) as ASCII.
pub(super) fn fold_fullwidth(s: &str) -> String {
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

    fn shapes(line: &str) -> Vec<String> {
        candidates(line).into_iter().map(|c| c.code).collect()
    }

    #[test]
    fn digit_runs() {
        assert_eq!(shapes("code 482913 now"), ["482913"]);
        assert_eq!(shapes("482 913"), ["482913"]);
        assert_eq!(shapes("4829-1377"), ["48291377"]);
        assert!(shapes("+1 302 555 0163").is_empty());
        assert!(shapes("2024-01-22").is_empty());
        assert!(shapes("123-4567").is_empty());
        assert!(shapes("12 oz").is_empty());
    }

    #[test]
    fn letters_and_digits() {
        assert_eq!(shapes("K7FQ2M"), ["K7FQ2M"]);
        assert_eq!(shapes("K7F-Q2M"), ["K7FQ2M"]);
        assert_eq!(shapes("G-482915"), ["482915"]);
        assert!(shapes("100MB 10AM").is_empty());
        assert!(shapes("1Z999AA10123456784").is_empty());
        let weak: Vec<bool> = candidates("QWERTY 2024")
            .into_iter()
            .map(|c| c.weak)
            .collect();
        assert_eq!(weak, [true, true]);
    }

    #[test]
    fn glued_numbers_refused() {
        for s in [
            "#12345",
            "$1234",
            "1234%",
            "1,234.56",
            "12:30",
            "01/08/2024",
            "x_1234",
            "a@1234",
        ] {
            assert!(shapes(s).is_empty(), "{s}");
        }
        assert_eq!(shapes("(code: 1234)."), ["1234"]);
    }

    #[test]
    fn fullwidth_folds() {
        assert_eq!(
            fold_fullwidth("コード：４８２９１３ＡＢ"),
            "コード：482913AB"
        );
    }
}

//! Text -> search terms: Unicode word segmentation (UAX #29), lower case, accents folded.
//!
//! The same function turns a message into the terms it is indexed under and a query into
//! the terms it looks for, so "Zürich", "ZURICH" and "zurich" all meet at `zurich`. Pure and
//! bounded: whatever a sender writes, a message yields at most [`MAX_TERMS_PER_MESSAGE`]
//! terms of at most [`MAX_TERM_BYTES`] bytes, so one hostile message cannot write millions
//! of index keys.

use std::collections::HashSet;
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

/// Distinct terms indexed per message. A 4 KB mail has a few hundred; a message past this
/// is either huge or built to flood the index, and its first terms (subject, addresses,
/// then the body in order) are the ones kept. Each term costs one key of about 60 bytes.
pub const MAX_TERMS_PER_MESSAGE: usize = 1000;
/// Longest term, in bytes. Longer words (base64 runs, tracking tokens) are cut to this at a
/// character boundary, in the index and in queries alike, so a long query word still finds
/// its message by its first [`MAX_TERM_BYTES`] bytes.
pub const MAX_TERM_BYTES: usize = 48;
/// Text read per field. Past a few hundred KB, a body only adds words already seen or hits
/// the term cap; reading on would spend delivery CPU for nothing.
const MAX_FIELD_BYTES: usize = 1 << 20;
/// Words a query may hold: each is one more index walk or check per candidate.
pub const MAX_QUERY_TERMS: usize = 16;

/// Letters that do not decompose under NFD but that people type without their mark.
fn fold_char(c: char, out: &mut String) {
    match c {
        'ß' => out.push_str("ss"),
        'æ' => out.push_str("ae"),
        'œ' => out.push_str("oe"),
        'ø' => out.push('o'),
        'đ' | 'ð' => out.push('d'),
        'ł' => out.push('l'),
        'þ' => out.push_str("th"),
        'ı' => out.push('i'),
        c => out.push(c),
    }
}

/// One word, folded: lower case, canonical decomposition with the combining marks dropped
/// ("Zürich" -> "zurich", "ÉTÉ" -> "ete"), cut to [`MAX_TERM_BYTES`]. Empty when nothing
/// is left, or when a NUL (the key separator) appears.
pub fn fold(word: &str) -> String {
    // Most words are ASCII, where folding is only lower case (NFD leaves ASCII as it is and
    // it has no combining marks): skip the decomposition, the costliest step of indexing.
    if word.is_ascii() {
        if word.contains('\0') {
            return String::new();
        }
        return word[..word.len().min(MAX_TERM_BYTES)].to_ascii_lowercase();
    }
    let mut out = String::with_capacity(word.len());
    for c in word.chars().flat_map(char::to_lowercase).nfd() {
        if c == '\0' {
            return String::new();
        }
        if !is_combining_mark(c) {
            fold_char(c, &mut out);
        }
    }
    truncate(&mut out, MAX_TERM_BYTES);
    out
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// A single ASCII letter or digit says too little to be worth a key of its own (and a
/// one-letter query is a prefix walk anyway); one ideograph is a whole word.
fn worth_indexing(term: &str) -> bool {
    let mut chars = term.chars();
    match (chars.next(), chars.next()) {
        (None, _) => false,
        (Some(c), None) => !c.is_ascii(),
        _ => true,
    }
}

/// Collects the terms of a message in order of first appearance, up to the cap.
#[derive(Default)]
pub struct Terms {
    seen: HashSet<String>,
    order: Vec<String>,
}

impl Terms {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_full(&self) -> bool {
        self.order.len() >= MAX_TERMS_PER_MESSAGE
    }

    fn push(&mut self, term: String) {
        if !self.is_full() && worth_indexing(&term) && !self.seen.contains(&term) {
            self.seen.insert(term.clone());
            self.order.push(term);
        }
    }

    /// Adds the words of `text`. A word joined by `.`, `_`, `'` or `:` (a domain, a file
    /// name, "don't") is indexed whole and by its parts, so `remote.test` is found by
    /// "remote", "test" and "remote.test".
    pub fn add(&mut self, text: &str) {
        let mut end = text.len().min(MAX_FIELD_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        for word in text[..end].unicode_words() {
            if self.is_full() {
                return;
            }
            let whole = fold(word);
            let joined = whole.chars().any(|c| !c.is_alphanumeric());
            self.push(whole);
            if joined {
                for part in word.split(|c: char| !c.is_alphanumeric()) {
                    self.push(fold(part));
                }
            }
        }
    }

    /// The terms, sorted and deduplicated (the order the forward record keeps).
    pub fn into_sorted(self) -> Vec<String> {
        let mut v = self.order;
        v.sort_unstable();
        v
    }
}

/// The terms a query looks for, in the order written, deduplicated. Each is matched as a
/// prefix of an indexed term; all must match.
pub fn query_terms(q: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in q.unicode_words() {
        let t = fold(word);
        if !t.is_empty() && !out.contains(&t) {
            out.push(t);
        }
    }
    // "alice" and "ali" in one query: the shorter adds nothing the longer does not check.
    let all = out.clone();
    out.retain(|t| !all.iter().any(|o| o != t && o.starts_with(t.as_str())));
    out
}

/// Whether `sorted` (a message's terms, sorted) holds a term starting with `prefix`.
pub fn has_prefix(sorted: &[String], prefix: &str) -> bool {
    let i = sorted.partition_point(|t| t.as_str() < prefix);
    sorted.get(i).is_some_and(|t| t.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(text: &str) -> Vec<String> {
        let mut t = Terms::new();
        t.add(text);
        t.into_sorted()
    }

    #[test]
    fn case_and_accents_fold() {
        assert_eq!(fold("Zürich"), "zurich");
        assert_eq!(fold("ZÜR"), "zur");
        assert_eq!(fold("ÉTÉ"), "ete");
        assert_eq!(fold("Straße"), "strasse");
        assert_eq!(fold("Søren"), "soren");
        assert_eq!(fold("naïve"), "naive");
        assert_eq!(fold("Ελλάδα"), "ελλαδα");
        assert_eq!(fold("a\0b"), "");
        // ASCII takes a short cut to the same result.
        assert_eq!(fold("Remote.TEST_42"), "remote.test_42");
        assert_eq!(fold(&"Ab".repeat(40)), "ab".repeat(MAX_TERM_BYTES / 2));
    }

    #[test]
    fn words_are_segmented_by_unicode_rules() {
        assert_eq!(
            terms("Hello, World! Meet me in Zürich."),
            vec!["hello", "in", "me", "meet", "world", "zurich"]
        );
        // Addresses and domains: whole and by parts.
        assert_eq!(
            terms("Alice <alice@remote.test>"),
            vec!["alice", "remote", "remote.test", "test"]
        );
        // Ideographs are words of one character each, and kept.
        let cjk = terms("東京で会議");
        assert!(cjk.contains(&"東".to_string()), "{cjk:?}");
        // Lone ASCII letters and digits are not worth a key; punctuation is no word.
        assert_eq!(terms("a 1 -- ?? ok"), vec!["ok"]);
    }

    #[test]
    fn hostile_input_is_bounded() {
        let long = "x".repeat(10_000);
        let t = terms(&long);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].len(), MAX_TERM_BYTES);
        // A multi-byte character is never cut in half.
        let t = fold(&"é".repeat(100));
        assert!(t.len() <= MAX_TERM_BYTES && t.chars().all(|c| c == 'e'));
        let t = fold(&"東".repeat(100));
        assert!(t.len() <= MAX_TERM_BYTES && t.chars().all(|c| c == '東'));
        // Millions of distinct words: the first MAX_TERMS_PER_MESSAGE are kept.
        let many: String = (0..50_000).map(|i| format!("w{i} ")).collect();
        let mut acc = Terms::new();
        acc.add("subject first");
        acc.add(&many);
        assert!(acc.is_full());
        let t = acc.into_sorted();
        assert_eq!(t.len(), MAX_TERMS_PER_MESSAGE);
        assert!(has_prefix(&t, "subject"));
    }

    #[test]
    fn queries_fold_the_same_way_and_prefixes_match() {
        assert_eq!(query_terms("  ZÜR  "), vec!["zur"]);
        assert_eq!(query_terms("Zurich zur"), vec!["zurich"]);
        assert_eq!(
            query_terms("alice@remote.test"),
            vec!["alice", "remote.test"]
        );
        assert!(query_terms("?! --").is_empty());
        let t = terms("Meeting in Zürich tomorrow");
        assert!(has_prefix(&t, "zur"));
        assert!(has_prefix(&t, "zurich"));
        assert!(has_prefix(&t, "meet"));
        assert!(!has_prefix(&t, "zurichsee"));
        assert!(!has_prefix(&t, "eeting"));
        assert!(!has_prefix(&[], "a"));
    }
}

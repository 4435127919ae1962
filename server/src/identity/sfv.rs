//! The small part of RFC 8941 (Structured Field Values) that RFC 9421 signatures need:
//! dictionaries whose members are items or inner lists, with parameters, parsed strictly and
//! serialized canonically. Input comes from strangers (a `Signature-Input` header handed to
//! the verify route), so every step is bounded and refuses rather than guesses.

use data_encoding::BASE64;

/// Longest structured field we parse (RFC 9421 headers of ours are a few hundred bytes).
pub const MAX_FIELD_LEN: usize = 16 * 1024;
/// Most members, inner-list items or parameters in one place.
const MAX_MEMBERS: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub enum Bare {
    Integer(i64),
    String(String),
    Token(String),
    Bytes(Vec<u8>),
    Boolean(bool),
}

pub type Params = Vec<(String, Bare)>;

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub value: Bare,
    pub params: Params,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Member {
    Item(Item),
    InnerList(Vec<Item>, Params),
}

pub type Dictionary = Vec<(String, Member)>;

pub fn param<'a>(params: &'a Params, name: &str) -> Option<&'a Bare> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// Serializes a bare item (RFC 8941 §4.1.3).
pub fn bare(b: &Bare) -> String {
    match b {
        Bare::Integer(i) => i.to_string(),
        Bare::String(s) => {
            let mut out = String::with_capacity(s.len() + 2);
            out.push('"');
            for c in s.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
            out
        }
        Bare::Token(t) => t.clone(),
        Bare::Bytes(b) => format!(":{}:", BASE64.encode(b)),
        Bare::Boolean(true) => "?1".into(),
        Bare::Boolean(false) => "?0".into(),
    }
}

pub fn params(p: &Params) -> String {
    let mut out = String::new();
    for (k, v) in p {
        out.push(';');
        out.push_str(k);
        if *v != Bare::Boolean(true) {
            out.push('=');
            out.push_str(&bare(v));
        }
    }
    out
}

pub fn item(i: &Item) -> String {
    format!("{}{}", bare(&i.value), params(&i.params))
}

pub fn inner_list(items: &[Item], p: &Params) -> String {
    let inner: Vec<String> = items.iter().map(item).collect();
    format!("({}){}", inner.join(" "), params(p))
}

pub fn member(m: &Member) -> String {
    match m {
        Member::Item(i) => item(i),
        Member::InnerList(items, p) => inner_list(items, p),
    }
}

/// A printable-ASCII string item value (what sf-string allows).
pub fn is_sf_string(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// Parses a dictionary (RFC 8941 §4.2.2). A duplicated key keeps the last value, as the RFC
/// says, but we refuse it instead: two `sig1` labels is an attack, not a mistake.
pub fn parse_dictionary(input: &str) -> Result<Dictionary, String> {
    if input.len() > MAX_FIELD_LEN {
        return Err("the structured field is too long".into());
    }
    let mut p = Parser {
        s: input.as_bytes(),
        i: 0,
    };
    p.skip_sp();
    let mut dict: Dictionary = Vec::new();
    while !p.done() {
        let key = p.key()?;
        let m = if p.eat(b'=') {
            p.member()?
        } else {
            Member::Item(Item {
                value: Bare::Boolean(true),
                params: p.params()?,
            })
        };
        if dict.iter().any(|(k, _)| *k == key) {
            return Err(format!("the key {key} appears twice"));
        }
        if dict.len() == MAX_MEMBERS {
            return Err("too many dictionary members".into());
        }
        dict.push((key, m));
        p.skip_ows();
        if p.done() {
            break;
        }
        if !p.eat(b',') {
            return Err("expected a comma between dictionary members".into());
        }
        p.skip_ows();
        if p.done() {
            return Err("a trailing comma".into());
        }
    }
    Ok(dict)
}

/// Parses one item with its parameters, as a whole field value.
pub fn parse_item(input: &str) -> Result<Item, String> {
    if input.len() > MAX_FIELD_LEN {
        return Err("the structured field is too long".into());
    }
    let mut p = Parser {
        s: input.as_bytes(),
        i: 0,
    };
    p.skip_sp();
    let it = p.item()?;
    p.skip_sp();
    if !p.done() {
        return Err("trailing characters after the item".into());
    }
    Ok(it)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.i >= self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn skip_sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }
    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn key(&mut self) -> Result<String, String> {
        let start = self.i;
        match self.peek() {
            Some(c) if c.is_ascii_lowercase() || c == b'*' => self.i += 1,
            _ => return Err("a key must start with a lowercase letter or *".into()),
        }
        while let Some(c) = self.peek() {
            if c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, b'_' | b'-' | b'.' | b'*')
            {
                self.i += 1;
            } else {
                break;
            }
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn member(&mut self) -> Result<Member, String> {
        if self.peek() == Some(b'(') {
            self.i += 1;
            let mut items = Vec::new();
            loop {
                self.skip_sp();
                if self.eat(b')') {
                    break;
                }
                if items.len() == MAX_MEMBERS {
                    return Err("too many inner-list items".into());
                }
                items.push(self.item()?);
                match self.peek() {
                    Some(b' ' | b')') => {}
                    _ => return Err("an inner list is not closed".into()),
                }
            }
            Ok(Member::InnerList(items, self.params()?))
        } else {
            Ok(Member::Item(self.item()?))
        }
    }

    fn item(&mut self) -> Result<Item, String> {
        let value = self.bare()?;
        Ok(Item {
            value,
            params: self.params()?,
        })
    }

    fn params(&mut self) -> Result<Params, String> {
        let mut out: Params = Vec::new();
        while self.eat(b';') {
            self.skip_sp();
            let k = self.key()?;
            let v = if self.eat(b'=') {
                self.bare()?
            } else {
                Bare::Boolean(true)
            };
            if out.len() == MAX_MEMBERS {
                return Err("too many parameters".into());
            }
            // RFC 8941: a repeated parameter overwrites; keep order of first appearance.
            match out.iter_mut().find(|(ek, _)| *ek == k) {
                Some(e) => e.1 = v,
                None => out.push((k, v)),
            }
        }
        Ok(out)
    }

    fn bare(&mut self) -> Result<Bare, String> {
        match self.peek() {
            Some(b'"') => self.string(),
            Some(b':') => self.bytes(),
            Some(b'?') => {
                self.i += 1;
                match self.peek() {
                    Some(b'1') => {
                        self.i += 1;
                        Ok(Bare::Boolean(true))
                    }
                    Some(b'0') => {
                        self.i += 1;
                        Ok(Bare::Boolean(false))
                    }
                    _ => Err("a boolean is ?0 or ?1".into()),
                }
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => self.integer(),
            Some(c) if c.is_ascii_alphabetic() || c == b'*' => Ok(self.token()),
            _ => Err("expected an item".into()),
        }
    }

    fn integer(&mut self) -> Result<Bare, String> {
        let start = self.i;
        self.eat(b'-');
        let digits = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let n = self.i - digits;
        if n == 0 || n > 15 {
            return Err("an integer has 1 to 15 digits".into());
        }
        if self.peek() == Some(b'.') {
            return Err("decimals are not used in signatures".into());
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Bare::Integer)
            .ok_or_else(|| "not an integer".into())
    }

    fn string(&mut self) -> Result<Bare, String> {
        self.i += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err("a string is not closed".into()),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(Bare::String(out));
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c as char);
                            self.i += 1;
                        }
                        _ => return Err("a string escapes only \" and \\".into()),
                    }
                }
                Some(c) if (0x20..0x7f).contains(&c) => {
                    out.push(c as char);
                    self.i += 1;
                }
                Some(_) => return Err("a string holds printable ASCII only".into()),
            }
        }
    }

    fn token(&mut self) -> Bare {
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&c) {
                self.i += 1;
            } else {
                break;
            }
        }
        Bare::Token(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn bytes(&mut self) -> Result<Bare, String> {
        self.i += 1;
        let start = self.i;
        while self.peek().is_some_and(|c| c != b':') {
            self.i += 1;
        }
        if !self.eat(b':') {
            return Err("a byte sequence is not closed".into());
        }
        BASE64
            .decode(&self.s[start..self.i - 1])
            .map(Bare::Bytes)
            .map_err(|_| "a byte sequence is not base64".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_signature_input() {
        let s = r#"sig1=("@authority" "signature-agent";key="sig1");created=1735689600;keyid="poqk";alg="ed25519";expires=1735693200;tag="web-bot-auth""#;
        let d = parse_dictionary(s).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(format!("{}={}", d[0].0, member(&d[0].1)), s);
        let Member::InnerList(items, p) = &d[0].1 else {
            panic!()
        };
        assert_eq!(
            items[1].params,
            vec![("key".into(), Bare::String("sig1".into()))]
        );
        assert_eq!(param(p, "created"), Some(&Bare::Integer(1735689600)));
        let sig = parse_dictionary("sig1=:AAEC:, b=?0, c;x").unwrap();
        assert_eq!(
            sig[0].1,
            Member::Item(Item {
                value: Bare::Bytes(vec![0, 1, 2]),
                params: vec![]
            })
        );
        assert_eq!(member(&sig[2].1), "?1;x");
    }

    #[test]
    fn refuses_malformed_fields() {
        for bad in [
            "Sig=1",
            "a=1,",
            "a=1 b=2",
            "a=(1 2",
            "a=\"open",
            "a=\"\\n\"",
            "a=:!!:",
            "a=1.5",
            "a=1, a=2",
            "a=1234567890123456",
            "a=\"\u{e9}\"",
        ] {
            assert!(parse_dictionary(bad).is_err(), "{bad}");
        }
        assert!(parse_dictionary(&"a".repeat(MAX_FIELD_LEN + 1)).is_err());
        let many: Vec<String> = (0..=MAX_MEMBERS).map(|i| format!("k{i}=1")).collect();
        assert!(parse_dictionary(&many.join(",")).is_err());
        assert_eq!(
            parse_item(" \"x\\\"y\" ").unwrap().value,
            Bare::String("x\"y".into())
        );
        assert!(parse_item("\"x\" y").is_err());
    }
}

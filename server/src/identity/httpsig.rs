//! RFC 9421 HTTP Message Signatures for requests, as pure functions: validating the request a
//! caller describes, naming covered components, and building the signature base (§2.5).
//!
//! The Web Bot Auth profile (draft-meunier-web-bot-auth-architecture) is applied by
//! `webbot.rs`: Ed25519, `tag="web-bot-auth"`, `created`/`expires`, `keyid` = the RFC 7638
//! JWK thumbprint, and a `Signature-Agent` dictionary member pointing at the key directory,
//! covered as `"signature-agent";key="<label>"`.

use super::sfv::{self, Bare, Item, Member, Params};
use data_encoding::BASE64URL_NOPAD;
use sha2::{Digest, Sha256};

/// Limits on what a caller may ask us to sign (or to verify).
pub const MAX_URL_LEN: usize = 8 * 1024;
pub const MAX_HEADERS: usize = 64;
pub const MAX_HEADER_NAME_LEN: usize = 128;
pub const MAX_HEADER_VALUE_LEN: usize = 8 * 1024;
pub const MAX_HEADERS_TOTAL: usize = 64 * 1024;
pub const MAX_COMPONENTS: usize = 32;
const MAX_METHOD_LEN: usize = 32;

/// Derived components (RFC 9421 §2.2) a request signature may cover. `@status` belongs to
/// responses, `@query-param` needs a name parameter we do not offer.
const DERIVED: [&str; 7] = [
    "@method",
    "@target-uri",
    "@authority",
    "@scheme",
    "@request-target",
    "@path",
    "@query",
];

/// Headers a signature can never cover: they are the signature.
const SIGNATURE_FIELDS: [&str; 2] = ["signature", "signature-input"];

/// A request to sign or verify, already checked against the limits above.
#[derive(Debug, Clone)]
pub struct RequestParts {
    pub method: String,
    pub url: url::Url,
    /// Lowercased names, values trimmed, in the order given.
    pub headers: Vec<(String, String)>,
}

impl RequestParts {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A field name as HTTP allows it (a token), lowercased.
pub fn field_name(name: &str) -> Result<String, String> {
    if name.is_empty() || name.len() > MAX_HEADER_NAME_LEN || !name.bytes().all(is_tchar) {
        return Err(format!(
            "header name {:?} is not an HTTP token of 1 to {MAX_HEADER_NAME_LEN} characters",
            truncate(name)
        ));
    }
    Ok(name.to_ascii_lowercase())
}

/// A field value: visible characters, spaces and tabs, nothing that could split a header.
pub fn field_value(name: &str, value: &str) -> Result<String, String> {
    if value.len() > MAX_HEADER_VALUE_LEN {
        return Err(format!(
            "the value of {name} is longer than {MAX_HEADER_VALUE_LEN} bytes"
        ));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!(
            "the value of {name} holds a control character (CR, LF, NUL...)"
        ));
    }
    Ok(value.trim_matches([' ', '\t']).to_string())
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

/// Checks a caller's description of a request.
pub fn request_parts(
    method: &str,
    url: &str,
    headers: &[(String, String)],
) -> Result<RequestParts, String> {
    if method.is_empty() || method.len() > MAX_METHOD_LEN || !method.bytes().all(is_tchar) {
        return Err("method must be an HTTP token (GET, POST, ...)".into());
    }
    if url.len() > MAX_URL_LEN || url.chars().any(char::is_control) {
        return Err(format!(
            "url must be at most {MAX_URL_LEN} bytes with no control characters"
        ));
    }
    let mut u = url::Url::parse(url).map_err(|e| format!("url is not an absolute URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err("url must be an http or https URL with a host".into());
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("url must not carry credentials".into());
    }
    u.set_fragment(None);
    if headers.len() > MAX_HEADERS {
        return Err(format!("at most {MAX_HEADERS} headers"));
    }
    let mut total = 0;
    let mut out: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (n, v) in headers {
        let name = field_name(n)?;
        let value = field_value(&name, v)?;
        total += name.len() + value.len();
        if total > MAX_HEADERS_TOTAL {
            return Err(format!("headers exceed {MAX_HEADERS_TOTAL} bytes in total"));
        }
        if out.iter().any(|(e, _)| *e == name) {
            return Err(format!("header {name} is given twice"));
        }
        out.push((name, value));
    }
    Ok(RequestParts {
        method: method.to_string(),
        url: u,
        headers: out,
    })
}

/// One covered component: a derived one (`@authority`), a whole field (`content-type`), or a
/// member of a dictionary field (`"signature-agent";key="sig1"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    pub name: String,
    pub key: Option<String>,
}

impl Component {
    pub fn derived(name: &str) -> Component {
        Component {
            name: name.into(),
            key: None,
        }
    }

    /// As it appears in `Signature-Input` and in the signature base.
    pub fn id(&self) -> String {
        sfv::item(&self.to_item())
    }

    fn to_item(&self) -> Item {
        let mut params: Params = Vec::new();
        if let Some(k) = &self.key {
            params.push(("key".into(), Bare::String(k.clone())));
        }
        Item {
            value: Bare::String(self.name.clone()),
            params,
        }
    }

    /// From an inner-list item of a received `Signature-Input`.
    pub fn from_item(item: &Item) -> Result<Component, String> {
        let Bare::String(name) = &item.value else {
            return Err("a component identifier is a string".into());
        };
        let mut key = None;
        for (p, v) in &item.params {
            match (p.as_str(), v) {
                ("key", Bare::String(k)) => key = Some(k.clone()),
                _ => return Err(format!("component parameter {p} is not supported")),
            }
        }
        Component::new(name, key)
    }

    /// A component a caller asked for: `@authority`, `content-type`, or
    /// `signature-agent;key=sig1` (quotes optional).
    pub fn parse(spec: &str) -> Result<Component, String> {
        let spec = spec.trim();
        let (name, key) = match spec.split_once(';') {
            None => (spec.trim_matches('"'), None),
            Some((n, p)) => {
                let k = p.trim().strip_prefix("key=").ok_or_else(|| {
                    format!("component {:?}: only ;key= is supported", truncate(spec))
                })?;
                (
                    n.trim().trim_matches('"'),
                    Some(k.trim_matches('"').to_string()),
                )
            }
        };
        Component::new(name, key)
    }

    fn new(name: &str, key: Option<String>) -> Result<Component, String> {
        if name.starts_with('@') {
            if !DERIVED.contains(&name) {
                return Err(format!("unknown derived component {:?}", truncate(name)));
            }
            if key.is_some() {
                return Err(format!("{name} takes no parameters"));
            }
            return Ok(Component::derived(name));
        }
        let lower = field_name(name)?;
        if lower != name {
            return Err(format!("component {name} must be lowercase"));
        }
        if SIGNATURE_FIELDS.contains(&name) {
            return Err(format!("a signature cannot cover the {name} header"));
        }
        if let Some(k) = &key {
            if k.is_empty() || sfv::parse_dictionary(&format!("{k}=1")).is_err() {
                return Err(format!("{:?} is not a dictionary key", truncate(k)));
            }
        }
        Ok(Component {
            name: name.into(),
            key,
        })
    }

    /// This component's value in `req` (RFC 9421 §2.1, §2.2).
    pub fn value(&self, req: &RequestParts) -> Result<String, String> {
        let u = &req.url;
        let v = match self.name.as_str() {
            "@method" => req.method.clone(),
            "@target-uri" => u.as_str().to_string(),
            "@authority" => authority(u),
            "@scheme" => u.scheme().to_string(),
            "@path" => u.path().to_string(),
            "@query" => format!("?{}", u.query().unwrap_or("")),
            "@request-target" => match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_string(),
            },
            field => {
                let raw = req
                    .header(field)
                    .ok_or_else(|| format!("the request has no {field} header to cover"))?;
                match &self.key {
                    None => raw.to_string(),
                    Some(k) => {
                        let dict = sfv::parse_dictionary(raw)
                            .map_err(|e| format!("{field} is not a dictionary: {e}"))?;
                        let m = dict
                            .iter()
                            .find(|(dk, _)| dk == k)
                            .ok_or_else(|| format!("{field} has no member {k}"))?;
                        sfv::member(&m.1)
                    }
                }
            }
        };
        Ok(v)
    }
}

/// `@authority`: host (lowercased by the URL parser) and port unless it is the default.
pub fn authority(u: &url::Url) -> String {
    let host = u.host_str().unwrap_or_default();
    match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

/// The signature parameters, in the order we emit them.
#[derive(Debug, Clone, PartialEq)]
pub struct SigParams {
    pub created: i64,
    pub expires: i64,
    pub keyid: String,
    pub alg: String,
    pub nonce: Option<String>,
    pub tag: String,
}

impl SigParams {
    fn to_params(&self) -> Params {
        let mut p: Params = vec![
            ("created".into(), Bare::Integer(self.created)),
            ("expires".into(), Bare::Integer(self.expires)),
            ("keyid".into(), Bare::String(self.keyid.clone())),
            ("alg".into(), Bare::String(self.alg.clone())),
        ];
        if let Some(n) = &self.nonce {
            p.push(("nonce".into(), Bare::String(n.clone())));
        }
        p.push(("tag".into(), Bare::String(self.tag.clone())));
        p
    }

    /// `@signature-params` value: the inner list with its parameters.
    pub fn serialize(&self, components: &[Component]) -> String {
        let items: Vec<Item> = components.iter().map(Component::to_item).collect();
        sfv::inner_list(&items, &self.to_params())
    }
}

/// The signature base (RFC 9421 §2.5) for `components` of `req`, closing with
/// `@signature-params` serialized exactly as `params_value` (the received or emitted text).
pub fn signature_base(
    req: &RequestParts,
    components: &[Component],
    params_value: &str,
) -> Result<String, String> {
    if components.len() > MAX_COMPONENTS {
        return Err(format!("at most {MAX_COMPONENTS} components"));
    }
    let mut out = String::new();
    for (i, c) in components.iter().enumerate() {
        if components[..i].contains(c) {
            return Err(format!("component {} is listed twice", c.id()));
        }
        out.push_str(&c.id());
        out.push_str(": ");
        out.push_str(&c.value(req)?);
        out.push('\n');
    }
    out.push_str("\"@signature-params\": ");
    out.push_str(params_value);
    Ok(out)
}

/// A received signature, from `Signature-Input` and `Signature` for one label.
#[derive(Debug, Clone)]
pub struct Received {
    pub label: String,
    pub components: Vec<Component>,
    /// The parameters as text, for the signature base, and as values.
    pub params_text: String,
    pub params: Params,
    pub signature: Vec<u8>,
}

/// Picks the signature to check: `label` if given, else the one tagged `tag`.
pub fn received(
    signature_input: &str,
    signature: &str,
    label: Option<&str>,
    tag: &str,
) -> Result<Received, String> {
    let inputs =
        sfv::parse_dictionary(signature_input).map_err(|e| format!("Signature-Input: {e}"))?;
    let sigs = sfv::parse_dictionary(signature).map_err(|e| format!("Signature: {e}"))?;
    let (name, m) = inputs
        .iter()
        .find(|(k, m)| match label {
            Some(l) => k == l,
            None => matches!(m, Member::InnerList(_, p)
                if sfv::param(p, "tag") == Some(&Bare::String(tag.into()))),
        })
        .ok_or_else(|| match label {
            Some(l) => format!("Signature-Input has no label {l}"),
            None => format!("Signature-Input has no signature tagged {tag}"),
        })?;
    let Member::InnerList(items, params) = m else {
        return Err(format!("Signature-Input {name} is not an inner list"));
    };
    let components = items
        .iter()
        .map(Component::from_item)
        .collect::<Result<Vec<_>, _>>()?;
    let signature = match sigs.iter().find(|(k, _)| k == name) {
        Some((
            _,
            Member::Item(Item {
                value: Bare::Bytes(b),
                ..
            }),
        )) => b.clone(),
        Some(_) => return Err(format!("Signature {name} is not a byte sequence")),
        None => return Err(format!("Signature has no label {name}")),
    };
    Ok(Received {
        label: name.clone(),
        params_text: sfv::member(m),
        components,
        params: params.clone(),
        signature,
    })
}

/// RFC 7638 thumbprint of an Ed25519 OKP JWK: SHA-256 over the required members in
/// lexicographic order, base64url.
pub fn jwk_thumbprint(public: &[u8; 32]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        BASE64URL_NOPAD.encode(public)
    );
    BASE64URL_NOPAD.encode(&Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestParts {
        let h: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        request_parts("GET", "https://Example.com:443/path/to?x=1#frag", &h).unwrap()
    }

    #[test]
    fn derived_components_follow_rfc9421() {
        let r = req(&[]);
        let v = |n: &str| Component::derived(n).value(&r).unwrap();
        assert_eq!(v("@authority"), "example.com");
        assert_eq!(v("@target-uri"), "https://example.com/path/to?x=1");
        assert_eq!(v("@path"), "/path/to");
        assert_eq!(v("@query"), "?x=1");
        assert_eq!(v("@request-target"), "/path/to?x=1");
        assert_eq!(v("@method"), "GET");
        let p = request_parts("POST", "http://h.test:8080", &[]).unwrap();
        assert_eq!(
            Component::derived("@authority").value(&p).unwrap(),
            "h.test:8080"
        );
        assert_eq!(Component::derived("@query").value(&p).unwrap(), "?");
    }

    /// RFC 9421 Appendix B.2.6: the Ed25519 example, signature base and signature.
    #[test]
    fn rfc9421_ed25519_test_vector() {
        let r = request_parts(
            "POST",
            "https://example.com/foo?param=Value&Pet=dog",
            &[
                ("Date".into(), "Tue, 20 Apr 2021 02:07:55 GMT".into()),
                ("Content-Type".into(), "application/json".into()),
                ("Content-Length".into(), "18".into()),
            ],
        )
        .unwrap();
        let comps: Vec<Component> = [
            "date",
            "@method",
            "@path",
            "@authority",
            "content-type",
            "content-length",
        ]
        .iter()
        .map(|c| Component::parse(c).unwrap())
        .collect();
        let params = r#"("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#;
        let base = signature_base(&r, &comps, params).unwrap();
        assert_eq!(
            base,
            "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\"@method\": POST\n\"@path\": /foo\n\"@authority\": example.com\n\"content-type\": application/json\n\"content-length\": 18\n\"@signature-params\": (\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\""
        );
        // the RFC's test key (Appendix B.1.4) and its signature
        let sk = data_encoding::BASE64URL_NOPAD
            .decode(b"n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU")
            .unwrap();
        let sk = ed25519_dalek::SigningKey::from_bytes(&sk.try_into().unwrap());
        use ed25519_dalek::Signer;
        let sig = sk.sign(base.as_bytes()).to_bytes();
        assert_eq!(
            data_encoding::BASE64.encode(&sig),
            "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
        );
        assert_eq!(
            jwk_thumbprint(&sk.verifying_key().to_bytes()),
            "poqkLGiymh_W0uP6PZFw-dvez3QJT5SolqXBCW38r0U"
        );
    }

    #[test]
    fn dictionary_members_and_bad_components() {
        let r = req(&[("Signature-Agent", "sig1=\"https://a.test/d\", sig2=\"x\"")]);
        let c = Component::parse("signature-agent;key=sig1").unwrap();
        assert_eq!(c.id(), "\"signature-agent\";key=\"sig1\"");
        assert_eq!(c.value(&r).unwrap(), "\"https://a.test/d\"");
        assert!(Component::parse("signature-agent;key=\"nope\"")
            .unwrap()
            .value(&r)
            .is_err());
        for bad in [
            "@status",
            "@query-param",
            "Content-Type",
            "signature",
            "signature-input",
            "a b",
            "",
            "x;name=y",
            "@method;key=a",
            "x;key=UPPER",
        ] {
            assert!(Component::parse(bad).is_err(), "{bad}");
        }
        assert!(Component::parse("x-missing").unwrap().value(&r).is_err());
        let dup = [Component::derived("@path"), Component::derived("@path")];
        assert!(signature_base(&r, &dup, "()").is_err());
    }

    #[test]
    fn hostile_requests_are_refused() {
        let h = |n: &str, v: &str| vec![(n.to_string(), v.to_string())];
        for (m, u, hs) in [
            ("GET", "not a url", vec![]),
            ("GET", "ftp://a.test/", vec![]),
            ("GET", "https://u:p@a.test/", vec![]),
            ("G T", "https://a.test/", vec![]),
            ("GET", "https://a.test/", h("x", "a\r\nInjected: 1")),
            ("GET", "https://a.test/", h("x", "a\nb")),
            ("GET", "https://a.test/", h("x", "nul\0")),
            ("GET", "https://a.test/", h("bad name", "v")),
            (
                "GET",
                "https://a.test/",
                h("x", &"v".repeat(MAX_HEADER_VALUE_LEN + 1)),
            ),
        ] {
            assert!(request_parts(m, u, &hs).is_err(), "{m} {u} {hs:?}");
        }
        let long = format!("https://a.test/{}", "a".repeat(MAX_URL_LEN));
        assert!(request_parts("GET", &long, &[]).is_err());
        let dup = vec![
            ("X".to_string(), "1".to_string()),
            ("x".to_string(), "2".to_string()),
        ];
        assert!(request_parts("GET", "https://a.test/", &dup).is_err());
        let many: Vec<(String, String)> = (0..=MAX_HEADERS)
            .map(|i| (format!("h{i}"), "v".into()))
            .collect();
        assert!(request_parts("GET", "https://a.test/", &many).is_err());
    }

    #[test]
    fn picks_the_received_signature() {
        let input = r#"a=("@path");tag="other", sig1=("@authority");created=1;expires=2;keyid="k";alg="ed25519";tag="web-bot-auth""#;
        let sig = "a=:AA==:, sig1=:AAE=:";
        let r = received(input, sig, None, "web-bot-auth").unwrap();
        assert_eq!(r.label, "sig1");
        assert_eq!(r.signature, vec![0, 1]);
        assert_eq!(
            r.params_text,
            r#"("@authority");created=1;expires=2;keyid="k";alg="ed25519";tag="web-bot-auth""#
        );
        assert_eq!(received(input, sig, Some("a"), "x").unwrap().label, "a");
        assert!(received(input, "a=:AA==:", None, "web-bot-auth").is_err());
        assert!(received(input, "sig1=1", None, "web-bot-auth").is_err());
        assert!(received("sig1=(\"@status\")", "sig1=:AA==:", Some("sig1"), "").is_err());
    }
}

//! SASL PLAIN and LOGIN for submission (RFC 4954, RFC 4616). Failed logins are limited per
//! IP by the limiter every front-end shares (`audit::Denials`).
//!
//! The login is the agent's address and the password an API key holding `mail:send`; the
//! check is `IdentityService::login`, the same door IMAP LOGIN uses. AUTH is offered only on
//! the submission listeners and only under TLS, so a key never crosses the network in clear.
//! Every buffer holding a credential is zeroized; nothing here logs one.

use data_encoding::BASE64;
use zeroize::Zeroizing;

/// `Username:` and `Password:`, base64, the LOGIN mechanism's fixed challenges.
pub const LOGIN_USER_CHALLENGE: &str = "334 VXNlcm5hbWU6\r\n";
pub const LOGIN_PASS_CHALLENGE: &str = "334 UGFzc3dvcmQ6\r\n";

/// Which SASL response the next client line is.
pub enum Sasl {
    Plain,
    LoginUser,
    LoginPass { user: Zeroizing<String> },
}

/// What one client response decodes to.
pub enum SaslStep {
    /// Ask for the next line with this challenge.
    Continue(Sasl, &'static str),
    /// Check these credentials.
    Credentials {
        user: Zeroizing<String>,
        pass: Zeroizing<String>,
    },
    /// Undecodable: `501 5.5.2`.
    Malformed,
}

/// Decodes one response; `=` is the empty response (RFC 4954 §4).
fn decode(text: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if text == b"=" {
        return Some(Zeroizing::new(Vec::new()));
    }
    BASE64.decode(text).ok().map(Zeroizing::new)
}

fn utf8(bytes: &[u8]) -> Option<Zeroizing<String>> {
    std::str::from_utf8(bytes)
        .ok()
        .map(|s| Zeroizing::new(s.to_string()))
}

/// Advances the exchange with one base64 line (already stripped of CRLF).
pub fn step(state: Sasl, line: &[u8]) -> SaslStep {
    let Some(decoded) = decode(line.trim_ascii()) else {
        return SaslStep::Malformed;
    };
    match state {
        Sasl::Plain => match crate::identity::sasl_plain(&decoded) {
            Some((user, pass)) => SaslStep::Credentials { user, pass },
            None => SaslStep::Malformed,
        },
        Sasl::LoginUser => match utf8(&decoded) {
            Some(user) => SaslStep::Continue(Sasl::LoginPass { user }, LOGIN_PASS_CHALLENGE),
            None => SaslStep::Malformed,
        },
        Sasl::LoginPass { user } => match utf8(&decoded) {
            Some(pass) => SaslStep::Credentials { user, pass },
            None => SaslStep::Malformed,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_decodes_and_refuses_impersonation() {
        let line = BASE64.encode(b"\0ops@a.test\0lg_key");
        match step(Sasl::Plain, line.as_bytes()) {
            SaslStep::Credentials { user, pass } => {
                assert_eq!((user.as_str(), pass.as_str()), ("ops@a.test", "lg_key"))
            }
            _ => panic!("expected credentials"),
        }
        let other = BASE64.encode(b"boss@a.test\0ops@a.test\0lg_key");
        assert!(matches!(
            step(Sasl::Plain, other.as_bytes()),
            SaslStep::Malformed
        ));
        assert!(matches!(step(Sasl::Plain, b"!!"), SaslStep::Malformed));
        let two = BASE64.encode(b"a\0b");
        assert!(matches!(
            step(Sasl::Plain, two.as_bytes()),
            SaslStep::Malformed
        ));
    }

    #[test]
    fn login_asks_for_the_password_then_yields_credentials() {
        let SaslStep::Continue(next, challenge) =
            step(Sasl::LoginUser, BASE64.encode(b"ops@a.test").as_bytes())
        else {
            panic!("expected a challenge")
        };
        assert_eq!(challenge, LOGIN_PASS_CHALLENGE);
        match step(next, BASE64.encode(b"lg_key").as_bytes()) {
            SaslStep::Credentials { user, pass } => {
                assert_eq!((user.as_str(), pass.as_str()), ("ops@a.test", "lg_key"))
            }
            _ => panic!("expected credentials"),
        }
    }
}

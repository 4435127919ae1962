//! One place that formats every secret-bearing type of the vault with `{:?}` and checks that
//! no rendering of its secret appears: a new field added with a derived `Debug` fails here.

use data_encoding::{BASE32_NOPAD, BASE64, HEXLOWER, HEXUPPER};
use zeroize::Zeroizing;

use super::envelope::{open_with, Aad};
use super::*;

/// Every way a byte secret might show up in a debug string.
fn renderings(secret: &[u8]) -> Vec<String> {
    let mut out = vec![
        HEXLOWER.encode(secret),
        HEXUPPER.encode(secret),
        BASE64.encode(secret),
        BASE32_NOPAD.encode(secret),
        format!("{secret:?}"),
        format!("{:?}", secret.to_vec()),
    ];
    if let Ok(text) = std::str::from_utf8(secret) {
        out.push(text.to_owned());
    }
    // A partial leak (say a truncated hex dump) still contains a run of the first bytes.
    out.push(HEXLOWER.encode(&secret[..secret.len().min(8)]));
    out.push(
        format!("{:?}", &secret[..secret.len().min(8)])
            .trim_end_matches(']')
            .to_owned(),
    );
    out
}

fn assert_hidden(what: &str, debug: &str, secret: &[u8]) {
    assert!(debug.contains("[redacted]"), "{what}: {debug}");
    for r in renderings(secret) {
        assert!(!debug.contains(&r), "{what} leaks {r:?} in {debug}");
    }
}

#[test]
fn every_secret_type_is_redacted_in_debug() {
    let root = RootKey::generate();
    assert_hidden("RootKey", &format!("{root:?}"), root.bytes());
    let kek = AgentKey::generate();
    assert_hidden("AgentKey", &format!("{kek:?}"), kek.bytes());
    let dek = DataKey::generate();
    assert_hidden("DataKey", &format!("{dek:?}"), dek.bytes());

    let seed = b"12345678901234567890";
    let b32 = BASE32_NOPAD.encode(seed);
    let params =
        TotpParams::new(Zeroizing::new(seed.to_vec()), TotpAlgorithm::Sha1, 6, 30).unwrap();
    assert_hidden("TotpParams", &format!("{params:?}"), seed);

    let uri = format!("otpauth://totp/x?secret={b32}");
    let parsed = parse_otpauth(&uri).unwrap();
    assert_hidden("ParsedOtpauth", &format!("{parsed:?}"), seed);
    assert_hidden("ParsedOtpauth", &format!("{parsed:?}"), b32.as_bytes());
    let spec: TotpSpec = serde_json::from_value(serde_json::json!(uri)).unwrap();
    assert_hidden("TotpSpec::Uri", &format!("{spec:?}"), uri.as_bytes());
    assert_hidden("TotpSpec::Uri", &format!("{spec:?}"), b32.as_bytes());

    let secret = SecretString::from("correct horse battery staple");
    assert_hidden(
        "SecretString",
        &format!("{secret:?}"),
        b"correct horse battery staple",
    );

    let input: CredentialInput = serde_json::from_value(serde_json::json!({
        "kind": "login", "username": "bot", "password": "pw-Zq81x!",
        "secret": "sk_live_4242", "notes": "codes 1111 2222",
        "fields": {"pin": "987654"}, "totp": {"secret": b32},
    }))
    .unwrap();
    let input_debug = format!("{input:?}");
    let validated = input.validate("github").unwrap();
    let validated_debug = format!("{validated:?}");
    let payload_debug = format!("{:?}", validated.payload);
    let record = validated.seal(&kek, "ag_1", None, 1).unwrap();
    let view = record.open_view(&kek, "ag_1").unwrap();
    for (what, debug) in [
        ("CredentialInput", input_debug),
        ("ValidatedCredential", validated_debug),
        ("SecretPayload", payload_debug),
        ("CredentialView", format!("{view:?}")),
    ] {
        for s in ["pw-Zq81x!", "sk_live_4242", "codes 1111 2222", "987654"] {
            assert_hidden(what, &debug, s.as_bytes());
        }
    }
    // The stored record's Debug shows lengths only.
    assert!(!format!("{record:?}").contains(&format!("{:?}", record.payload.ciphertext)));

    let identity = IdentityKey::generate();
    let sealed = identity.seal(&root, "ag_1").unwrap();
    let id_seed = open_with(
        root.bytes(),
        &Aad {
            agent_id: "ag_1",
            record_id: "identity-ed25519",
            purpose: Purpose::IdentityKey,
        },
        &sealed,
    )
    .unwrap();
    assert_hidden("IdentityKey", &format!("{identity:?}"), &id_seed);
}

#[test]
fn errors_never_quote_secrets() {
    let b32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    let bad_inputs = [
        format!("otpauth://totp/x?secret={b32}&digits=7"),
        format!("otpauth://hotp/x?secret={b32}"),
        format!("https://x/?secret={b32}"),
        format!("otpauth://totp/x?secret={b32}!"),
        format!("{b32} not a uri"),
    ];
    for uri in bad_inputs {
        let err = parse_otpauth(&uri).unwrap_err().to_string();
        assert!(!err.contains(b32) && !err.contains("GEZDGNBV"), "{err}");
    }
    let err = RootKey::from_env_b64("c2VjcmV0LXRoYXQtaXMtdG9vLXNob3J0")
        .unwrap_err()
        .to_string();
    assert!(
        !err.contains("c2VjcmV0") && !err.contains("secret-that"),
        "{err}"
    );
}

//! TOTP enrolment pieces: the `otpauth://` URI of the seed the vault made (the vault's TOTP
//! code checks the codes; nothing here computes one) and its QR code, rendered server-side
//! as an SVG image so a phone can scan it with no script and no third party.

use maud::{html, Markup};

/// `otpauth://totp/ISSUER:EMAIL?secret=…` (the Key Uri Format authenticator apps read):
/// SHA-1, 6 digits, 30 s, as the vault checks them. Label parts are percent-encoded with
/// `%20` for spaces (some apps show a `+` literally).
pub fn otpauth_uri(domain: &str, email: &str, seed_base32: &str) -> String {
    let enc = |s: &str| super::layout::enc(s).replace('+', "%20");
    let issuer = enc(&format!("legate {domain}"));
    format!(
        "otpauth://totp/{issuer}:{}?secret={seed_base32}&issuer={issuer}&algorithm=SHA1&digits=6&period=30",
        enc(email)
    )
}

/// The QR code of `uri` as an `<img>` of an SVG data URL (the console's CSP allows `data:`
/// images and no inline markup from elsewhere), or nothing if the URI cannot be encoded
/// (then the page still shows the key and the link as text).
pub fn qr_image(uri: &str) -> Markup {
    let Ok(code) = qrcode::QrCode::new(uri.as_bytes()) else {
        return html! {};
    };
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    let src = format!(
        "data:image/svg+xml;base64,{}",
        data_encoding::BASE64.encode(svg.as_bytes())
    );
    html! {
        p.qr { img src=(src) width="200" height="200" alt="QR code of the otpauth link below: scan it with your authenticator app"; }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_is_key_uri_format_and_the_qr_an_svg_image() {
        let uri = otpauth_uri("agents.test", "alice+ops@acme.com", "JBSWY3DPEHPK3PXP");
        assert_eq!(
            uri,
            "otpauth://totp/legate%20agents.test:alice%2Bops%40acme.com?secret=JBSWY3DPEHPK3PXP\
             &issuer=legate%20agents.test&algorithm=SHA1&digits=6&period=30"
        );
        let img = qr_image(&uri).into_string();
        let b64 = img
            .split("data:image/svg+xml;base64,")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap();
        let svg = String::from_utf8(data_encoding::BASE64.decode(b64.as_bytes()).unwrap()).unwrap();
        assert!(svg.contains("<svg") && svg.contains("<path"));
        assert!(img.contains("alt=\"QR code"));
    }
}

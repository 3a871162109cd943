//! Standard Webhooks signatures: verified over the raw body before anything is parsed, read or
//! written. Svix (Clerk's webhooks) is the scheme Standard Webhooks was written from, with
//! `svix-` header names ([`SVIX`]); Polar signs with the standard `webhook-` names
//! ([`STANDARD_WEBHOOKS`]). Only the key differs, which the caller derives from its secret.

use actix_web::http::header::HeaderMap;
use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::ApiError;

/// The three headers of a signed delivery.
pub struct Scheme {
    pub id: &'static str,
    pub timestamp: &'static str,
    pub signature: &'static str,
}

/// Svix's header names (Clerk).
pub const SVIX: Scheme = Scheme {
    id: "svix-id",
    timestamp: "svix-timestamp",
    signature: "svix-signature",
};

/// The Standard Webhooks header names (Polar).
pub const STANDARD_WEBHOOKS: Scheme = Scheme {
    id: "webhook-id",
    timestamp: "webhook-timestamp",
    signature: "webhook-signature",
};

/// How far the delivery's timestamp may be from now, either way (Svix's own tolerance): a captured
/// delivery cannot be replayed later, after its id has been forgotten or on another instance.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

// Verification is done here rather than with the `svix` crate: that crate is Svix's whole API
// client (an HTTP stack, hundreds of generated models) for what is one HMAC-SHA256 check. The
// `standardwebhooks` crate (1.0) reads only `webhook-` headers, pulls a second base64 and
// `time`, and computes `now - timestamp` in plain i64 (overflowing on `i64::MIN`, a case the
// contract fuzzing sends), so one checked implementation serves both schemes. The
// scheme is small and documented (see shared CLERK.md); `hmac`, `sha2` and `base64` are
// RustCrypto's well-kept crates the service already builds, and `Mac::verify_slice` compares
// in constant time.
type HmacSha256 = Hmac<Sha256>;

fn rejected(code: &'static str, detail: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, detail)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ApiError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            rejected(
                "webhook_headers_missing",
                format!("the {name} header is missing or empty"),
            )
        })
}

/// Checks a delivery as Svix signs it (see [`verify_scheme`]). Returns the `svix-id`.
pub fn verify(key: &[u8], headers: &HeaderMap, body: &[u8], now: i64) -> Result<String, ApiError> {
    verify_scheme(&SVIX, key, headers, body, now)
}

/// Checks a delivery as Standard Webhooks sign it: base64 HMAC-SHA256 with the key over
/// `"{id}.{timestamp}.{body}"`, any one `v1,<signature>` of the space-separated signature
/// header matching, and the timestamp (unix seconds) within [`TIMESTAMP_TOLERANCE_SECS`] of
/// `now`. Returns the delivery's id.
pub fn verify_scheme(
    scheme: &Scheme,
    key: &[u8],
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<String, ApiError> {
    let id = header(headers, scheme.id)?;
    let timestamp_text = header(headers, scheme.timestamp)?;
    let signatures = header(headers, scheme.signature)?;
    if id.len() > 255 {
        return Err(rejected(
            "webhook_headers_invalid",
            format!("{} is too long", scheme.id),
        ));
    }
    let timestamp: i64 = timestamp_text.parse().map_err(|_| {
        rejected(
            "webhook_headers_invalid",
            format!("{} is not a unix time in seconds", scheme.timestamp),
        )
    })?;
    // Wide arithmetic: any i64 is a well-formed timestamp, and `now - i64::MIN` overflows.
    if (i128::from(now) - i128::from(timestamp)).abs() > i128::from(TIMESTAMP_TOLERANCE_SECS) {
        return Err(rejected(
            "webhook_timestamp_out_of_tolerance",
            format!("{} is more than 5 minutes from now", scheme.timestamp),
        ));
    }

    let mut mac = HmacSha256::new_from_slice(key).map_err(ApiError::internal)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_text.as_bytes());
    mac.update(b".");
    mac.update(body);
    let matched = signatures
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, signature)| STANDARD.decode(signature).ok())
        .any(|signature| mac.clone().verify_slice(&signature).is_ok());
    if !matched {
        return Err(rejected(
            "webhook_signature_invalid",
            format!("no {} matches this delivery", scheme.signature),
        ));
    }
    Ok(id.to_owned())
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(scheme: &Scheme, id: &str, timestamp: i64, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (scheme.id, id.to_owned()),
            (scheme.timestamp, timestamp.to_string()),
            (scheme.signature, signature.to_owned()),
        ] {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(&value).unwrap(),
            );
        }
        headers
    }

    /// The Standard Webhooks specification's own example (its reference libraries test it):
    /// the same HMAC serves both header schemes.
    #[test]
    fn the_standard_webhooks_example_verifies_under_both_schemes() {
        let key = STANDARD.decode("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let (id, ts) = ("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1_649_367_553);
        let signature = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
        for scheme in [&SVIX, &STANDARD_WEBHOOKS] {
            let verified =
                verify_scheme(scheme, &key, &headers(scheme, id, ts, signature), body, ts);
            assert_eq!(verified.unwrap(), id);
            let other = headers(
                scheme,
                id,
                ts,
                "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkx=",
            );
            assert!(verify_scheme(scheme, &key, &other, body, ts).is_err());
        }
        // One scheme's headers are not the other's.
        let svix_headers = headers(&SVIX, id, ts, signature);
        let refused = verify_scheme(&STANDARD_WEBHOOKS, &key, &svix_headers, body, ts);
        assert_eq!(refused.unwrap_err().code(), "webhook_headers_missing");
    }
}

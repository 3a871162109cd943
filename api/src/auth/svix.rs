//! Svix webhook signatures, as Clerk's webhooks are signed: verified over the raw body before
//! anything is parsed, read or written.

use actix_web::http::header::HeaderMap;
use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::ApiError;

/// How far `svix-timestamp` may be from now, either way (Svix's own tolerance): a captured
/// delivery cannot be replayed later, after its id has been forgotten or on another instance.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

// Verification is done here rather than with the `svix` crate: that crate is Svix's whole API
// client (an HTTP stack, hundreds of generated models) for what is one HMAC-SHA256 check. The
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

/// Checks a delivery as Svix signs it: base64 HMAC-SHA256 with the key over
/// `"{svix-id}.{svix-timestamp}.{body}"`, any one `v1,<signature>` of the space-separated
/// `svix-signature` matching, and `svix-timestamp` (unix seconds) within
/// [`TIMESTAMP_TOLERANCE_SECS`] of `now`. Returns the `svix-id`.
pub fn verify(key: &[u8], headers: &HeaderMap, body: &[u8], now: i64) -> Result<String, ApiError> {
    let id = header(headers, "svix-id")?;
    let timestamp_text = header(headers, "svix-timestamp")?;
    let signatures = header(headers, "svix-signature")?;
    if id.len() > 255 {
        return Err(rejected("webhook_headers_invalid", "svix-id is too long"));
    }
    let timestamp: i64 = timestamp_text.parse().map_err(|_| {
        rejected(
            "webhook_headers_invalid",
            "svix-timestamp is not a unix time in seconds",
        )
    })?;
    // Wide arithmetic: any i64 is a well-formed timestamp, and `now - i64::MIN` overflows.
    if (i128::from(now) - i128::from(timestamp)).abs() > i128::from(TIMESTAMP_TOLERANCE_SECS) {
        return Err(rejected(
            "webhook_timestamp_out_of_tolerance",
            "svix-timestamp is more than 5 minutes from now",
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
            "no svix-signature matches this delivery",
        ));
    }
    Ok(id.to_owned())
}

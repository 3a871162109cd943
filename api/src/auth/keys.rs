//! Signing keys: the Frontend API host from a publishable key, the JWKS cache.

use base64::{Engine, engine::general_purpose::STANDARD};

/// `pk_test_<base64("clerk.example.com$")>` → `clerk.example.com`.
pub fn frontend_api_host(publishable_key: &str) -> Option<String> {
    let encoded = publishable_key
        .strip_prefix("pk_test_")
        .or_else(|| publishable_key.strip_prefix("pk_live_"))?;
    let decoded = STANDARD
        .decode(encoded)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded))
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let host = text.strip_suffix('$')?;
    (!host.is_empty() && !host.contains(['/', ' '])).then(|| host.to_owned())
}

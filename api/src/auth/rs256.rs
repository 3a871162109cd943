//! jsonwebtoken's `aws_lc_rs` crypto with each RSA public key parsed once.
//!
//! jsonwebtoken hands its crypto provider the `DecodingKey` on every verification, and the
//! stock provider rebuilds the RSA key from it each time: about an eighth of a cold session
//! token's verification (`cargo bench -p resonance-api --bench verify`). The provider here
//! keeps the parsed key of every RS256 key it has seen (a JWKS holds a handful; rotation adds
//! one now and then) and otherwise does exactly what the stock provider does: every other
//! algorithm, and every check jsonwebtoken makes around the signature, are unchanged.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, RwLock},
};

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
use jsonwebtoken::{
    Algorithm, DecodingKey, DecodingKeyKind,
    crypto::{CryptoProvider, JwtVerifier, aws_lc},
    errors::{ErrorKind, Result},
    signature::{self, Verifier},
};

/// More distinct keys than a JWKS ever holds at once: past it the map starts over.
const MAX_KEYS: usize = 64;

/// Parsed RS256 keys by their encoding (`n` then `e`, or the DER of a PEM key).
static PARSED: LazyLock<RwLock<HashMap<Vec<u8>, Arc<ParsedPublicKey>>>> =
    LazyLock::new(Default::default);

static PROVIDER: LazyLock<CryptoProvider> = LazyLock::new(|| CryptoProvider {
    verifier_factory: verifier,
    ..aws_lc::DEFAULT_PROVIDER.clone()
});

/// Makes this the process's jsonwebtoken provider. Idempotent; when jsonwebtoken has already
/// picked its default (it has verified or signed before this call), that one stays: slower by
/// the key parse, otherwise the same.
pub fn install() {
    let _ = LazyLock::force(&PROVIDER).install_default();
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if *algorithm != Algorithm::RS256 {
        return (aws_lc::DEFAULT_PROVIDER.verifier_factory)(algorithm, key);
    }
    Ok(Box::new(Rs256(parsed(key)?)))
}

fn parsed(key: &DecodingKey) -> Result<Arc<ParsedPublicKey>> {
    let id = match key.kind() {
        DecodingKeyKind::SecretOrDer(der) => der.clone(),
        DecodingKeyKind::RsaModulusExponent { n, e } => [n.as_slice(), e].concat(),
    };
    if let Some(found) = PARSED.read().unwrap_or_else(|e| e.into_inner()).get(&id) {
        return Ok(found.clone());
    }
    let parsed = match key.kind() {
        DecodingKeyKind::SecretOrDer(der) => ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der),
        DecodingKeyKind::RsaModulusExponent { n, e } => {
            RsaPublicKeyComponents { n, e }.to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
        }
    }
    .map(Arc::new)
    .map_err(|_| ErrorKind::InvalidRsaKey("not an RSA public key".into()))?;
    let mut map = PARSED.write().unwrap_or_else(|e| e.into_inner());
    if map.len() >= MAX_KEYS {
        map.clear();
    }
    map.insert(id, parsed.clone());
    Ok(parsed)
}

/// An RS256 verifier over a parsed key.
struct Rs256(Arc<ParsedPublicKey>);

impl Verifier<Vec<u8>> for Rs256 {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> signature::Result<()> {
        self.0
            .verify_sig(message, signature)
            .map_err(signature::Error::from_source)
    }
}

impl JwtVerifier for Rs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use rsa::{RsaPrivateKey, pkcs1::EncodeRsaPublicKey, traits::PublicKeyParts};

    use super::*;

    /// Verifies as the stock provider does, with the key given as components (JWKS) or as
    /// DER (a PEM `CLERK_JWT_KEY`), and refuses a signature the key did not make.
    #[test]
    fn verifies_as_the_stock_provider_does() {
        let private = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let public = private.to_public_key();
        let encoding = jsonwebtoken::EncodingKey::from_rsa_der(
            rsa::pkcs1::EncodeRsaPrivateKey::to_pkcs1_der(&private)
                .unwrap()
                .as_bytes(),
        );
        let header = jsonwebtoken::Header::new(Algorithm::RS256);
        let token = jsonwebtoken::encode(&header, &serde_json::json!({"sub": "user_1"}), &encoding)
            .unwrap();
        let (message, signature) = token.rsplit_once('.').unwrap();
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        let mut forged = signature.clone();
        forged[10] ^= 1;

        let components = DecodingKey::from_rsa_raw_components(
            &public.n().to_bytes_be(),
            &public.e().to_bytes_be(),
        );
        let der = DecodingKey::from_rsa_der(public.to_pkcs1_der().unwrap().as_bytes());
        for key in [&components, &der] {
            let stock =
                (aws_lc::DEFAULT_PROVIDER.verifier_factory)(&Algorithm::RS256, key).unwrap();
            // Twice: the second call reads the parsed key back.
            for _ in 0..2 {
                let ours = verifier(&Algorithm::RS256, key).unwrap();
                assert_eq!(ours.algorithm(), Algorithm::RS256);
                assert!(stock.verify(message.as_bytes(), &signature).is_ok());
                assert!(ours.verify(message.as_bytes(), &signature).is_ok());
                assert!(stock.verify(message.as_bytes(), &forged).is_err());
                assert!(ours.verify(message.as_bytes(), &forged).is_err());
                assert!(ours.verify(b"another message", &signature).is_err());
            }
        }
        // Other algorithms go to the stock provider, which refuses an RSA key for HMAC.
        assert!(verifier(&Algorithm::HS256, &components).is_err());
    }
}

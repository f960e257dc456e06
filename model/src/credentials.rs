//! Digest credentials (RFC 2617, RFC 8760): what a phone's password is stored as, and
//! the response a client computes from it. The nonces and challenges are the SIP
//! layer's.

use md5::Md5;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The realm of our challenges.
pub const REALM: &str = "switchyard";

/// A digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    /// RFC 8760 SHA-256.
    #[serde(rename = "SHA-256")]
    Sha256,
    /// RFC 2617 MD5.
    #[serde(rename = "MD5")]
    Md5,
}

impl Algorithm {
    /// Its name in `algorithm=` parameters.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Md5 => "MD5",
        }
    }

    fn hash(self, input: &str) -> String {
        match self {
            Algorithm::Sha256 => hex::encode(Sha256::digest(input.as_bytes())),
            Algorithm::Md5 => hex::encode(Md5::digest(input.as_bytes())),
        }
    }
}

/// HA1 = H(user:realm:password): what we store instead of a password.
pub fn ha1(algorithm: Algorithm, user: &str, realm: &str, password: &str) -> String {
    algorithm.hash(&format!("{user}:{realm}:{password}"))
}

/// The `response` a client computes from HA1 (qop=auth, or none).
pub fn response(
    algorithm: Algorithm,
    ha1: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(&str, &str, &str)>, // (qop, nc, cnonce)
) -> String {
    let ha2 = algorithm.hash(&format!("{method}:{uri}"));
    match qop {
        Some((qop, nc, cnonce)) => {
            algorithm.hash(&format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"))
        }
        None => algorithm.hash(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

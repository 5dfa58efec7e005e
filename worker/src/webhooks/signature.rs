//! The signature of a webhook delivery: header
//! `X-Attendance-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`,
//! keyed with the subscription's secret. The timestamp is signed too, so that a
//! receiver can refuse old replays (e.g. older than five minutes).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the signature.
pub const HEADER: &str = "X-Attendance-Signature";

/// The hex HMAC-SHA256 of `"{timestamp}.{body}"` under `secret`.
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The header's value.
pub fn header_value(secret: &str, timestamp: i64, body: &str) -> String {
    format!("t={timestamp},v1={}", sign(secret, timestamp, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_an_independent_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Ours signs "t.body": the same construction, the timestamp and a dot first.
        assert_eq!(sign("Jefe", 12, "what"), {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
            mac.update(b"12.what");
            hex::encode(mac.finalize().into_bytes())
        });
        assert_eq!(
            header_value("k", 1700000000, "{}"),
            format!("t=1700000000,v1={}", sign("k", 1700000000, "{}"))
        );
        assert_ne!(sign("k", 1, "{}"), sign("k", 2, "{}"));
    }
}

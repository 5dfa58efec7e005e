//! Blob keys are validated the same way for every store, so that a key that works on
//! the filesystem works on S3 and no key can escape the filesystem root.

use super::BlobError;

/// S3's own limit; the filesystem store is held to it as well.
const MAX_KEY_LEN: usize = 1024;

/// Accepts `[A-Za-z0-9/._-]`, relative, no empty, `.` or `..` segments, no `..` at all.
pub fn validate_key(key: &str) -> Result<(), BlobError> {
    let invalid = |reason| {
        Err(BlobError::InvalidKey {
            key: key.to_string(),
            reason,
        })
    };
    if key.is_empty() {
        return invalid("empty");
    }
    if key.len() > MAX_KEY_LEN {
        return invalid("longer than 1024 bytes");
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-'))
    {
        return invalid("only A-Z a-z 0-9 / . _ - are allowed");
    }
    if key.starts_with('/') {
        return invalid("absolute");
    }
    if key.contains("..") {
        return invalid("contains '..'");
    }
    if key
        .split('/')
        .any(|segment| segment.is_empty() || segment == ".")
    {
        return invalid("empty or '.' path segment");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_keys() {
        for key in [
            "photos/2026/a.jpg",
            "crops/5f3c1c8e-0c9a-4a57-9d1e-2f7f5b8c9a10/face_0.png",
            "x",
            ".hidden",
            "a-b_c.d",
        ] {
            validate_key(key).unwrap();
        }
    }

    #[test]
    fn rejects_escapes_and_odd_characters() {
        for key in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a/..",
            "a..b",
            "a//b",
            "a/",
            "./a",
            "a/./b",
            "a b",
            "a\\b",
            "ä.jpg",
            "a?b",
            "a\0b",
        ] {
            assert!(
                matches!(validate_key(key), Err(BlobError::InvalidKey { .. })),
                "{key:?} was accepted"
            );
        }
        assert!(validate_key(&"a".repeat(1025)).is_err());
    }
}

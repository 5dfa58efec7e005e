//! Encoding of embedding vectors in `face_embeddings.vector`: f32, little endian,
//! packed, no header. The length is implied (`bytes / 4`).

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("embedding blob has {0} bytes, not a multiple of 4")]
pub struct BadVectorLength(pub usize);

/// Packs a vector as f32 little endian bytes.
pub fn encode(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Unpacks bytes written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<Vec<f32>, BadVectorLength> {
    if !bytes.len().is_multiple_of(4) {
        return Err(BadVectorLength(bytes.len()));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_little_endian() {
        let v = [1.0f32, -0.5, 0.125];
        let bytes = encode(&v);
        assert_eq!(&bytes[..4], &[0x00, 0x00, 0x80, 0x3f]);
        assert_eq!(decode(&bytes).unwrap(), v);
        assert_eq!(decode(&bytes[..5]), Err(BadVectorLength(5)));
    }
}

//! Limits on photos that the API (when it validates an upload) and the worker (when it
//! decodes one) must agree on, so that every photo the API accepts is one the worker
//! will decode. Here rather than in the engine so that the API need not link it.

/// Largest photo in pixels (width × height): phones make 50–200 MP pictures, and the
/// worker decodes big ones reduced (`MAX_WORKING_PIXELS`), so memory stays bounded; the
/// cap still lets decompression bombs be refused before their pixels are allocated.
pub const MAX_IMAGE_PIXELS: u64 = 100_000_000;

/// A complete JPEG ends with the EOI marker `FF D9`; some writers append padding, so
/// the marker is looked for in the last KiB.
pub fn has_jpeg_end_marker(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

#[cfg(test)]
mod tests {
    use super::has_jpeg_end_marker;

    #[test]
    fn the_end_marker_is_found_before_padding_and_missing_when_cut_off() {
        let mut jpeg = vec![0xFF, 0xD8, 0x00, 0x11, 0xFF, 0xD9];
        assert!(has_jpeg_end_marker(&jpeg));
        jpeg.extend([0u8; 100]);
        assert!(has_jpeg_end_marker(&jpeg));
        assert!(!has_jpeg_end_marker(&jpeg[..4]));
        assert!(!has_jpeg_end_marker(&[]));
    }
}

//! Upload validation, done before anything is stored: size caps (413), type sniffed
//! from the bytes (415), a pixel cap and a cheap, bounded check that the data is
//! complete and decodable (422).
//!
//! The check never holds a full-size image: a baseline JPEG is decoded by libjpeg-turbo
//! at 1/8 scale (which still entropy-decodes every block), a progressive one's markers,
//! tables and scan headers by libjpeg without the data (see `jpeg_scans`), a PNG row by
//! row. A WebP is decoded in full (the `image` crate has no
//! reduced or streaming WebP decode): its memory is bounded by the pixel cap, and at
//! most `UPLOAD_VALIDATION_CONCURRENCY` photos are checked at once.

use std::{
    io::Cursor,
    panic::AssertUnwindSafe,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use common::image_limits::{MAX_IMAGE_PIXELS, has_jpeg_end_marker};
use futures::StreamExt;
use image::{ImageFormat, ImageReader, Limits};
use poem::{Body, Endpoint, IntoResponse, Request, Response, http::header::CONTENT_LENGTH};
use poem_openapi::types::multipart::Upload;
use tokio::sync::Semaphore;

use crate::{
    error::{ApiError, ErrorBody, ServiceError},
    provenance::{self, PhotoFacts},
};

mod jpeg_scans;

/// Largest accepted photo.
pub const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;
/// Largest accepted request body (all photos and fields together).
pub const MAX_REQUEST_BYTES: usize = 60 * 1024 * 1024;
/// Largest accepted photo in pixels (width × height): bounds decode memory and time,
/// and rejects decompression bombs before a byte of pixels is allocated. The worker's
/// own limit, so that every accepted photo is one the worker will decode.
pub const MAX_PIXELS: u64 = MAX_IMAGE_PIXELS;

/// A photo that passed validation.
#[derive(Debug, Clone)]
pub struct ValidatedPhoto {
    pub bytes: Bytes,
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    /// SHA-256 and EXIF time, for the session's provenance checks.
    pub facts: PhotoFacts,
}

impl ValidatedPhoto {
    pub fn content_type(&self) -> &'static str {
        self.format.to_mime_type()
    }

    /// File extension used in blob keys.
    pub fn extension(&self) -> &'static str {
        match self.format {
            ImageFormat::Png => "png",
            ImageFormat::WebP => "webp",
            _ => "jpg",
        }
    }
}

/// Bounds the photos validated at once (`UPLOAD_VALIDATION_CONCURRENCY`); an upload
/// that cannot get a slot within `UPLOAD_VALIDATION_WAIT_MS` is answered 503, so that
/// a burst queues for a bounded time instead of piling up decodes.
#[derive(Clone)]
pub struct ValidationGate {
    slots: Arc<Semaphore>,
    wait: Duration,
}

impl ValidationGate {
    pub fn new(concurrency: usize, wait: Duration) -> ValidationGate {
        ValidationGate {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            wait,
        }
    }

    async fn validate(&self, bytes: Bytes) -> Result<ValidatedPhoto, ValidationFailure> {
        let permit = tokio::time::timeout(self.wait, Arc::clone(&self.slots).acquire_owned())
            .await
            .map_err(|_| ValidationFailure::Busy)?
            .expect("the semaphore is never closed");
        // Decoding is CPU work: keep it off the async runtime.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            validate_image(bytes)
        })
        .await
        .map_err(|e| ValidationFailure::Image(ImageError::Undecodable(e.to_string())))?
        .map_err(ValidationFailure::Image)
    }
}

enum ValidationFailure {
    Busy,
    Image(ImageError),
}

/// Reads and validates 1..=`max` uploads (the count is checked first). Each spooled
/// upload is read and dropped (its temp file closed) before the next one is read.
pub async fn validate_uploads(
    gate: &ValidationGate,
    uploads: Vec<Upload>,
    min: usize,
    max: usize,
) -> Result<Vec<ValidatedPhoto>, ServiceError> {
    if uploads.len() < min || uploads.len() > max {
        return Err(ServiceError::invalid(
            "photo_count",
            format!("expected {min} to {max} photos, got {}", uploads.len()),
        ));
    }
    if let Some((i, _)) = uploads
        .iter()
        .enumerate()
        .find(|(_, u)| u.size() > MAX_FILE_BYTES)
    {
        return Err(ServiceError::PayloadTooLarge(format!(
            "photo {} is larger than {} MB",
            i + 1,
            MAX_FILE_BYTES / (1024 * 1024)
        )));
    }
    let mut photos = Vec::with_capacity(uploads.len());
    for (i, upload) in uploads.into_iter().enumerate() {
        let bytes = upload.into_vec().await.map_err(|e| {
            ServiceError::invalid("unreadable_upload", format!("photo {}: {e}", i + 1))
        })?;
        let photo = match gate.validate(Bytes::from(bytes)).await {
            Ok(photo) => photo,
            Err(ValidationFailure::Image(e)) => return Err(e.for_photo(i + 1)),
            Err(ValidationFailure::Busy) => {
                return Err(ServiceError::Busy(
                    "too many photos are being checked right now, try again shortly".into(),
                ));
            }
        };
        photos.push(photo);
    }
    Ok(photos)
}

/// Why an image was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("is not a JPEG, PNG or WebP image")]
    UnsupportedType,
    #[error("is {width}×{height} pixels, more than the {MAX_PIXELS} pixel limit")]
    TooManyPixels { width: u32, height: u32 },
    #[error("cannot be decoded: {0}")]
    Undecodable(String),
}

impl ImageError {
    fn for_photo(self, n: usize) -> ServiceError {
        match self {
            ImageError::UnsupportedType => {
                ServiceError::UnsupportedMediaType(format!("photo {n} {self}"))
            }
            ImageError::TooManyPixels { .. } => {
                ServiceError::invalid("image_too_large", format!("photo {n} {self}"))
            }
            ImageError::Undecodable(_) => {
                ServiceError::invalid("undecodable_image", format!("photo {n} {self}"))
            }
        }
    }
}

/// Sniffs the format from the bytes (the client's content type is ignored), checks the
/// declared size against [`MAX_PIXELS`], then checks that the data is complete and
/// decodable without a full-size decode (see the module's note), so that truncated or
/// corrupt files are refused now rather than failing in the worker. A decoder that
/// panics (libjpeg's fatal errors unwind) refuses the photo like any decode error.
pub fn validate_image(bytes: Bytes) -> Result<ValidatedPhoto, ImageError> {
    let format = match image::guess_format(&bytes) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP)) => f,
        _ => return Err(ImageError::UnsupportedType),
    };
    let (width, height) = ImageReader::with_format(Cursor::new(&bytes[..]), format)
        .into_dimensions()
        .map_err(|e| ImageError::Undecodable(e.to_string()))?;
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(ImageError::TooManyPixels { width, height });
    }
    check_decodable(format, &bytes)?;
    let facts = provenance::inspect(&bytes);
    Ok(ValidatedPhoto {
        bytes,
        format,
        width,
        height,
        facts,
    })
}

/// The format's bounded check, with a decoder panic turned into a refusal.
fn check_decodable(format: ImageFormat, bytes: &[u8]) -> Result<(), ImageError> {
    let checked = std::panic::catch_unwind(AssertUnwindSafe(|| match format {
        ImageFormat::Jpeg => check_jpeg(bytes),
        ImageFormat::Png => check_png(bytes),
        _ => check_webp(bytes),
    }));
    checked.unwrap_or_else(|panic| {
        let why = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the decoder failed".into());
        Err(ImageError::Undecodable(why))
    })
}

/// Walks a JPEG's segments to its end marker, then has libjpeg decode it at 1/8 scale,
/// one row at a time (libjpeg-turbo's DCT scaling): a baseline JPEG with every block
/// entropy-decoded, a progressive one as its skeleton (see `jpeg_scans`).
/// Fatal errors refuse the photo; damage that libjpeg repairs with a warning (a scan
/// cut short before a marker) is accepted, as the worker's decoder (the same libjpeg,
/// as PIL) repairs it the same way. (Turning warnings into refusals needs a custom
/// libjpeg error manager, i.e. unsafe code.)
fn check_jpeg(bytes: &[u8]) -> Result<(), ImageError> {
    if !has_jpeg_end_marker(bytes) {
        // libjpeg pads a truncated scan with grey instead of failing.
        return Err(ImageError::Undecodable(
            "the JPEG data is truncated (no end-of-image marker)".into(),
        ));
    }
    let scans = jpeg_scans::walk(bytes).map_err(|e| ImageError::Undecodable(e.to_string()))?;
    if scans.progressive {
        decode_eighth(&scans.skeleton)
    } else {
        decode_eighth(bytes)
    }
}

/// libjpeg's decode at 1/8 scale, one output row at a time.
fn decode_eighth(bytes: &[u8]) -> Result<(), ImageError> {
    use mozjpeg::ColorSpaceExt;
    let undecodable = |e: std::io::Error| ImageError::Undecodable(e.to_string());
    let mut decompress = mozjpeg::Decompress::new_mem(bytes).map_err(undecodable)?;
    decompress.scale(1);
    let mut started = match decompress.image().map_err(undecodable)? {
        mozjpeg::Format::RGB(s) | mozjpeg::Format::Gray(s) | mozjpeg::Format::CMYK(s) => s,
    };
    let mut row = vec![0u8; started.width() * started.color_space().num_components()];
    for _ in 0..started.height() {
        started
            .read_scanlines_into::<u8>(&mut row)
            .map_err(undecodable)?;
    }
    started.finish().map_err(undecodable)
}

/// Decodes a PNG row by row (one row in memory), checksums included, to its end chunk.
fn check_png(bytes: &[u8]) -> Result<(), ImageError> {
    let undecodable = |e: png::DecodingError| ImageError::Undecodable(e.to_string());
    let mut reader = png::Decoder::new(Cursor::new(bytes))
        .read_info()
        .map_err(undecodable)?;
    while reader.next_row().map_err(undecodable)?.is_some() {}
    reader.finish().map_err(undecodable)
}

/// Decodes a WebP in full, under an allocation limit that fits the pixel cap.
fn check_webp(bytes: &[u8]) -> Result<(), ImageError> {
    let mut limits = Limits::default();
    // RGBA at the pixel cap, plus slack for the decoder's own buffers.
    limits.max_alloc = Some(MAX_PIXELS * 4 + 64 * 1024 * 1024);
    let mut reader = ImageReader::with_format(Cursor::new(bytes), ImageFormat::WebP);
    reader.limits(limits);
    reader
        .decode()
        .map(drop)
        .map_err(|e| ImageError::Undecodable(e.to_string()))
}

/// Middleware: refuses request bodies over `max` bytes with 413, from the
/// `Content-Length` header when there is one and by counting otherwise, so that an
/// oversized upload is cut off before it is spooled to disk.
pub async fn limit_request_size<E: Endpoint>(
    next: E,
    mut req: Request,
    max: usize,
) -> poem::Result<Response> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Ok(too_large(max));
    }
    let exceeded = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicUsize::new(0));
    let body = req.take_body();
    let flag = exceeded.clone();
    let stream = body.into_bytes_stream().map(move |chunk| {
        let chunk = chunk?;
        if seen.fetch_add(chunk.len(), Ordering::Relaxed) + chunk.len() > max {
            flag.store(true, Ordering::Relaxed);
            return Err(std::io::Error::other("request body too large"));
        }
        Ok::<Bytes, std::io::Error>(chunk)
    });
    req.set_body(Body::from_bytes_stream(stream));
    let result = next.call(req).await.map(IntoResponse::into_response);
    if exceeded.load(Ordering::Relaxed) {
        return Ok(too_large(max));
    }
    result
}

fn too_large(max: usize) -> Response {
    ApiError::PayloadTooLarge(ErrorBody::new(
        "payload_too_large",
        format!("request body is larger than {} MB", max / (1024 * 1024)),
    ))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, codecs::png::PngEncoder};

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let pixels = vec![128u8; (width * height * 3) as usize];
        PngEncoder::new(&mut out)
            .write_image(&pixels, width, height, image::ExtendedColorType::Rgb8)
            .unwrap();
        out
    }

    #[test]
    fn accepts_a_small_png() {
        let p = validate_image(Bytes::from(png(4, 3))).unwrap();
        assert_eq!((p.width, p.height, p.format), (4, 3, ImageFormat::Png));
        assert_eq!(p.content_type(), "image/png");
    }

    #[test]
    fn refuses_text() {
        assert!(matches!(
            validate_image(Bytes::from_static(b"hello, I am not a photo")),
            Err(ImageError::UnsupportedType)
        ));
    }

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let pixels: Vec<u8> = (0..width * height * 3).map(|i| (i % 251) as u8).collect();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .write_image(&pixels, width, height, image::ExtendedColorType::Rgb8)
            .unwrap();
        out
    }

    #[test]
    fn accepts_a_jpeg_checked_at_an_eighth_of_its_size() {
        let p = validate_image(Bytes::from(jpeg(203, 97))).unwrap();
        assert_eq!((p.width, p.height, p.format), (203, 97, ImageFormat::Jpeg));
    }

    #[test]
    fn refuses_a_jpeg_with_headers_but_no_scan() {
        let data = jpeg(256, 256);
        // Everything up to the start of scan, then the end marker: complete-looking,
        // but there is no image.
        let sos = data.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        let mut cut = data[..sos].to_vec();
        cut.extend([0xFF, 0xD9]);
        let err = validate_image(Bytes::from(cut.clone()));
        assert!(matches!(err, Err(ImageError::Undecodable(_))), "{err:?}");
        // libjpeg's own check says so too (without unwinding out of the decoder).
        let err = check_decodable(ImageFormat::Jpeg, &cut);
        assert!(matches!(err, Err(ImageError::Undecodable(_))), "{err:?}");
    }

    /// A progressive JPEG as libjpeg (mozjpeg) writes it: ten scans, DC first.
    fn progressive_jpeg(width: usize, height: usize) -> Vec<u8> {
        let pixels: Vec<u8> = (0..width * height * 3).map(|i| (i % 251) as u8).collect();
        let mut compress = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
        compress.set_size(width, height);
        compress.set_progressive_mode();
        let mut started = compress.start_compress(Vec::new()).unwrap();
        started.write_scanlines(&pixels).unwrap();
        started.finish().unwrap()
    }

    /// Offsets of the start-of-scan markers.
    fn scan_offsets(data: &[u8]) -> Vec<usize> {
        data.windows(2)
            .enumerate()
            .filter(|(_, w)| *w == [0xFF, 0xDA])
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn accepts_a_progressive_jpeg() {
        let data = progressive_jpeg(301, 157);
        assert!(jpeg_scans::walk(&data).unwrap().progressive);
        assert!(scan_offsets(&data).len() > 2);
        let p = validate_image(Bytes::from(data)).unwrap();
        assert_eq!((p.width, p.height, p.format), (301, 157, ImageFormat::Jpeg));
    }

    #[test]
    fn a_progressive_jpeg_whose_last_scan_names_an_undefined_table_is_refused() {
        let mut data = progressive_jpeg(64, 64);
        // The last scan (AC refinement of one component): its table selector byte
        // (FF DA, length, count, component id, tables) names AC table 3, never defined.
        // libjpeg fails on that scan's header, which the check keeps without its data.
        let last = *scan_offsets(&data).last().unwrap();
        assert_eq!(data[last + 4], 1, "one component in the last scan");
        data[last + 6] = 0x03;
        let err = validate_image(Bytes::from(data));
        match err {
            Err(ImageError::Undecodable(why)) => assert!(why.contains("libjpeg"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_progressive_jpeg_whose_scan_header_runs_past_the_end_is_refused() {
        let mut data = progressive_jpeg(64, 64);
        let last = *scan_offsets(&data).last().unwrap();
        data[last + 2..last + 4].copy_from_slice(&[0xFF, 0xF0]);
        match validate_image(Bytes::from(data)) {
            Err(ImageError::Undecodable(why)) => assert!(why.contains("truncated"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_libjpeg_fatal_error_is_a_refusal_not_a_panic() {
        let mut data = jpeg(64, 64);
        // Corrupt the frame header's precision byte (SOF0: FF C0, length, precision):
        // libjpeg's error_exit unwinds out of the decoder.
        let sof = data.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        data[sof + 4] = 3;
        let err = check_decodable(ImageFormat::Jpeg, &data);
        match err {
            Err(ImageError::Undecodable(why)) => assert!(why.contains("libjpeg"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_a_png_with_a_corrupted_row() {
        let mut data = png(64, 64);
        // Flip a byte inside the IDAT data: the chunk's CRC no longer matches.
        let idat = data.windows(4).position(|w| w == b"IDAT").unwrap();
        data[idat + 10] ^= 0xFF;
        assert!(matches!(
            validate_image(Bytes::from(data)),
            Err(ImageError::Undecodable(_))
        ));
    }

    #[test]
    fn refuses_truncated_png() {
        let data = png(64, 64);
        let cut = Bytes::copy_from_slice(&data[..data.len() / 2]);
        assert!(matches!(
            validate_image(cut),
            Err(ImageError::Undecodable(_))
        ));
    }
}

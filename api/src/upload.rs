//! Upload validation, done before anything is stored: size caps (413), type sniffed
//! from the bytes (415), a full decode under a pixel cap (422).

use std::{
    io::Cursor,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use common::image_limits::{MAX_IMAGE_PIXELS, has_jpeg_end_marker};
use futures::StreamExt;
use image::{ImageFormat, ImageReader, Limits};
use poem::{Body, Endpoint, IntoResponse, Request, Response, http::header::CONTENT_LENGTH};
use poem_openapi::types::multipart::Upload;

use crate::{
    error::{ApiError, ErrorBody, ServiceError},
    provenance::{self, PhotoFacts},
};

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

/// Reads and validates 1..=`max` uploads (the count is checked first).
pub async fn validate_uploads(
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
        // Decoding is CPU work: keep it off the async runtime.
        let photo = tokio::task::spawn_blocking(move || validate_image(Bytes::from(bytes)))
            .await
            .expect("image validation does not panic")
            .map_err(|e| e.for_photo(i + 1))?;
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
/// declared size against [`MAX_PIXELS`], then decodes the whole image so that truncated
/// or corrupt files are refused now rather than failing in the worker.
pub fn validate_image(bytes: Bytes) -> Result<ValidatedPhoto, ImageError> {
    let format = match image::guess_format(&bytes) {
        Ok(f @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP)) => f,
        _ => return Err(ImageError::UnsupportedType),
    };
    let undecodable = |e: image::ImageError| ImageError::Undecodable(e.to_string());

    let (width, height) = ImageReader::with_format(Cursor::new(&bytes[..]), format)
        .into_dimensions()
        .map_err(undecodable)?;
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(ImageError::TooManyPixels { width, height });
    }

    let mut limits = Limits::default();
    // RGBA at the pixel cap, plus slack for the decoder's own buffers.
    limits.max_alloc = Some(MAX_PIXELS * 4 + 64 * 1024 * 1024);
    let mut reader = ImageReader::with_format(Cursor::new(&bytes[..]), format);
    reader.limits(limits);
    reader.decode().map_err(undecodable)?;
    if format == ImageFormat::Jpeg && !has_jpeg_end_marker(&bytes) {
        // The JPEG decoder pads a truncated scan with grey instead of failing.
        return Err(ImageError::Undecodable(
            "the JPEG data is truncated (no end-of-image marker)".into(),
        ));
    }
    let facts = provenance::inspect(&bytes);
    Ok(ValidatedPhoto {
        bytes,
        format,
        width,
        height,
        facts,
    })
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

//! Streaming a package archive to a file, with a progress bar on the terminal.

use std::fs::File;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::Url;

use super::hashing::{CopyError, copy_hashed};

#[derive(Debug, thiserror::Error)]
pub(super) enum DownloadError {
    #[error("{}", common::error_chain(.0))]
    Request(#[source] reqwest::Error),
    #[error("reading the response: {}", common::error_chain(.0))]
    Body(#[source] std::io::Error),
    #[error("writing the temporary file: {0}")]
    Write(#[source] std::io::Error),
}

/// Streams `url` into `out` and returns the SHA-256 of what arrived.
pub(super) fn download(
    client: &reqwest::blocking::Client,
    url: &Url,
    label: &str,
    out: &mut File,
) -> Result<String, DownloadError> {
    let response = client
        .get(url.clone())
        .send()
        .and_then(|r| r.error_for_status())
        .map_err(DownloadError::Request)?;
    let bar = match response.content_length() {
        Some(len) => ProgressBar::new(len),
        None => ProgressBar::no_length(),
    };
    // Hidden when stderr is not a terminal (services, tests).
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(label.to_owned());
    let sha = copy_hashed(response, out, |n| bar.inc(n as u64)).map_err(|e| match e {
        CopyError::Read(e) => DownloadError::Body(e),
        CopyError::Write(e) => DownloadError::Write(e),
    })?;
    bar.finish_and_clear();
    Ok(sha)
}

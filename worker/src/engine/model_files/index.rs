//! The package index client: a PEP 691 "simple" JSON project page gives each
//! distribution file's URL and SHA-256.

use std::collections::HashMap;

use reqwest::Url;
use serde::Deserialize;

/// What can be wrong with an index page.
#[derive(Debug, thiserror::Error)]
pub(super) enum IndexError {
    #[error("the package index URL {index:?} is invalid: {source}")]
    BadIndexUrl {
        index: String,
        #[source]
        source: url::ParseError,
    },
    #[error("the package index cannot be reached ({page}): {source}")]
    Unreachable {
        page: Url,
        #[source]
        source: reqwest::Error,
    },
    #[error("the index page {page} is not PEP 691 JSON: {source}")]
    NotJson {
        page: Url,
        #[source]
        source: serde_json::Error,
    },
    #[error("the index page {page} does not list {filename}")]
    NotListed { page: Url, filename: String },
    #[error("the index page {page} gives no SHA-256 for {filename}")]
    NoSha256 { page: Url, filename: String },
    #[error("the index page {page} has a bad URL for {filename}: {source}")]
    BadFileUrl {
        page: Url,
        filename: String,
        #[source]
        source: url::ParseError,
    },
}

/// The part of a PEP 691 project page that matters here.
#[derive(Debug, Deserialize)]
struct ProjectPage {
    files: Vec<IndexFile>,
}

#[derive(Debug, Deserialize)]
struct IndexFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: HashMap<String, String>,
}

/// Where the index at `index_url` says `filename` of `project` is, and its SHA-256.
pub(super) fn locate(
    client: &reqwest::blocking::Client,
    index_url: &str,
    project: &str,
    filename: &str,
) -> Result<(Url, String), IndexError> {
    let page_url = Url::parse(&format!("{}/{project}/", index_url.trim_end_matches('/'))).map_err(
        |source| IndexError::BadIndexUrl {
            index: index_url.to_owned(),
            source,
        },
    )?;
    let body = client
        .get(page_url.clone())
        .header(
            reqwest::header::ACCEPT,
            "application/vnd.pypi.simple.v1+json",
        )
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.bytes())
        .map_err(|source| IndexError::Unreachable {
            page: page_url.clone(),
            source,
        })?;
    locate_in_page(&page_url, &body, filename)
}

/// Where to download `filename` and its SHA-256, from a PEP 691 JSON page fetched from
/// `page_url` (file URLs may be relative to the page).
fn locate_in_page(
    page_url: &Url,
    body: &[u8],
    filename: &str,
) -> Result<(Url, String), IndexError> {
    let page: ProjectPage = serde_json::from_slice(body).map_err(|source| IndexError::NotJson {
        page: page_url.clone(),
        source,
    })?;
    let entry = page
        .files
        .iter()
        .find(|f| f.filename == filename)
        .ok_or_else(|| IndexError::NotListed {
            page: page_url.clone(),
            filename: filename.to_owned(),
        })?;
    let sha = entry
        .hashes
        .get("sha256")
        .ok_or_else(|| IndexError::NoSha256 {
            page: page_url.clone(),
            filename: filename.to_owned(),
        })?
        .to_ascii_lowercase();
    let url = page_url
        .join(&entry.url)
        .map_err(|source| IndexError::BadFileUrl {
            page: page_url.clone(),
            filename: filename.to_owned(),
            source,
        })?;
    Ok((url, sha))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_page_entries_are_located_and_relative_urls_resolved() {
        let page_url = Url::parse("https://mirror.example/simple/facenet-pytorch/").unwrap();
        let body = br#"{"meta": {"api-version": "1.1"}, "name": "facenet-pytorch", "files": [
            {"filename": "facenet_pytorch-2.5.3-py3-none-any.whl", "url": "a.whl", "hashes": {"sha256": "00"}},
            {"filename": "facenet_pytorch-2.6.0-py3-none-any.whl", "url": "../../files/b.whl", "hashes": {"sha256": "ABCD"}}
        ]}"#;
        let (url, sha) =
            locate_in_page(&page_url, body, "facenet_pytorch-2.6.0-py3-none-any.whl").unwrap();
        assert_eq!(url.as_str(), "https://mirror.example/files/b.whl");
        assert_eq!(sha, "abcd");

        let absent = locate_in_page(&page_url, body, "facenet_pytorch-9.9.9-py3-none-any.whl");
        assert!(absent.unwrap_err().to_string().contains("does not list"));
        let html = locate_in_page(&page_url, b"<html></html>", "x");
        assert!(html.unwrap_err().to_string().contains("not PEP 691 JSON"));
    }
}

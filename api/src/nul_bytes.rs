//! Requests carrying a NUL character in their path, query or a JSON string are a 400:
//! PostgreSQL refuses NUL in text, which would otherwise surface as a 500 (and SQLite
//! would store a string no other client expects). Multipart text fields are checked
//! where they are read (`services::required_text`).

use poem::{Body, Endpoint, IntoResponse, Request, Response, http::header::CONTENT_TYPE};
use serde_json::Value;

use crate::error::ApiError;

/// Middleware; runs inside the request-size limit, which bounds the JSON it reads.
pub async fn reject_nul_bytes<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    // `%00` is the only way a NUL reaches a URI (a raw one is refused by the parser).
    if req
        .uri()
        .path_and_query()
        .is_some_and(|p| p.as_str().contains("%00"))
    {
        return Ok(refuse("the path or query"));
    }
    let is_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        // `application/json` and `application/*+json`, with or without parameters.
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|essence| {
            let essence = essence.trim();
            essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json")
        });
    if is_json {
        let bytes = req.take_body().into_bytes().await?;
        // Malformed JSON is left to the handler's own 400.
        if serde_json::from_slice::<Value>(&bytes).is_ok_and(|v| has_nul(&v)) {
            return Ok(refuse("the JSON body"));
        }
        req.set_body(Body::from(bytes));
    }
    next.call(req).await.map(IntoResponse::into_response)
}

fn refuse(place: &str) -> Response {
    ApiError::bad_request(
        "nul_byte",
        format!("{place} contains a NUL character (\\u0000), which is not accepted"),
    )
    .into_response()
}

fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_nul_in_nested_strings_and_keys_only() {
        let v: Value = serde_json::from_str(r#"{"a": [1, {"b": "x\u0000y"}]}"#).unwrap();
        assert!(has_nul(&v));
        let v: Value = serde_json::from_str(r#"{"a\u0000": 1}"#).unwrap();
        assert!(has_nul(&v));
        // An escaped backslash followed by "u0000" is six ordinary characters.
        let v: Value = serde_json::from_str(r#"{"a": "\\u0000"}"#).unwrap();
        assert!(!has_nul(&v));
    }
}

//! One line for an error and its causes, for logs and operator messages.

/// An error with its sources, e.g. "error sending request: … Connection refused"; a
/// source whose text its parent already includes is not repeated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layer(text: &'static str, source: Option<Layer>) -> Layer {
        Layer {
            text,
            source: source.map(Box::new),
        }
    }

    #[test]
    fn causes_are_joined_and_repeats_skipped() {
        let e = layer(
            "sending request",
            Some(layer(
                "connect: connection refused",
                Some(layer("connection refused", None)),
            )),
        );
        assert_eq!(
            error_chain(&e),
            "sending request: connect: connection refused"
        );
    }
}

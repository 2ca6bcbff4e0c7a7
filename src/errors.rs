//! Errors for people: one line with every cause, outermost first.

/// `e` and its sources joined with `: `, as in `cannot write state.json: No space left`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn joins_every_cause() {
        let io = std::io::Error::other("disk full");
        let e = crate::state::StateError::Serialize {
            source: serde_json::Error::io(io),
        };
        assert!(
            super::error_chain(&e).ends_with("disk full"),
            "{}",
            super::error_chain(&e)
        );
    }
}

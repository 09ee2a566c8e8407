//! What every layer shares about errors: an error told whole, in words.

/// An error and its sources, outermost first, joined as one sentence (for a log
/// line or a dead letter's reason). A source whose text its wrapper already shows
/// is not repeated.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let words = cause.to_string();
        if !text.contains(&words) {
            text.push_str(": ");
            text.push_str(&words);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ghl::GhlError;
    use crate::ports::queue::QueueError;

    #[test]
    fn a_chain_names_each_cause_once() {
        let inner = std::io::Error::other("connection reset");
        let outer = QueueError::new(inner);
        assert_eq!(
            chain(&outer),
            "could not queue the message: connection reset"
        );
        let bare = std::io::Error::other("refused");
        assert_eq!(
            chain(&GhlError::unavailable("request failed", bare)),
            "GHL is unavailable (request failed): refused"
        );
    }
}

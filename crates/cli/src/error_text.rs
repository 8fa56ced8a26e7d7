//! An error as the command prints it: its message and its causes, each
//! once.

/// `e` and its causes joined by ": ", as `{:#}` prints them, leaving out a
/// cause whose text is already there: toolfan's errors name their source
/// in their own message and keep it as their `source()` too.
pub(crate) fn describe(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let cause = cause.to_string();
        if text.is_empty() {
            text = cause;
        } else if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn each_cause_is_printed_once() {
        let gone = std::io::Error::other("connection gone");
        let failed = toolfan_transport::TransportError::jetstream("reading the stats", gone);
        let e = anyhow::Error::new(failed).context("toolfan stats");
        assert_eq!(
            describe(&e),
            "toolfan stats: reading the stats: connection gone"
        );
        let plain = anyhow::Error::new(std::io::Error::other("refused")).context("connecting");
        assert_eq!(describe(&plain), format!("{plain:#}"));
    }
}

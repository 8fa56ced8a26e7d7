//! The test virtualenv's Python, which runs the programs written by
//! others that the tests check toolfan against (a worker on nats-py, MCP
//! servers and clients on the official MCP SDK); `scripts/install-deps`
//! makes it.

use std::path::PathBuf;

/// `.venv-test/bin/python`, or `TOOLFAN_TEST_PYTHON` when set.
pub fn python() -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os("TOOLFAN_TEST_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv-test/bin/python"),
    };
    anyhow::ensure!(
        path.exists(),
        "{} is missing: run scripts/install-deps (it makes the test virtualenv with nats-py, redis and mcp)",
        path.display()
    );
    Ok(path)
}

/// A file under `tests/`, as a string (for a command line or a tools file).
pub fn test_file(relative: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(relative);
    path.display().to_string()
}

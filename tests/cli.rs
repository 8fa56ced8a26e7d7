//! The `toolfan` command line as new users type it: flags after the
//! subcommand, the tools table, `toolfan dev` stopped by SIGTERM.

use std::process::{Command, Output};

use toolfan_testkit::RedisServer;

/// Runs the built `toolfan` binary with `args` to its end, with no
/// `TOOLFAN_*` connection variables set (the flags must do the work).
fn toolfan(args: &[&str]) -> anyhow::Result<Output> {
    let output = Command::new(toolfan_testkit::binary("toolfan")?)
        .args(args)
        .env_remove("TOOLFAN_REDIS_URL")
        .env_remove("TOOLFAN_NATS_URL")
        .env_remove("TOOLFAN_PREFIX")
        .env("RUST_LOG", "warn")
        .output()?;
    Ok(output)
}

fn stdout_of(args: &[&str]) -> anyhow::Result<String> {
    let output = toolfan(args)?;
    anyhow::ensure!(
        output.status.success(),
        "toolfan {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

#[test]
fn connection_flags_are_taken_after_the_subcommand() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let url = redis.url();
    stdout_of(&["limits", "set", "api", "50/s", "--redis-url", &url])?;
    stdout_of(&[
        "limits",
        "set",
        "db",
        "--redis-url",
        &url,
        "--concurrency",
        "5",
        "--prefix",
        "p2",
    ])?;
    // Before the nested subcommand still works, as it did.
    let listed = stdout_of(&["limits", "--redis-url", &url, "list"])?;
    assert!(listed.contains("api: 50/s"), "{listed}");
    assert!(
        !listed.contains("db:"),
        "db was set under prefix p2: {listed}"
    );
    let listed = stdout_of(&["limits", "list", "--prefix", "p2", "--redis-url", &url])?;
    assert!(listed.contains("db: "), "{listed}");
    assert!(!listed.contains("api:"), "{listed}");
    // The environment variable still stands in for the flag.
    let output = Command::new(toolfan_testkit::binary("toolfan")?)
        .args(["limits", "list"])
        .env("TOOLFAN_REDIS_URL", &url)
        .env_remove("TOOLFAN_PREFIX")
        .output()?;
    assert!(String::from_utf8(output.stdout)?.contains("api: 50/s"));
    // NATS flags, too: a refused connection names the URL given after `workers`.
    let output = toolfan(&[
        "workers",
        "--nats-url",
        "nats://127.0.0.1:1",
        "--nats-user",
        "u",
    ])?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
    Ok(())
}

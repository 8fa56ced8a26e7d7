//! NATS authentication and per-caller isolation with the shipped
//! deploy/nats-auth.conf on a real nats-server.

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use toolfan::{Client, ClientOptions, Task};
use toolfan_coordinator::CoordinatorOptions;
use toolfan_e2e::secured::{caller, NATS_AUTH_CONFIG};
use toolfan_testkit::NatsServer;
use toolfan_tools::builtin;
use toolfan_transport::NatsAuth;
use toolfan_worker::Worker;

/// A server with the shipped permissions, a coordinator and a worker with theirs.
async fn secured() -> anyhow::Result<(NatsServer, CancellationToken)> {
    toolfan_e2e::secured::start("secure-w", &["echo"]).await
}

/// A raw connection as `user` that reports the server's errors.
async fn raw(
    nats: &NatsServer,
    user: &str,
) -> anyhow::Result<(
    async_nats::Client,
    tokio::sync::mpsc::UnboundedReceiver<String>,
)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let client = async_nats::ConnectOptions::with_user_and_password(
        user.into(),
        format!("change-me-{user}"),
    )
    .custom_inbox_prefix(format!("_INBOX_{user}"))
    .event_callback(move |event| {
        let tx = tx.clone();
        async move {
            if let async_nats::Event::ServerError(e) = event {
                let _ = tx.send(e.to_string());
            }
        }
    })
    .connect(nats.url())
    .await?;
    Ok((client, rx))
}

async fn next_error(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(3), rx.recv())
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

#[tokio::test]
async fn the_permitted_flow_works_end_to_end() -> anyhow::Result<()> {
    let (nats, _stop) = secured().await?;
    let alice = caller(&nats, "alice").await?;
    let results = alice
        .fanout(vec![Task::new("echo", json!({"from": "alice"}))])
        .await?;
    assert_eq!(results[0].value(), Some(&json!({"from": "alice"})));
    // A caller may ask the fleet which tools it serves.
    let tools = alice.tools(Duration::from_millis(500)).await?;
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert!(names.contains(&"echo"), "{names:?}");
    Ok(())
}

#[tokio::test]
async fn strangers_and_wrong_passwords_are_refused() -> anyhow::Result<()> {
    let nats = NatsServer::start_with_config(NATS_AUTH_CONFIG)?;
    let anonymous = async_nats::connect(nats.url()).await;
    assert!(
        anonymous.is_err(),
        "a client without credentials was let in"
    );
    let wrong = async_nats::ConnectOptions::with_user_and_password("alice".into(), "guess".into())
        .connect(nats.url())
        .await;
    let error = wrong.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.to_lowercase().contains("authorization"), "{error}");
    Ok(())
}

#[tokio::test]
async fn a_caller_cannot_read_or_submit_as_another() -> anyhow::Result<()> {
    let (nats, _stop) = secured().await?;
    let (alice, mut errors) = raw(&nats, "alice").await?;

    let mut bobs = alice.subscribe("toolfan.reply.bob.>").await?;
    let error = next_error(&mut errors).await;
    assert!(
        error.contains("Permissions Violation for Subscription to \"toolfan.reply.bob.>\""),
        "{error:?}"
    );

    // Bob's job runs; alice's attempted eavesdrop hears nothing.
    let bob = caller(&nats, "bob").await?;
    bob.fanout(vec![Task::new("echo", json!({"secret": "bob's"}))])
        .await?;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), bobs.next())
            .await
            .is_err(),
        "alice read bob's reply"
    );

    alice
        .publish("toolfan.job.bob", "{\"tasks\": []}".into())
        .await?;
    let error = next_error(&mut errors).await;
    assert!(
        error.contains("Permissions Violation for Publish to \"toolfan.job.bob\""),
        "{error:?}"
    );

    alice
        .publish("toolfan.cancel.bob.any-job", "".into())
        .await?;
    let error = next_error(&mut errors).await;
    assert!(
        error.contains("Permissions Violation for Publish"),
        "{error:?}"
    );
    Ok(())
}

/// Runs `binary` with `args` and `env` at RUST_LOG=trace against the secured
/// server for a while, and returns everything it logged.
async fn logs_of(binary: &str, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<String> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("log");
    let mut cmd = std::process::Command::new(toolfan_testkit::binary(binary)?);
    cmd.args(args)
        .env("RUST_LOG", "trace")
        .env("TOOLFAN_METRICS_ADDR", "off")
        .stdout(std::fs::File::create(&path)?)
        .stderr(std::fs::File::create(dir.path().join("err"))?);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut process = toolfan_testkit::Process::spawn(binary, cmd)?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    process.kill();
    let mut text = std::fs::read_to_string(&path)?;
    text += &std::fs::read_to_string(dir.path().join("err"))?;
    Ok(text)
}

#[tokio::test]
async fn secrets_given_by_flag_or_environment_never_reach_the_logs() -> anyhow::Result<()> {
    let (nats, _stop) = secured().await?;
    let url = nats.url();
    let worker = logs_of(
        "toolfan-worker",
        &[
            "--nats-url",
            &url,
            "--nats-user",
            "worker",
            "--nats-password",
            "change-me-worker",
            "--id",
            "logged",
        ],
        &[],
    )
    .await?;
    assert!(
        worker.contains("worker started"),
        "the worker did not run: {worker}"
    );
    assert!(
        !worker.contains("change-me-worker"),
        "the password was logged"
    );

    let coordinator = logs_of(
        "toolfan-coordinator",
        &["--nats-url", &url],
        &[
            ("TOOLFAN_NATS_USER", "coordinator"),
            ("TOOLFAN_NATS_PASSWORD", "change-me-coordinator"),
        ],
    )
    .await?;
    assert!(
        coordinator.contains("coordinator started"),
        "the coordinator did not run: {coordinator}"
    );
    assert!(
        !coordinator.contains("change-me-coordinator"),
        "the password was logged"
    );
    Ok(())
}

/// Connects a caller with `auth` and runs one echo job through a cluster
/// whose services use `service_auth`.
async fn echo_through(
    config: &str,
    service_auth: NatsAuth,
    caller_auth: NatsAuth,
) -> anyhow::Result<()> {
    let nats = NatsServer::start_with_config(config)?;
    let stop = CancellationToken::new();
    let coordinator = CoordinatorOptions {
        nats_url: nats.url(),
        nats_auth: service_auth.clone(),
        ..CoordinatorOptions::default()
    };
    tokio::spawn(toolfan_coordinator::run(coordinator, stop.clone()));
    let worker = builtin::add_builtin(Worker::builder().nats_url(nats.url()).id("keyed-w"), "echo")
        .map_err(anyhow::Error::msg)?
        .build()?
        .with_nats_auth(service_auth);
    tokio::spawn(worker.run(stop.clone()));
    let mut options = ClientOptions::new(nats.url());
    options.auth = NatsAuth {
        inbox_prefix: Some("_INBOX".into()),
        ..caller_auth
    };
    let client = Client::connect(options).await?;
    client
        .wait_for_workers(&["keyed-w".to_owned()], Duration::from_secs(10))
        .await?;
    let results = client
        .fanout(vec![Task::new("echo", json!({"ok": true}))])
        .await?;
    assert_eq!(results[0].value(), Some(&json!({"ok": true})));
    stop.cancel();
    Ok(())
}

#[tokio::test]
async fn a_token_admits_its_holders_only() -> anyhow::Result<()> {
    let config = r#"authorization { token: "t0ken-for-tests" }"#;
    let token = NatsAuth {
        token: Some("t0ken-for-tests".into()),
        ..NatsAuth::default()
    };
    echo_through(config, token.clone(), token).await?;
    let nats = NatsServer::start_with_config(config)?;
    assert!(
        async_nats::connect(nats.url()).await.is_err(),
        "no token, no entry"
    );
    Ok(())
}

#[tokio::test]
async fn an_nkey_seed_signs_in() -> anyhow::Result<()> {
    let user = nkeys::KeyPair::new_user();
    let config = format!(
        r#"authorization {{ users = [ {{ nkey: "{}" }} ] }}"#,
        user.public_key()
    );
    let seed = NatsAuth {
        nkey_seed: Some(user.seed()?),
        ..NatsAuth::default()
    };
    echo_through(&config, seed.clone(), seed).await?;
    let stranger = NatsAuth {
        nkey_seed: Some(nkeys::KeyPair::new_user().seed()?),
        ..NatsAuth::default()
    };
    let nats = NatsServer::start_with_config(&config)?;
    let refused =
        toolfan_transport::connect_observed(&nats.url(), "stranger", &stranger, None).await;
    assert!(refused.is_err(), "an unknown key was let in");
    Ok(())
}

/// Makes a CA and a server certificate for 127.0.0.1 with openssl in `dir`.
fn certificates(dir: &std::path::Path) -> anyhow::Result<()> {
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    std::fs::write(dir.join("san.ext"), "subjectAltName = IP:127.0.0.1\n")?;
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=toolfan test CA",
    ])?;
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ])?;
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    ])?;
    Ok(())
}

#[tokio::test]
async fn tls_with_a_trusted_ca_connects_and_is_required() -> anyhow::Result<()> {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("skipped: openssl is not installed to make test certificates");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    certificates(dir.path())?;
    let path = |name: &str| dir.path().join(name).display().to_string();
    let config = format!(
        "tls {{ cert_file: \"{}\", key_file: \"{}\" }}",
        path("server.pem"),
        path("server.key")
    );
    let tls = NatsAuth {
        tls_ca: Some(dir.path().join("ca.pem")),
        tls_required: true,
        ..NatsAuth::default()
    };
    echo_through(&config, tls.clone(), tls).await?;
    // Without the CA the server's certificate is not trusted.
    let nats = NatsServer::start_with_config(&config)?;
    let untrusted = NatsAuth {
        tls_required: true,
        ..NatsAuth::default()
    };
    let refused =
        toolfan_transport::connect_observed(&nats.url(), "untrusted", &untrusted, None).await;
    assert!(
        refused.is_err(),
        "a server certificate from an unknown CA was trusted"
    );
    Ok(())
}

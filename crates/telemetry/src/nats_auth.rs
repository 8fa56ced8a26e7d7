//! The NATS credential flags every binary takes (secrets by environment
//! variable are hidden from `--help`).

use std::path::PathBuf;

use toolfan_transport::NatsAuth;

/// NATS credentials and TLS, from flags or `TOOLFAN_NATS_*` variables.
#[derive(clap::Args, Clone, Default)]
pub struct NatsAuthArgs {
    /// NATS user (with --nats-password).
    #[arg(long, global = true, env = "TOOLFAN_NATS_USER")]
    pub nats_user: Option<String>,
    /// NATS password.
    #[arg(
        long,
        global = true,
        env = "TOOLFAN_NATS_PASSWORD",
        hide_env_values = true
    )]
    pub nats_password: Option<String>,
    /// NATS token.
    #[arg(
        long,
        global = true,
        env = "TOOLFAN_NATS_TOKEN",
        hide_env_values = true
    )]
    pub nats_token: Option<String>,
    /// NATS NKey seed.
    #[arg(
        long,
        global = true,
        env = "TOOLFAN_NATS_NKEY_SEED",
        hide_env_values = true
    )]
    pub nats_nkey_seed: Option<String>,
    /// NATS `.creds` file.
    #[arg(long, global = true, env = "TOOLFAN_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// CA certificate(s) to trust for NATS TLS, PEM.
    #[arg(long, global = true, env = "TOOLFAN_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,
    /// Client certificate for NATS TLS, PEM.
    #[arg(long, global = true, env = "TOOLFAN_NATS_TLS_CERT")]
    pub nats_tls_cert: Option<PathBuf>,
    /// Client key for NATS TLS, PEM.
    #[arg(long, global = true, env = "TOOLFAN_NATS_TLS_KEY")]
    pub nats_tls_key: Option<PathBuf>,
    /// Refuse to connect to NATS without TLS.
    #[arg(long, global = true, env = "TOOLFAN_NATS_TLS_REQUIRED")]
    pub nats_tls_required: bool,
}

impl std::fmt::Debug for NatsAuthArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_auth().fmt(f)
    }
}

impl NatsAuthArgs {
    /// The credentials these flags name.
    pub fn to_auth(&self) -> NatsAuth {
        NatsAuth {
            user: self.nats_user.clone(),
            password: self.nats_password.clone(),
            token: self.nats_token.clone(),
            nkey_seed: self.nats_nkey_seed.clone(),
            creds_file: self.nats_creds.clone(),
            tls_ca: self.nats_tls_ca.clone(),
            tls_cert: self.nats_tls_cert.clone(),
            tls_key: self.nats_tls_key.clone(),
            tls_required: self.nats_tls_required,
            inbox_prefix: None,
        }
    }
}

//! How a process proves who it is to NATS: user and password, a token, an
//! NKey seed or a `.creds` file, and TLS. Secrets never print: `Debug`
//! shows only which kinds of credentials are set.

use std::fmt;
use std::path::PathBuf;

use crate::TransportError;

/// Why credentials and TLS settings cannot be used (the source of a
/// [`TransportError::Connect`] to `(credentials)`).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A user without a password, or a password without a user.
    #[error("a NATS user needs a password, and a password a user")]
    UserWithoutPassword,
    /// A client certificate without its key, or a key without a certificate.
    #[error("a TLS client certificate needs its key, and a key its certificate")]
    CertWithoutKey,
    /// The `.creds` file could not be read.
    #[error("cannot read the credentials file {}: {source}", path.display())]
    CredsFile {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
}

/// Credentials and TLS settings for a NATS connection.
#[derive(Clone, Default)]
pub struct NatsAuth {
    /// User name (with `password`).
    pub user: Option<String>,
    /// Password (with `user`).
    pub password: Option<String>,
    /// Token.
    pub token: Option<String>,
    /// NKey seed (`SU...`).
    pub nkey_seed: Option<String>,
    /// A `.creds` file (JWT and NKey seed).
    pub creds_file: Option<PathBuf>,
    /// CA certificate(s) to trust, PEM.
    pub tls_ca: Option<PathBuf>,
    /// Client certificate, PEM (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// Client key, PEM (with `tls_cert`).
    pub tls_key: Option<PathBuf>,
    /// Refuse a connection without TLS.
    pub tls_required: bool,
    /// The prefix of this connection's reply inboxes (default `_INBOX`); a
    /// caller gets `_INBOX_<caller>` so NATS permissions can keep each
    /// caller to its own.
    pub inbox_prefix: Option<String>,
}

impl fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |present: bool| if present { "<set>" } else { "<none>" };
        f.debug_struct("NatsAuth")
            .field("user", &self.user)
            .field("password", &set(self.password.is_some()))
            .field("token", &set(self.token.is_some()))
            .field("nkey_seed", &set(self.nkey_seed.is_some()))
            .field("creds_file", &self.creds_file)
            .field("tls_ca", &self.tls_ca)
            .field("tls_cert", &self.tls_cert)
            .field("tls_required", &self.tls_required)
            .field("inbox_prefix", &self.inbox_prefix)
            .finish()
    }
}

impl NatsAuth {
    /// Applies the credentials and TLS settings to `options`.
    pub(crate) async fn apply(
        &self,
        mut options: async_nats::ConnectOptions,
    ) -> Result<async_nats::ConnectOptions, TransportError> {
        let bad = |error: AuthError| TransportError::connect("(credentials)", error);
        match (&self.user, &self.password) {
            (Some(user), Some(password)) => {
                options = options.user_and_password(user.clone(), password.clone())
            }
            (None, None) => {}
            _ => return Err(bad(AuthError::UserWithoutPassword)),
        }
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        if let Some(seed) = &self.nkey_seed {
            options = options.nkey(seed.clone());
        }
        if let Some(path) = &self.creds_file {
            options = options.credentials_file(path).await.map_err(|source| {
                bad(AuthError::CredsFile {
                    path: path.clone(),
                    source,
                })
            })?;
        }
        if let Some(ca) = &self.tls_ca {
            options = options.add_root_certificates(ca.clone());
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                options = options.add_client_certificate(cert.clone(), key.clone())
            }
            (None, None) => {}
            _ => return Err(bad(AuthError::CertWithoutKey)),
        }
        if self.tls_required {
            options = options.require_tls(true);
        }
        if let Some(prefix) = &self.inbox_prefix {
            options = options.custom_inbox_prefix(prefix);
        }
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let auth = NatsAuth {
            user: Some("alice".into()),
            password: Some("hunter2".into()),
            token: Some("tok-secret".into()),
            nkey_seed: Some("SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY".into()),
            ..NatsAuth::default()
        };
        let shown = format!("{auth:?}");
        assert!(shown.contains("alice"), "{shown}");
        for secret in ["hunter2", "tok-secret", "SUACSSL3"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}

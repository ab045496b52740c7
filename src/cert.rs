//! `kausal cert`: development certificates for `kausal serve` and a webhook
//! kubeconfig that uses them, so mTLS works on the first try.
//!
//! For production, use your own PKI (cert-manager, or the cluster's CA): these
//! are ECDSA P-256 certificates from a throwaway CA whose key sits next to them.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

#[derive(clap::Args, Debug, Clone)]
pub struct CertArgs {
    /// Directory to write into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Names and IP addresses the server certificate is valid for (repeatable or comma-separated).
    #[arg(long = "san", value_delimiter = ',', default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned()])]
    pub sans: Vec<String>,
    /// The URL the apiserver will POST to, written into the webhook kubeconfig.
    #[arg(long, default_value = "https://127.0.0.1:8443/audit")]
    pub server_url: String,
    /// Common name of the apiserver's client certificate.
    #[arg(long, default_value = "kube-apiserver")]
    pub client_name: String,
    /// Validity of every certificate, in days.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

/// The files `kausal cert` writes, relative to `--out`.
pub const FILES: [&str; 7] =
    ["ca.crt", "ca.key", "server.crt", "server.key", "client.crt", "client.key", "webhook-kubeconfig.yaml"];

/// Why `kausal cert` wrote nothing (or not everything).
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("give the server certificate at least one --san")]
    NoSan,
    #[error("{} exists; pass --force to overwrite", .0.display())]
    Exists(PathBuf),
    #[error("invalid --san: {0}")]
    InvalidSan(rcgen::Error),
    #[error("making the certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
}

pub fn run(args: &CertArgs) -> Result<Vec<PathBuf>, CertError> {
    if args.sans.is_empty() {
        return Err(CertError::NoSan);
    }
    fs::create_dir_all(&args.out).map_err(|source| CertError::Io {
        what: "creating",
        path: args.out.clone(),
        source,
    })?;
    if !args.force {
        for name in FILES {
            let path = args.out.join(name);
            if path.exists() {
                return Err(CertError::Exists(path));
            }
        }
    }
    let now = time::OffsetDateTime::now_utc();
    let validity = |params: &mut CertificateParams| {
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(i64::from(args.days));
    };

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(DnType::CommonName, "kausal development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut ca_params);
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;

    let server_key = KeyPair::generate()?;
    let mut server_params = CertificateParams::new(args.sans.clone()).map_err(CertError::InvalidSan)?;
    server_params.distinguished_name.push(DnType::CommonName, "kausal");
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut server_params);
    let server = server_params.signed_by(&server_key, &ca)?;

    let client_key = KeyPair::generate()?;
    let mut client_params = CertificateParams::new(Vec::<String>::new())?;
    client_params.distinguished_name.push(DnType::CommonName, args.client_name.clone());
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    client_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut client_params);
    let client = client_params.signed_by(&client_key, &ca)?;

    let kubeconfig = webhook_kubeconfig(&args.server_url, &ca.pem(), &client.pem(), &client_key.serialize_pem());
    let contents: [(&str, String, bool); 7] = [
        ("ca.crt", ca.pem(), false),
        ("ca.key", ca.key().serialize_pem(), true),
        ("server.crt", server.pem(), false),
        ("server.key", server_key.serialize_pem(), true),
        ("client.crt", client.pem(), false),
        ("client.key", client_key.serialize_pem(), true),
        ("webhook-kubeconfig.yaml", kubeconfig, true),
    ];
    let mut written = Vec::new();
    for (name, text, secret) in contents {
        let path = args.out.join(name);
        write_file(&path, text.as_bytes(), secret)?;
        written.push(path);
    }
    Ok(written)
}

/// A kubeconfig for `--audit-webhook-config-file`, with everything embedded.
pub fn webhook_kubeconfig(server_url: &str, ca_pem: &str, client_pem: &str, client_key_pem: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "# Audit webhook kubeconfig for kube-apiserver --audit-webhook-config-file, written by `kausal cert`.\n\
         apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: kausal\n  cluster:\n    server: {server_url}\n    certificate-authority-data: {}\n\
         users:\n\
         - name: kube-apiserver\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n\
         contexts:\n\
         - name: kausal\n  context:\n    cluster: kausal\n    user: kube-apiserver\n\
         current-context: kausal\n",
        b64(ca_pem),
        b64(client_pem),
        b64(client_key_pem),
    )
}

fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), CertError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let io = |source| CertError::Io { what: "writing", path: path.to_owned(), source };
    let mut file = options.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    Ok(())
}

//! The lab cluster's PKI: one self-signed CA, the kube-apiserver serving certificate, the
//! service-account signing key pair, client certificates for components and users, and
//! self-contained kubeconfigs that embed them.
//!
//! Everything is ECDSA P-256 (rcgen on ring). Keys are PKCS#8 `PRIVATE KEY` PEM, which Go's
//! `tls.X509KeyPair` and k8s `keyutil` both accept; files holding keys are mode 0600, the
//! directory 0700. Every file is written atomically (temp file in the same directory + rename).

use std::fmt;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::{Engine, engine::general_purpose::STANDARD};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};

/// Common name of the lab CA.
pub const CA_COMMON_NAME: &str = "svcbench-lab-ca";

/// DNS names every apiserver certificate carries, besides the caller's.
const APISERVER_DNS: [&str; 5] =
    ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"];

/// A CA on disk plus the key material kube-apiserver needs; issues client certificates.
pub struct Pki {
    dir: PathBuf,
    ca_pem: String,
    ca: Issuer<'static, KeyPair>,
}

/// A client certificate and its key, as files and as PEM text.
#[derive(Clone)]
pub struct ClientCert {
    /// Path of `<name>.crt`.
    pub cert: PathBuf,
    /// Path of `<name>.key` (mode 0600).
    pub key: PathBuf,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
}

impl fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCert").field("cert", &self.cert).field("key", &self.key).finish_non_exhaustive()
    }
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Pki {
    /// Creates `dir` (0700) and writes a fresh CA, apiserver serving cert and service-account key pair into it.
    pub fn create(dir: &Path, apiserver_sans: &[IpAddr], dns_sans: &[&str]) -> Result<Pki> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating PKI directory {}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("setting mode 0700 on {}", dir.display()))?;

        let ca_key = new_key()?;
        let mut params = params_for(CA_COMMON_NAME, &[], 10)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_pem = params.self_signed(&ca_key).context("self-signing the lab CA")?.pem();
        write_file(&dir.join("ca.crt"), ca_pem.as_bytes(), 0o644)?;
        write_file(&dir.join("ca.key"), ca_key.serialize_pem().as_bytes(), 0o600)?;
        let pki = Pki { dir: dir.to_path_buf(), ca_pem, ca: Issuer::new(params, ca_key) };

        let mut params = params_for("kube-apiserver", &[], 1)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.subject_alt_names = apiserver_sans.iter().map(|ip| SanType::IpAddress(*ip)).collect();
        for name in APISERVER_DNS.iter().chain(dns_sans) {
            let name = (*name).try_into().with_context(|| format!("apiserver DNS SAN {name:?}"))?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        pki.issue("apiserver", params)?;

        let sa = new_key()?;
        write_file(&pki.sa_key_path(), sa.serialize_pem().as_bytes(), 0o600)?;
        write_file(&pki.sa_pub_path(), sa.public_key_pem().as_bytes(), 0o644)?;
        Ok(pki)
    }

    /// Issues a client-auth certificate (CN `common_name`, one O per organization, at most two) as `<name>.crt/.key`.
    pub fn client(&self, name: &str, common_name: &str, organizations: &[&str]) -> Result<ClientCert> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            bail!("client certificate name {name:?} is not a plain file name");
        }
        let mut params = params_for(common_name, organizations, 1)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(name, params)
    }

    /// Writes a self-contained kubeconfig (JSON, certs embedded) for `client` against `server`, mode 0600.
    pub fn kubeconfig(&self, path: &Path, server: &str, client: &ClientCert, context_name: &str) -> Result<()> {
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{ "name": context_name, "cluster": {
                "server": server,
                "certificate-authority-data": STANDARD.encode(&self.ca_pem),
            }}],
            "users": [{ "name": context_name, "user": {
                "client-certificate-data": STANDARD.encode(&client.cert_pem),
                "client-key-data": STANDARD.encode(&client.key_pem),
            }}],
            "contexts": [{ "name": context_name, "context": { "cluster": context_name, "user": context_name }}],
            "current-context": context_name,
        });
        let text = serde_json::to_string_pretty(&config).context("serializing kubeconfig")?;
        write_file(path, text.as_bytes(), 0o600)
    }

    /// The directory holding every file.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `ca.crt`: the CA certificate (for `--client-ca-file`, `--root-ca-file`, `--cluster-signing-cert-file`).
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// `ca.key`: the CA private key (for `--cluster-signing-key-file`).
    pub fn ca_key_path(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// `apiserver.crt`: the serving certificate (for `--tls-cert-file`).
    pub fn apiserver_cert_path(&self) -> PathBuf {
        self.dir.join("apiserver.crt")
    }

    /// `apiserver.key`: the serving key (for `--tls-private-key-file`).
    pub fn apiserver_key_path(&self) -> PathBuf {
        self.dir.join("apiserver.key")
    }

    /// `sa.key`: the service-account signing key (`--service-account-signing-key-file`, `--service-account-private-key-file`).
    pub fn sa_key_path(&self) -> PathBuf {
        self.dir.join("sa.key")
    }

    /// `sa.pub`: the service-account public key, SubjectPublicKeyInfo PEM (`--service-account-key-file`).
    pub fn sa_pub_path(&self) -> PathBuf {
        self.dir.join("sa.pub")
    }

    /// Signs `params` with a fresh key and writes `<name>.crt` and `<name>.key`.
    fn issue(&self, name: &str, mut params: CertificateParams) -> Result<ClientCert> {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let key = new_key()?;
        let cert_pem = params.signed_by(&key, &self.ca).with_context(|| format!("signing {name}.crt"))?.pem();
        let key_pem = key.serialize_pem();
        let (cert, key) = (self.dir.join(format!("{name}.crt")), self.dir.join(format!("{name}.key")));
        write_file(&cert, cert_pem.as_bytes(), 0o644)?;
        write_file(&key, key_pem.as_bytes(), 0o600)?;
        Ok(ClientCert { cert, key, cert_pem, key_pem })
    }
}

/// A fresh ECDSA P-256 key pair.
fn new_key() -> Result<KeyPair> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("generating an ECDSA P-256 key")
}

/// Params with subject CN/O, valid from yesterday (clock skew) for `years` years.
fn params_for(common_name: &str, organizations: &[&str], years: i16) -> Result<CertificateParams> {
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let from = today.yesterday().context("computing certificate start date")?;
    let until = today.checked_add(jiff::Span::new().years(years)).context("computing certificate end date")?;
    let mut params = CertificateParams::default();
    params.not_before = rcgen::date_time_ymd(from.year().into(), from.month() as u8, from.day() as u8);
    params.not_after = rcgen::date_time_ymd(until.year().into(), until.month() as u8, until.day() as u8);
    // rcgen keeps one value per attribute type (rustls/rcgen#81); a custom type with O's OID
    // (2.5.4.10) carries a second organization, which Go's x509 reads as a second O.
    let org_types = [DnType::OrganizationName, DnType::CustomDnType(vec![2, 5, 4, 10])];
    if organizations.len() > org_types.len() {
        bail!("{common_name}: at most {} organizations (groups) per certificate", org_types.len());
    }
    let mut dn = DistinguishedName::new();
    for (ty, org) in org_types.into_iter().zip(organizations) {
        dn.push(ty, *org);
    }
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    Ok(params)
}

/// Writes `contents` to `path` atomically with `mode`: a temp file beside it, fsync, rename.
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let file_name = path.file_name().with_context(|| format!("{} has no file name", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.tmp-{}", file_name.to_string_lossy(), std::process::id()));
    let _ = fs::remove_file(&tmp);
    let result = (|| {
        let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// `openssl <args>` stdout, or None (with a message) when openssl is not installed.
    fn openssl(args: &[&str]) -> Option<String> {
        match Command::new("openssl").args(args).output() {
            Ok(out) => {
                let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
                assert!(out.status.success(), "openssl {args:?} failed: {text}");
                Some(text)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("openssl not found; skipping openssl {args:?}");
                None
            }
            Err(e) => panic!("running openssl: {e}"),
        }
    }

    fn text(path: &Path) -> Option<String> {
        openssl(&["x509", "-noout", "-text", "-nameopt", "RFC2253", "-in", path.to_str().unwrap()])
    }

    #[tokio::test]
    async fn issues_verifiable_certs_and_a_usable_kubeconfig() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        let ips: [IpAddr; 2] = ["10.96.0.1".parse().unwrap(), "fd00::1".parse().unwrap()];
        let pki = Pki::create(&dir, &ips, &["apiserver.lab"]).unwrap();
        let admin = pki.client("admin", "kubernetes-admin", &["system:masters", "lab"]).unwrap();
        assert!(pki.client("../evil", "x", &[]).is_err());
        assert!(pki.client("many", "x", &["a", "b", "c"]).is_err());

        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(pki.dir()), 0o700);
        for key in [dir.join("ca.key"), pki.apiserver_key_path(), pki.sa_key_path(), admin.key.clone()] {
            assert_eq!(mode(&key), 0o600, "{}", key.display());
            assert!(fs::read_to_string(&key).unwrap().starts_with("-----BEGIN PRIVATE KEY-----"));
        }
        assert!(fs::read_to_string(pki.sa_pub_path()).unwrap().starts_with("-----BEGIN PUBLIC KEY-----"));
        assert_eq!(fs::read_to_string(pki.ca_cert_path()).unwrap(), pki.ca_pem());
        assert_eq!(fs::read_to_string(&admin.cert).unwrap(), admin.cert_pem);

        if let Some(ca) = text(&pki.ca_cert_path()) {
            assert!(ca.contains("CA:TRUE"), "{ca}");
            assert!(ca.contains("CN=svcbench-lab-ca"), "{ca}");
            assert!(ca.contains("prime256v1"), "{ca}");
        }
        if let Some(server) = text(&pki.apiserver_cert_path()) {
            assert!(server.contains("TLS Web Server Authentication"), "{server}");
            assert!(!server.contains("CA:TRUE"), "{server}");
            for san in ["IP Address:10.96.0.1", "IP Address:FD00:0:0:0:0:0:0:1", "DNS:apiserver.lab"] {
                assert!(server.contains(san), "{san} missing: {server}");
            }
            for name in APISERVER_DNS {
                assert!(server.contains(&format!("DNS:{name},")) || server.contains(&format!("DNS:{name}\n")));
            }
        }
        if let Some(client) = text(&admin.cert) {
            assert!(client.contains("TLS Web Client Authentication"), "{client}");
            assert!(client.contains("CN=kubernetes-admin,O=lab,O=system:masters"), "{client}");
        }
        let ca = pki.ca_cert_path();
        for cert in [pki.apiserver_cert_path(), admin.cert.clone()] {
            if let Some(out) = openssl(&["verify", "-CAfile", ca.to_str().unwrap(), cert.to_str().unwrap()]) {
                assert!(out.contains(": OK"), "{out}");
            }
        }
        if let Some(out) = openssl(&["pkey", "-pubin", "-in", pki.sa_pub_path().to_str().unwrap(), "-noout", "-text"]) {
            assert!(out.contains("prime256v1"), "{out}");
        }

        let path = tmp.path().join("admin.kubeconfig");
        pki.kubeconfig(&path, "https://10.96.0.1:6443", &admin, "lab").unwrap();
        assert_eq!(mode(&path), 0o600);
        let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("lab"));
        let cluster = kc.clusters[0].cluster.as_ref().unwrap();
        assert_eq!(cluster.server.as_deref(), Some("https://10.96.0.1:6443"));
        // kube-rs (rustls) must accept the embedded CA, cert and key.
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.unwrap();
        kube::Client::try_from(config).expect("rustls accepts the embedded PEM");
    }
}

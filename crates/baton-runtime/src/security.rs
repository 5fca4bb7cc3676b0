//! gRPC over TLS, and who the caller is.
//!
//! With `--tls-cert`/`--tls-key` a service speaks gRPC over TLS (rustls,
//! ring). With `--client-ca` and `--callers` as well, every request to the
//! Baton services must come with a client certificate signed by that CA
//! whose identity is in the caller registry: none -> UNAUTHENTICATED, an
//! identity the registry does not know -> PERMISSION_DENIED. The identity is
//! the first registered DNS subject alternative name; only a certificate
//! with no DNS name at all is known by its subject's common name
//! ([`certificate_identities`]). The caller is put in the
//! request's extensions for the service to authorize each append
//! ([`baton_domain::access`]). The health and reflection services stay open,
//! for load balancers.
//!
//! Without these flags (the README's dev mode) gRPC is plaintext and every
//! caller anonymous.

use std::{path::PathBuf, sync::Arc};

use baton_domain::access::{Caller, Registry, RegistryError};
use tonic::{
    transport::{Certificate, Identity, ServerTlsConfig},
    Request, Status,
};

/// TLS and caller authentication for a gRPC service.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Server certificate chain (PEM): serve gRPC over TLS. Without it, plaintext (dev only).
    #[arg(long, env = "BATON_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "BATON_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// CA certificate (PEM) that signs callers' client certificates: every
    /// call must present one (mutual TLS). Needs --tls-cert and --callers.
    #[arg(long, env = "BATON_CLIENT_CA", requires_all = ["tls_cert", "callers"])]
    pub client_ca: Option<PathBuf>,

    /// Caller registry (JSON): certificate identity -> role and departments.
    /// See deploy/callers.json. Needs --client-ca.
    #[arg(long, env = "BATON_CALLERS", requires = "client_ca")]
    pub callers: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("caller registry {path}: {source}")]
    Registry {
        path: PathBuf,
        source: RegistryError,
    },
    #[error("{path}: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("TLS for the HTTP side port: {0}")]
    HttpTls(String),
    #[error(transparent)]
    SessionKey(#[from] crate::web_auth::SessionKeyError),
}

fn read(path: &PathBuf) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(path).map_err(|source| SecurityError::Read {
        path: path.clone(),
        source,
    })
}

impl TlsArgs {
    /// The server's TLS configuration, if TLS is on. With a client CA,
    /// client certificates are checked against it when presented, and
    /// optional at the handshake so that a caller without one hears
    /// UNAUTHENTICATED rather than a broken connection.
    pub fn server_tls(&self) -> Result<Option<ServerTlsConfig>, SecurityError> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(read(cert)?, read(key)?));
        if let Some(ca) = &self.client_ca {
            tls = tls
                .client_ca_root(Certificate::from_pem(read(ca)?))
                .client_auth_optional(true);
        }
        Ok(Some(tls))
    }

    /// The HTTP side port's TLS (rustls, ring), if TLS is on: the same
    /// certificate as gRPC, HTTP/1.1. With a client CA, a client
    /// certificate is asked for and verified when presented, but not
    /// required: a wall screen without one logs in with its token.
    pub fn http_tls(&self) -> Result<Option<tokio_rustls::TlsAcceptor>, SecurityError> {
        use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
        use tokio_rustls::rustls;
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let pem = |path: &PathBuf, reason: String| SecurityError::Pem {
            path: path.clone(),
            reason,
        };
        let certs = |path: &PathBuf| -> Result<Vec<CertificateDer<'static>>, SecurityError> {
            let certs = CertificateDer::pem_slice_iter(&read(path)?)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| pem(path, format!("not PEM certificates: {e}")))?;
            if certs.is_empty() {
                return Err(pem(path, "no certificate in it".into()));
            }
            Ok(certs)
        };
        let chain = certs(cert)?;
        let private_key = PrivateKeyDer::from_pem_slice(&read(key)?)
            .map_err(|e| pem(key, format!("not a PEM private key: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = |e: rustls::Error| SecurityError::HttpTls(e.to_string());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(tls)?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for root in certs(ca)? {
                    roots
                        .add(root)
                        .map_err(|e| pem(ca, format!("not a CA certificate: {e}")))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .allow_unauthenticated()
                .build()
                .map_err(|e| SecurityError::HttpTls(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(chain, private_key).map_err(tls)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }

    /// The caller registry, if authentication is on. `is_department` is the
    /// catalog's department check.
    pub fn registry(
        &self,
        is_department: impl Fn(&baton_domain::Token) -> bool,
    ) -> Result<Option<Arc<Registry>>, SecurityError> {
        let Some(path) = &self.callers else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&read(path)?).into_owned();
        let registry = Registry::from_json(&text, is_department).map_err(|source| {
            SecurityError::Registry {
                path: path.clone(),
                source,
            }
        })?;
        tracing::info!(path = %path.display(), callers = registry.len(), "caller registry loaded, client certificates required");
        Ok(Some(Arc::new(registry)))
    }
}

/// The names a DER certificate is known by, by Baton's rule: its DNS
/// subject alternative names if it has any (then its common name does not
/// count), else its subject's common name, if it has exactly one. Empty if
/// it does not parse.
pub fn certificate_identities(der: &[u8]) -> Vec<String> {
    let der = rustls_pki_types::CertificateDer::from(der);
    let Ok(cert) = webpki::EndEntityCert::try_from(&der) else {
        return Vec::new();
    };
    identities(dns_names(der.as_ref()), common_names(cert.subject()))
}

/// The rule of [`certificate_identities`], on what a certificate presents.
fn identities(dns_names: Vec<String>, mut common_names: Vec<String>) -> Vec<String> {
    if !dns_names.is_empty() {
        return dns_names;
    }
    match common_names.len() {
        1 => common_names.split_off(0),
        // Several common names: which one is meant is anyone's guess.
        _ => Vec::new(),
    }
}

/// Every DNS name in a DER certificate's subject alternative names, as
/// written (webpki's `valid_dns_names` drops names it finds malformed; such
/// a name still means the certificate has DNS names, so the common name
/// must not count).
fn dns_names(certificate: &[u8]) -> Vec<String> {
    const SAN: &[u8] = &[0x55, 0x1d, 0x11];
    const DNS_NAME: u8 = 0x82;
    let mut names = Vec::new();
    let Some((0x30, certificate, _)) = der_next(certificate) else {
        return names;
    };
    let Some((0x30, mut tbs, _)) = der_next(certificate) else {
        return names;
    };
    // tbsCertificate: version, serial, ..., subjectPublicKeyInfo, then
    // [3] the extensions.
    let extensions = loop {
        match der_next(tbs) {
            Some((0xa3, extensions, _)) => break extensions,
            Some((_, _, rest)) => tbs = rest,
            None => return names,
        }
    };
    let Some((0x30, mut extensions, _)) = der_next(extensions) else {
        return names;
    };
    while let Some((0x30, extension, rest)) = der_next(extensions) {
        extensions = rest;
        let Some((0x06, oid, mut fields)) = der_next(extension) else {
            continue;
        };
        if oid != SAN {
            continue;
        }
        // critical BOOLEAN DEFAULT FALSE, then extnValue OCTET STRING.
        if let Some((0x01, _, rest)) = der_next(fields) {
            fields = rest;
        }
        let Some((0x04, value, _)) = der_next(fields) else {
            continue;
        };
        let Some((0x30, mut general_names, _)) = der_next(value) else {
            continue;
        };
        while let Some((tag, name, rest)) = der_next(general_names) {
            general_names = rest;
            if tag == DNS_NAME {
                names.push(String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    names
}

/// The common names in the content of a DER `Name` (an RDNSequence).
fn common_names(mut rdns: &[u8]) -> Vec<String> {
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    let mut names = Vec::new();
    while let Some((0x31, set, rest)) = der_next(rdns) {
        rdns = rest;
        let mut attributes = set;
        while let Some((0x30, attribute, rest)) = der_next(attributes) {
            attributes = rest;
            if let Some((0x06, oid, value)) = der_next(attribute) {
                if oid == CN {
                    if let Some((_, text, _)) = der_next(value) {
                        if let Ok(text) = std::str::from_utf8(text) {
                            names.push(text.to_owned());
                        }
                    }
                }
            }
        }
    }
    names
}

/// One DER element at the start of `input`: (tag, content, rest).
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, input) = input.split_first()?;
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || input.len() < octets {
            return None;
        }
        let (bytes, rest) = input.split_at(octets);
        input = rest;
        bytes
            .iter()
            .fold(0usize, |len, b| (len << 8) | usize::from(*b))
    };
    if input.len() < len {
        return None;
    }
    let (content, rest) = input.split_at(len);
    Some((tag, content, rest))
}

/// The caller of a request, as [`authenticate`] found it; `None` when
/// authentication is off.
pub fn caller<T>(request: &Request<T>) -> Option<&Caller> {
    request.extensions().get::<Caller>()
}

/// Finds the caller of a request by its client certificate: the
/// interceptor of every Baton service when authentication is on.
pub fn authenticate(registry: &Registry, mut request: Request<()>) -> Result<Request<()>, Status> {
    let certs = request.peer_certs();
    let Some(leaf) = certs.as_ref().and_then(|c| c.first()) else {
        return Err(Status::unauthenticated(
            "a client certificate signed by the callers' CA is required",
        ));
    };
    let identities = certificate_identities(leaf.as_ref());
    let caller = registry
        .identify(identities.iter().map(String::as_str))
        .map_err(|denied| Status::permission_denied(denied.to_string()))?
        .clone();
    request.extensions_mut().insert(caller);
    Ok(request)
}

/// An interceptor for [`authenticate`], or one that lets every request
/// through when `registry` is `None`.
pub fn interceptor(
    registry: Option<Arc<Registry>>,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |request| match &registry {
        Some(registry) => authenticate(registry, request),
        None => Ok(request),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_common_names_from_a_der_name() {
        // SET { SEQ { OID 2.5.4.3, UTF8String "lab-system" } }, SET { SEQ { OID 2.5.4.10, "Baton" } }
        let mut name = vec![
            0x31, 0x13, 0x30, 0x11, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x0a,
        ];
        name.extend_from_slice(b"lab-system");
        name.extend_from_slice(&[
            0x31, 0x0e, 0x30, 0x0c, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x05,
        ]);
        name.extend_from_slice(b"Baton");
        assert_eq!(common_names(&name), vec!["lab-system".to_owned()]);
    }

    // Self-signed certificates made with `openssl req -x509` (EC P-256);
    // only their names matter here, the TLS layer checks the signatures.
    // san-cn: CN lab-system, SAN DNS:stranger.example.
    const SAN_AND_CN: &[u8] = include_bytes!("../testdata/san-cn.der");
    // cn-only: CN duty-desk, no SAN.
    const CN_ONLY: &[u8] = include_bytes!("../testdata/cn-only.der");
    // two-sans: CN ignored, SAN DNS:unknown.example, DNS:lab-system, IP:127.0.0.1.
    const TWO_SANS: &[u8] = include_bytes!("../testdata/two-sans.der");
    // ip-only: CN ward-5-system, SAN IP:127.0.0.1 (no DNS name).
    const IP_ONLY: &[u8] = include_bytes!("../testdata/ip-only.der");
    // bad-san: CN lab-system, SAN DNS:bad..name (not a valid DNS name).
    const BAD_SAN: &[u8] = include_bytes!("../testdata/bad-san.der");

    #[test]
    fn dns_names_count_and_then_the_common_name_does_not() {
        assert_eq!(certificate_identities(SAN_AND_CN), ["stranger.example"]);
        assert_eq!(
            certificate_identities(TWO_SANS),
            ["unknown.example", "lab-system"]
        );
        // A malformed DNS name is still a DNS name: the CN stays out.
        assert_eq!(certificate_identities(BAD_SAN), ["bad..name"]);
    }

    #[test]
    fn without_a_dns_name_the_common_name_counts() {
        assert_eq!(certificate_identities(CN_ONLY), ["duty-desk"]);
        assert_eq!(certificate_identities(IP_ONLY), ["ward-5-system"]);
    }

    #[test]
    fn the_rule_on_what_a_certificate_presents() {
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            identities(names(&["a.example"]), names(&["lab-system"])),
            ["a.example"]
        );
        assert_eq!(
            identities(names(&[]), names(&["lab-system"])),
            ["lab-system"]
        );
        assert!(identities(names(&[]), names(&["lab-system", "ward-5-system"])).is_empty());
        assert!(identities(names(&[]), names(&[])).is_empty());
    }

    #[test]
    fn a_registered_common_name_behind_an_unregistered_dns_name_is_refused() {
        let registry = Registry::from_json(
            r#"{"callers": [
              {"id": "lab-system", "role": "department", "departments": ["lab"]},
              {"id": "duty-desk", "role": "operator"}
            ]}"#,
            |_| true,
        )
        .expect("registry");
        let identify = |der: &[u8]| {
            registry
                .identify(certificate_identities(der).iter().map(String::as_str))
                .map(|c| c.id.clone())
        };
        assert_eq!(
            identify(SAN_AND_CN),
            Err(baton_domain::access::Denied::Unregistered {
                caller: "stranger.example".into()
            })
        );
        assert_eq!(
            identify(BAD_SAN),
            Err(baton_domain::access::Denied::Unregistered {
                caller: "bad..name".into()
            })
        );
        assert_eq!(identify(TWO_SANS), Ok("lab-system".into()));
        assert_eq!(identify(CN_ONLY), Ok("duty-desk".into()));
    }

    #[test]
    fn garbage_is_no_identity() {
        assert!(certificate_identities(b"not a certificate").is_empty());
        assert!(common_names(&[0x31, 0x80, 0x00]).is_empty());
        assert!(common_names(&[0x31, 0x05, 0x30]).is_empty());
        assert!(der_next(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_none());
    }
}

//! Key pairs and self-signed certificates: the `.key` and `.crt` a connected app is set up with,
//! and the simulator's own TLS certificate.

/// A PEM private key and the self-signed X.509 certificate of its public key.
#[derive(Clone)]
pub struct KeyAndCertificate {
    pub private_key_pem: String,
    pub certificate_pem: String,
}

impl std::fmt::Debug for KeyAndCertificate {
    // The private key never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAndCertificate").field("private_key_pem", &"<redacted>").finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("could not generate a key or certificate")]
pub struct KeyError(#[from] rcgen::Error);

/// A 2048-bit RSA key and a certificate for it, as `openssl req -x509 -newkey rsa:2048` makes:
/// what Salesforce's "Use digital signatures" takes.
pub fn rsa_key_and_certificate(common_name: &str) -> Result<KeyAndCertificate, KeyError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
    certificate(key, common_name, vec![])
}

/// A certificate for serving TLS on loopback (`localhost`, `127.0.0.1`).
pub fn tls_certificate() -> Result<KeyAndCertificate, KeyError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    certificate(key, "sfetl simulator", vec!["localhost".into(), "127.0.0.1".into()])
}

fn certificate(key: rcgen::KeyPair, common_name: &str, names: Vec<String>) -> Result<KeyAndCertificate, KeyError> {
    let mut params = rcgen::CertificateParams::new(names)?;
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let cert = params.self_signed(&key)?;
    Ok(KeyAndCertificate { private_key_pem: key.serialize_pem(), certificate_pem: cert.pem() })
}

/// Whether `certificate_pem` (the `.crt` uploaded to the connected app) carries the public key
/// of `private_key_pem` (the `.key` sfetl signs with). `Err` says which of the two does not parse.
pub fn key_matches_certificate(private_key_pem: &str, certificate_pem: &str) -> Result<bool, String> {
    let key = rcgen::KeyPair::from_pem(private_key_pem).map_err(|e| format!("the private key does not parse: {e}"))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(certificate_pem.as_bytes())
        .map_err(|e| format!("the certificate is not PEM: {e}"))?;
    let cert = pem.parse_x509().map_err(|e| format!("the certificate does not parse: {e}"))?;
    Ok(cert.public_key().subject_public_key.data.as_ref() == key.public_key_raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_matches_its_own_certificate_only() -> Result<(), KeyError> {
        let a = rsa_key_and_certificate("a")?;
        let b = rsa_key_and_certificate("b")?;
        assert_eq!(key_matches_certificate(&a.private_key_pem, &a.certificate_pem), Ok(true));
        assert_eq!(key_matches_certificate(&a.private_key_pem, &b.certificate_pem), Ok(false));
        assert!(key_matches_certificate("nonsense", &a.certificate_pem).is_err());
        Ok(())
    }
}

//! The certificate authority that a cluster's API server trusts for kubelets
//! (`--kubelet-certificate-authority`), and the serving certificates it signs
//! for the fake kubelets. Without a CA the API server would not verify a
//! kubelet's certificate at all; with one, every exec, attach and
//! port-forward the tests make crosses a verified TLS connection, as in a
//! real cluster.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A fresh CA, made when the cluster starts; its key never leaves memory.
pub(crate) struct KubeletCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A serving certificate and its private key, both PEM.
pub(crate) struct ServingCertificate {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

impl KubeletCa {
    pub(crate) fn new() -> Result<KubeletCa> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "lanyard-test kubelet CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().context("could not generate the kubelet CA's key")?;
        let issuer = CertifiedIssuer::self_signed(params, key).context("could not sign the kubelet CA")?;
        Ok(KubeletCa { issuer })
    }

    /// The CA certificate, PEM: what the API server trusts.
    pub(crate) fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for a kubelet serving on `127.0.0.1`, the address the
    /// API server dials (the node's InternalIP).
    pub(crate) fn serving_certificate(&self, node_name: &str) -> Result<ServingCertificate> {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .context("could not describe a kubelet serving certificate")?;
        params.distinguished_name.push(DnType::CommonName, format!("system:node:{node_name}"));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().context("could not generate a kubelet serving key")?;
        let cert = params.signed_by(&key, &self.issuer).context("could not sign a kubelet serving certificate")?;
        Ok(ServingCertificate { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

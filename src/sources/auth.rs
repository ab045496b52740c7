//! Who may POST to the webhook: a verified client certificate, a listed
//! bearer token, or (development only) anyone.

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use super::listener::ConnectionInfo;

/// Who may POST.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// A verified client certificate is enough (`--client-ca`).
    pub mtls: bool,
    /// Accepted bearer tokens (`--token-file`, one per line, for rotation).
    pub tokens: Vec<Vec<u8>>,
    /// `--insecure-no-auth`: anyone who can connect may POST.
    pub insecure_no_auth: bool,
}

impl Auth {
    /// Checks a request, and tells its connection when it authenticated
    /// (which lifts the unauthenticated-connection limits from it).
    pub fn admit(&self, connection: Option<ConnectionInfo>, headers: &HeaderMap) -> Result<(), &'static str> {
        let connection = connection.unwrap_or_default();
        self.allows(&connection, headers)?;
        connection.authenticated();
        Ok(())
    }

    pub(super) fn allows(&self, connection: &ConnectionInfo, headers: &HeaderMap) -> Result<(), &'static str> {
        if self.insecure_no_auth || (self.mtls && connection.client_cert_verified) {
            return Ok(());
        }
        if self.tokens.is_empty() {
            return Err("a client certificate signed by the configured client CA is required");
        }
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err("missing Authorization: Bearer token");
        };
        // The scheme is case-insensitive (RFC 7235), then one or more spaces.
        let value = value.as_bytes();
        let Some(token) = value
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
            .map(|_| value[7..].trim_ascii_start())
        else {
            return Err("Authorization header is not a Bearer token");
        };
        // Compare against every token in constant time, so timing reveals nothing.
        let matched = self.tokens.iter().fold(0u8, |acc, t| acc | t.as_slice().ct_eq(token).unwrap_u8());
        if matched == 1 { Ok(()) } else { Err("invalid bearer token") }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    #[test]
    fn auth_accepts_a_verified_certificate_or_a_listed_token() {
        let verified = ConnectionInfo { client_cert_verified: true, ..ConnectionInfo::default() };
        let anonymous = ConnectionInfo::default();
        let both = Auth { mtls: true, tokens: vec![b"s3cret".to_vec(), b"next".to_vec()], insecure_no_auth: false };
        assert!(both.allows(&verified, &headers(None)).is_ok());
        assert!(both.allows(&anonymous, &headers(Some("Bearer next"))).is_ok());
        assert!(both.allows(&anonymous, &headers(Some("bearer next"))).is_ok(), "the scheme is case-insensitive");
        assert!(both.allows(&anonymous, &headers(Some("BEARER  next"))).is_ok());
        assert!(both.allows(&anonymous, &headers(Some("Bearernext"))).is_err());
        assert!(both.allows(&anonymous, &headers(Some("Bearer s3cre"))).is_err());
        assert!(both.allows(&anonymous, &headers(Some("Basic s3cret"))).is_err());
        assert!(both.allows(&anonymous, &headers(None)).is_err());
        let mtls_only = Auth { mtls: true, ..Auth::default() };
        assert!(mtls_only.allows(&anonymous, &headers(Some("Bearer s3cret"))).is_err());
        let open = Auth { insecure_no_auth: true, ..Auth::default() };
        assert!(open.allows(&anonymous, &headers(None)).is_ok());
    }
}

//! Anonymous shopper sessions: a random id in a signed, HttpOnly cookie. Orders belong to the
//! session that placed them; anyone else gets a 404.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::server::support::ids::random_alnum;

pub const COOKIE_NAME: &str = "scanpay_session";

/// The current shopper, put in every request's extensions by [`layer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionId(pub String);

pub struct SessionKeys {
    /// Keyed once: each cookie then costs only its own bytes' hashing.
    keyed: Hmac<Sha256>,
    secure: bool,
}

impl SessionKeys {
    pub fn new(secret: Option<&str>, secure: bool) -> Self {
        let key = match secret {
            Some(s) => s.as_bytes().to_vec(),
            None => random_alnum(48).into_bytes(),
        };
        let keyed = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
        SessionKeys { keyed, secure }
    }

    fn mac(&self, id: &str) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(id.as_bytes());
        mac
    }

    pub fn cookie_value(&self, id: &str) -> String {
        let tag = self.mac(id).finalize().into_bytes();
        format!(
            "{id}.{}",
            tag.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }

    /// The session id if the cookie value is ours and untampered (checked in constant time).
    pub fn verify(&self, value: &str) -> Option<String> {
        let (id, tag_hex) = value.split_once('.')?;
        if id.len() != 24 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) || tag_hex.len() != 64 {
            return None;
        }
        let tag: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&tag_hex[2 * i..2 * i + 2], 16))
            .collect::<Result<_, _>>()
            .ok()?;
        self.mac(id).verify_slice(&tag).ok()?;
        Some(id.to_string())
    }
}

fn cookie_from(req: &Request) -> Option<String> {
    req.headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (name, value) = c.trim().split_once('=')?;
            (name == COOKIE_NAME).then(|| value.to_string())
        })
}

/// Middleware: attaches the [`SessionId`], issuing a new signed cookie when there is none.
pub async fn layer(State(keys): State<Arc<SessionKeys>>, mut req: Request, next: Next) -> Response {
    let existing = cookie_from(&req).and_then(|v| keys.verify(&v));
    let (id, is_new) = match existing {
        Some(id) => (id, false),
        None => (random_alnum(24), true),
    };
    req.extensions_mut().insert(SessionId(id.clone()));
    let mut resp = next.run(req).await;
    if is_new {
        let cookie = format!(
            "{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=2592000{}",
            keys.cookie_value(&id),
            if keys.secure { "; Secure" } else { "" }
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            resp.headers_mut().append(SET_COOKIE, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_verify_only_untampered() {
        let keys = SessionKeys::new(Some("0123456789abcdef0123456789abcdef"), false);
        let id = random_alnum(24);
        let v = keys.cookie_value(&id);
        assert_eq!(keys.verify(&v), Some(id.clone()));
        let mut forged = v.clone();
        forged.replace_range(0..1, if v.starts_with('a') { "b" } else { "a" });
        assert_eq!(keys.verify(&forged), None);
        assert_eq!(
            SessionKeys::new(Some("another key, also 32 characters!"), false).verify(&v),
            None
        );
        assert_eq!(keys.verify("garbage"), None);
        assert_eq!(keys.verify(&format!("{id}.zz")), None);
    }
}

//! Operators' passwords: argon2id PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$…`), OWASP's
//! minimum parameters, a fresh 16-byte salt each. Verifying takes ~20 ms of CPU on purpose, so
//! it runs on a blocking thread.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// The shortest password `scanpay operator add` accepts.
pub const MIN_LEN: usize = 12;

pub fn hash(password: &str) -> Result<String, String> {
    let salt: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` is the one `phc` was made from (false for a malformed `phc`).
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash of a password nobody has: a sign-in for an unknown name verifies against it, so it
/// takes as long as a wrong password for a real one (the answer tells nothing either way).
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash(&crate::server::support::ids::random_alnum(32)).expect("hashes"))
}

/// A new password's rules, checked before it is hashed.
pub fn acceptable(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_LEN {
        return Err(format!("a password has at least {MIN_LEN} characters"));
    }
    if password.len() > 1024 {
        return Err("a password has at most 1024 bytes".into());
    }
    if password.chars().any(char::is_control) {
        return Err("a password has no control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify_only_their_password() {
        let h = hash("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert!(verify("correct horse battery", &h));
        assert!(!verify("correct horse batterY", &h));
        assert!(!verify("correct horse battery", "not a hash"));
        assert_ne!(h, hash("correct horse battery").unwrap(), "salted");
        assert!(!verify("", decoy()));
    }

    #[test]
    fn short_or_odd_passwords_are_refused() {
        assert!(acceptable("short").is_err());
        assert!(acceptable("twelve chars").is_ok());
        assert!(acceptable("with a\nnewline in it").is_err());
    }
}

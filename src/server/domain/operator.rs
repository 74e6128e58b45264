//! Operators: who may sign in to the console and what each role may do. Pure rules; the store
//! keeps the accounts, `support::password` hashes their passwords.

use std::fmt;

/// An operator's name: 1–64 of `a-z 0-9 . _ -`, lowercased at the edge, so every engine
/// (MySQL compares case-insensitively) treats names alike. Not `system`, `ops-token` or `cli`: those
/// name scanpay itself, scripts and the command line in the timeline and the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OperatorName(String);

impl OperatorName {
    pub fn parse(raw: &str) -> Result<OperatorName, String> {
        let name = raw.trim().to_ascii_lowercase();
        if name.is_empty() || name.len() > 64 {
            return Err("an operator's name has 1 to 64 characters".into());
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        {
            return Err(format!(
                "operator name {raw:?}: only letters a-z, digits and . _ - are allowed"
            ));
        }
        if matches!(name.as_str(), "system" | "ops-token" | "cli") {
            return Err(format!("{name:?} is reserved"));
        }
        Ok(OperatorName(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OperatorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an operator may do: each role may do what the one before it may, and more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Refunds, resolves anomalies, writes notes, queries WeChat.
    Operator,
    /// Manages operators, requeues dead-lettered pay results.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == raw.trim())
            .ok_or_else(|| format!("role {raw:?}: one of viewer, operator, admin"))
    }

    pub fn may(self, action: Action) -> bool {
        self >= action.needs()
    }
}

/// Everything an operator can do in the console, by the role it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Refund,
    Resolve,
    Note,
    QueryWechat,
    ManageOperators,
    Requeue,
}

impl Action {
    pub fn needs(self) -> Role {
        match self {
            Action::Read => Role::Viewer,
            Action::Refund | Action::Resolve | Action::Note | Action::QueryWechat => Role::Operator,
            Action::ManageOperators | Action::Requeue => Role::Admin,
        }
    }
}

/// An operator account as the store reads it.
#[derive(Debug, Clone)]
pub struct OperatorRow {
    pub name: String,
    pub role: Role,
    pub password_hash: String,
    pub created_at: i64,
    pub disabled_at: Option<i64>,
    /// The TOTP secret (base32) when the second factor is on; one set up but unconfirmed; the
    /// last time step a code was used for.
    pub totp_secret: Option<String>,
    pub totp_pending: Option<String>,
    pub totp_last_step: Option<i64>,
}

/// A console session: whose, and the times its time-outs count from.
#[derive(Debug, Clone)]
pub struct OpsSessionRow {
    pub operator: String,
    pub role: Role,
    pub created_at: i64,
    pub seen_at: i64,
    /// When the password was last entered: a refund wants it within `STEP_UP_WITHIN_MS`.
    pub authed_at: i64,
    pub expires_at: i64,
}

/// A refund needs the password entered within the last five minutes (TrueLayer's window).
pub const STEP_UP_WITHIN_MS: i64 = 5 * 60 * 1000;

impl OpsSessionRow {
    /// Whether the session still opens the console at `now`: not past its absolute end, not
    /// idle for longer than `idle_ms`.
    pub fn alive(&self, now: i64, idle_ms: i64) -> bool {
        now < self.expires_at && now - self.seen_at < idle_ms
    }

    pub fn recently_authed(&self, now: i64) -> bool {
        now - self.authed_at < STEP_UP_WITHIN_MS
    }
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub address: String,
    pub reason: String,
    pub detail: String,
}

/// What the audit log records (its `action` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audited {
    SignIn,
    SignInFailed,
    /// An attempt while locked: recorded, not counted (it would extend the lock).
    SignInLocked,
    SignOut,
    Refund,
    Resolve,
    Note,
    QueryWechat,
    OperatorAdded,
    OperatorDisabled,
    OperatorRole,
    Requeue,
    SecondFactorOn,
    SecondFactorOff,
    /// A reconciliation difference resolved; a reconciliation run asked for.
    ReconResolve,
    ReconRun,
}

impl Audited {
    pub fn as_str(self) -> &'static str {
        match self {
            Audited::SignIn => "sign_in",
            Audited::SignInFailed => "sign_in_failed",
            Audited::SignInLocked => "sign_in_locked",
            Audited::SignOut => "sign_out",
            Audited::Refund => "refund",
            Audited::Resolve => "resolve",
            Audited::Note => "note",
            Audited::QueryWechat => "query_wechat",
            Audited::OperatorAdded => "operator_added",
            Audited::OperatorDisabled => "operator_disabled",
            Audited::OperatorRole => "operator_role",
            Audited::Requeue => "requeue",
            Audited::SecondFactorOn => "second_factor_on",
            Audited::SecondFactorOff => "second_factor_off",
            Audited::ReconResolve => "recon_resolve",
            Audited::ReconRun => "recon_run",
        }
    }
}

/// An entry for the audit log, before it has its id and time.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub actor: &'a str,
    pub action: Audited,
    pub subject: &'a str,
    pub address: &'a str,
    pub reason: &'a str,
    pub detail: &'a str,
}

/// Sign-in limits: this many failures within `SIGN_IN_WINDOW_MS` lock a name, or an address,
/// until the window has passed (counted from the audit log, so every process sees them).
pub const SIGN_IN_FAILURES_PER_NAME: i64 = 5;
pub const SIGN_IN_FAILURES_PER_ADDRESS: i64 = 20;
pub const SIGN_IN_WINDOW_MS: i64 = 15 * 60 * 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_at_the_edge() {
        assert_eq!(
            OperatorName::parse(" Alice.W ").unwrap().as_str(),
            "alice.w"
        );
        for bad in [
            "",
            "a b",
            "system",
            "OPS-TOKEN",
            "名字",
            &"x".repeat(65),
            "a;drop",
        ] {
            assert!(OperatorName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn roles_grant_what_the_lower_ones_do() {
        assert!(Role::Viewer.may(Action::Read));
        assert!(!Role::Viewer.may(Action::Refund));
        assert!(Role::Operator.may(Action::Refund));
        assert!(Role::Operator.may(Action::Resolve));
        assert!(!Role::Operator.may(Action::ManageOperators));
        assert!(Role::Admin.may(Action::ManageOperators));
        assert!(Role::Admin.may(Action::Requeue));
        assert_eq!(Role::parse("admin"), Ok(Role::Admin));
        assert!(Role::parse("root").is_err());
    }

    #[test]
    fn sessions_end_idle_or_at_their_end() {
        let s = OpsSessionRow {
            operator: "a".into(),
            role: Role::Viewer,
            created_at: 0,
            seen_at: 1_000,
            authed_at: 0,
            expires_at: 100_000,
        };
        assert!(s.alive(2_000, 5_000));
        assert!(!s.alive(6_000, 5_000), "idle too long");
        assert!(!s.alive(100_000, 1_000_000), "past its absolute end");
        assert!(s.recently_authed(STEP_UP_WITHIN_MS - 1));
        assert!(!s.recently_authed(STEP_UP_WITHIN_MS));
    }
}

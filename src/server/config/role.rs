//! Which part of the work one process does.

/// What one process does (`scanpay --role …`): serve shoppers and WeChat, run the background
/// workers, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Pages, server functions, the notify endpoint (and the sandbox when mounted).
    Web,
    /// The pay-result consumer, the timeout scheduler and the reconciliation sweep.
    Worker,
    All,
}

impl Role {
    pub fn parse(s: &str) -> Result<Role, String> {
        match s {
            "web" => Ok(Role::Web),
            "worker" => Ok(Role::Worker),
            "all" => Ok(Role::All),
            other => Err(format!("--role {other:?}: web, worker or all")),
        }
    }
    pub fn serves_web(self) -> bool {
        self != Role::Worker
    }
    pub fn runs_workers(self) -> bool {
        self != Role::Web
    }
}

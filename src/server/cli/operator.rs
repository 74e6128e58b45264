//! `scanpay operator add NAME --role viewer|operator|admin` (the password on standard input) and
//! `scanpay operator disable NAME`: the bootstrap of a fresh install and the way back in. They
//! open the database directly (migrating it first, so they work before the server ever ran) and
//! are written to the audit log like any other operator change.

use std::io::{BufRead, IsTerminal, Write};

use crate::server::config::Settings;
use crate::server::domain::{AuditEntry, Audited, OperatorName, Role};
use crate::server::store;
use crate::server::support::clock::now_ms;
use crate::server::support::password;

const USAGE: &str = "usage: scanpay operator add NAME --role viewer|operator|admin (password on standard input) | scanpay operator disable NAME";

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum OperatorCommand {
    Add { name: OperatorName, role: Role },
    Disable { name: OperatorName },
}

pub fn parse(args: &[String]) -> Result<OperatorCommand, String> {
    let usage = |why: &str| format!("{why}\n{USAGE}");
    match args {
        [verb, name, rest @ ..] if verb == "add" => {
            let name = OperatorName::parse(name).map_err(|e| usage(&e))?;
            let role = match rest {
                [flag, role] if flag == "--role" => role.clone(),
                [flag] if flag.starts_with("--role=") => flag["--role=".len()..].to_string(),
                _ => return Err(usage("operator add needs --role")),
            };
            let role = Role::parse(&role).map_err(|e| usage(&e))?;
            Ok(OperatorCommand::Add { name, role })
        }
        [verb, name] if verb == "disable" => Ok(OperatorCommand::Disable {
            name: OperatorName::parse(name).map_err(|e| usage(&e))?,
        }),
        _ => Err(usage("unknown operator command")),
    }
}

/// Reads the password: one line of standard input (a prompt when it is a terminal; it echoes,
/// so prefer a pipe: `printf '%s\n' "$PW" | scanpay operator add …`).
fn read_password() -> Result<String, String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password for the new operator (it will be shown as you type): ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let pw = line.trim_end_matches(['\n', '\r']).to_string();
    password::acceptable(&pw)?;
    Ok(pw)
}

pub async fn run(settings: &Settings, cmd: OperatorCommand) -> Result<String, String> {
    let password = match &cmd {
        OperatorCommand::Add { .. } => Some(read_password()?),
        OperatorCommand::Disable { .. } => None,
    };
    let db = store::connect(&settings.database_url, &settings.database_pool)
        .await
        .map_err(|e| e.to_string())?;
    db.migrate().await.map_err(|e| e.to_string())?;
    let now = now_ms();
    let user = std::env::var("USER").unwrap_or_default();
    let done = match cmd {
        OperatorCommand::Add { name, role } => {
            let pw = password.expect("read above");
            let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
                .await
                .map_err(|e| e.to_string())??;
            if !db
                .add_operator(name.as_str(), role, &hash, now)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("an operator named {name} exists already"));
            }
            audit(&db, Audited::OperatorAdded, &name, role.as_str(), &user).await?;
            format!("operator {name} added ({})", role.as_str())
        }
        OperatorCommand::Disable { name } => {
            if !db
                .disable_operator(name.as_str(), now)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("no enabled operator named {name}"));
            }
            audit(&db, Audited::OperatorDisabled, &name, "", &user).await?;
            format!("operator {name} disabled; their sessions have ended")
        }
    };
    db.close_pool().await;
    Ok(done)
}

async fn audit(
    db: &store::Store,
    action: Audited,
    name: &OperatorName,
    detail: &str,
    user: &str,
) -> Result<(), String> {
    let entry = AuditEntry {
        actor: "cli",
        action,
        subject: name.as_str(),
        address: "",
        reason: "",
        detail: &if user.is_empty() {
            detail.to_string()
        } else {
            format!("{detail} (by {user} on the command line)")
                .trim()
                .to_string()
        },
    };
    db.audit(&entry, now_ms()).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn commands_parse_or_say_why_not() {
        assert_eq!(
            parse(&args("add Alice --role admin")),
            Ok(OperatorCommand::Add {
                name: OperatorName::parse("alice").unwrap(),
                role: Role::Admin
            })
        );
        assert!(parse(&args("add bob --role=viewer")).is_ok());
        assert!(parse(&args("disable bob")).is_ok());
        for bad in [
            "add bob",
            "add bob --role root",
            "add system --role admin",
            "remove bob",
            "",
            "add bob --role admin extra",
        ] {
            let e = parse(&args(bad)).unwrap_err();
            assert!(e.contains("usage: scanpay operator"), "{bad}: {e}");
        }
    }
}

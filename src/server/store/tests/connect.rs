//! Connecting: passwords redacted wherever a URL is shown, unknown schemes refused, and an
//! unreachable or malformed database named after a bounded wait.

use std::time::Duration;

use crate::server::store::{connect, PoolSettings};
use crate::server::support::redact::redact;

#[test]
fn redacts_passwords() {
    assert_eq!(redact("postgres://u:pw@h/db"), "postgres://u:***@h/db");
    assert_eq!(
        redact("postgres://u:p%40ss@h:5432/db"),
        "postgres://u:***@h:5432/db"
    );
    assert_eq!(
        redact("mysql://h/db?user=u&password=s3cret&ssl-mode=required"),
        "mysql://h/db?user=u&password=***&ssl-mode=required"
    );
    assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    assert!(!redact("postgres://u:pw@@h/db").contains("pw"));
    assert!(!redact("not a url with pw").contains("pw"));
}

#[tokio::test]
async fn unknown_schemes_are_refused_naming_the_variable_without_the_password() {
    let e = connect("oracle://u:hunter2@h/db", &PoolSettings::default())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("SCANPAY_DATABASE_URL") && !e.contains("hunter2"),
        "{e}"
    );
}

#[tokio::test]
async fn an_unreachable_or_malformed_database_is_named_after_a_bounded_wait() {
    let quick = PoolSettings {
        acquire_timeout: Duration::from_millis(300),
        startup_wait: Duration::from_millis(800),
        ..PoolSettings::default()
    };
    let started = std::time::Instant::now();
    // Nothing listens on port 1: connection refused, retried until the start-up wait is spent.
    let e = connect("postgres://scanpay:hunter2@127.0.0.1:1/scanpay", &quick)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        e.starts_with("SCANPAY_DATABASE_URL=postgres://scanpay:***@127.0.0.1:1/scanpay"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");
    let e = connect("mysql://root@127.0.0.1:notaport/x", &quick)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("SCANPAY_DATABASE_URL"), "{e}");
}

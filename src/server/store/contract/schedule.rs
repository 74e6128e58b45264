//! The sweep's side of the store: claims of due orders (disjoint between concurrent claimers, each
//! order's next check set from its own row), and the batched reads and writes (`load_many`,
//! `schedule_checks`) that must agree with their one-at-a-time forms.

use std::collections::HashSet;

use crate::app::types::{FailureReason, OrderStatus};
use crate::server::domain::Cause;
use crate::server::store::Store;
use crate::server::support::clock::now_ms;

use super::{payment, place};

pub(super) async fn claims_are_disjoint(s: Store) {
    let mut ids = Vec::new();
    for i in 0..40 {
        let id = format!("C{i:02}");
        place(&s, &id, &[("PIN-PANDA", 1)]).await.unwrap();
        s.schedule_check(&id, 1000 + i).await.unwrap();
        ids.push(id);
    }
    let later = now_ms() + 60_000;
    let next = move |_: &crate::server::domain::OrderRow, _: i64| later;
    let claims = futures::future::join_all((0..4).map(|_| s.claim_due(10_000, 15, &next))).await;
    let mut seen = HashSet::new();
    let mut total = 0;
    for c in claims {
        for o in c.unwrap() {
            total += 1;
            assert!(seen.insert(o.id.clone()), "{} claimed twice", o.id);
        }
    }
    assert_eq!(total, seen.len());
    assert!(total >= 15, "claimers made progress: {total}");
    // What is left is still due, and nothing claimed is due again before `later`.
    let rest = s.claim_due(10_000, 100, &|_, _| later).await.unwrap();
    assert_eq!(total + rest.len(), 40);
    assert!(rest.iter().all(|o| !seen.contains(&o.id)));
    let (due, next) = s.due_deadlines(now_ms(), 100).await.unwrap();
    assert!(due.is_empty());
    assert!(next.is_some());
}

pub(super) async fn claims_set_each_next_check(s: Store) {
    for i in 0..6 {
        let id = format!("N{i}");
        place(&s, &id, &[("PIN-PANDA", 1)]).await.unwrap();
        s.schedule_check(&id, 1000 + i).await.unwrap();
    }
    // Each order's next check from its own row and attempts: N3 at 20_030 + attempts.
    let next = |o: &crate::server::domain::OrderRow, attempts: i64| {
        20_000 + 10 * o.id[1..].parse::<i64>().unwrap() + attempts
    };
    let claimed = s.claim_due(10_000, 4, &next).await.unwrap();
    let ids: Vec<_> = claimed.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, ["N0", "N1", "N2", "N3"], "the earliest due first");
    for i in 0..6 {
        let o = s.load(&format!("N{i}")).await.unwrap().unwrap();
        let want = if i < 4 { 20_000 + 10 * i } else { 1000 + i };
        assert_eq!(o.next_check_at, Some(want), "N{i}");
    }
    // Claimed again later: the attempt is counted, for the claimed ones only.
    let claimed = s.claim_due(20_025, 10, &next).await.unwrap();
    let mut ids: Vec<_> = claimed.iter().map(|o| o.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["N0", "N1", "N2", "N4", "N5"]);
    let s = &s;
    let at = |i: i64| async move { s.load(&format!("N{i}")).await.unwrap().unwrap() };
    assert_eq!(at(0).await.next_check_at, Some(20_001), "a second attempt");
    assert_eq!(
        at(3).await.next_check_at,
        Some(20_030),
        "not due, not claimed"
    );
    assert_eq!(at(4).await.next_check_at, Some(20_040), "a first attempt");
}

pub(super) async fn load_many_reads_what_exists(s: Store) {
    for id in ["M1", "M2", "M3"] {
        place(&s, id, &[("PIN-PANDA", 1)]).await.unwrap();
    }
    let fee = s.load("M3").await.unwrap().unwrap().total_fee;
    s.mark_paid(&payment("M3", fee, "T-M3"), Cause::Notify)
        .await
        .unwrap();
    assert!(s.load_many(&[]).await.unwrap().is_empty());
    let ids = |rows: &[crate::server::domain::OrderRow]| {
        let mut ids: Vec<_> = rows.iter().map(|o| o.id.clone()).collect();
        ids.sort();
        ids
    };
    let asked = ["M2", "NOPE", "M1", "M2", "M3"].map(String::from);
    let rows = s.load_many(&asked).await.unwrap();
    assert_eq!(
        ids(&rows),
        ["M1", "M2", "M3"],
        "each once, the missing one absent"
    );
    for row in &rows {
        let one = s.load(&row.id).await.unwrap().unwrap();
        assert_eq!(
            (row.status, row.total_fee, row.next_check_at, &row.body),
            (one.status, one.total_fee, one.next_check_at, &one.body),
            "{}",
            row.id
        );
    }
    assert_eq!(
        rows.iter().find(|o| o.id == "M3").unwrap().status,
        OrderStatus::Paid
    );
    // More ids than one statement takes: found in every chunk.
    let mut many: Vec<String> = (0..1200).map(|i| format!("X{i:04}")).collect();
    many[0] = "M1".into();
    many[700] = "M2".into();
    many[1199] = "M3".into();
    assert_eq!(ids(&s.load_many(&many).await.unwrap()), ["M1", "M2", "M3"]);
}

pub(super) async fn schedule_checks_like_schedule_check(s: Store) {
    for id in ["P1", "P2", "P3", "P4", "P5"] {
        place(&s, id, &[("PIN-PANDA", 1)]).await.unwrap();
    }
    let fee = s.load("P3").await.unwrap().unwrap().total_fee;
    s.mark_paid(&payment("P3", fee, "T-P3"), Cause::Notify)
        .await
        .unwrap();
    s.mark_paid(&payment("P4", fee + 1, "T-P4"), Cause::Notify)
        .await
        .unwrap(); // parked
    assert!(s
        .begin_close("P5", FailureReason::Cancelled, Cause::Shopper, now_ms())
        .await
        .unwrap());
    s.schedule_checks(&[]).await.unwrap();
    let checks = [
        ("P1", 111),
        ("P2", 5),
        ("P3", 333),
        ("P4", 444),
        ("P5", 555),
        ("NOPE", 1),
        ("P2", 222), // the last one given wins
    ]
    .map(|(id, at)| (id.to_string(), at));
    s.schedule_checks(&checks).await.unwrap();
    let next = |id: &'static str| {
        let s = s.clone();
        async move { s.load(id).await.unwrap().unwrap().next_check_at }
    };
    assert_eq!(next("P1").await, Some(111));
    assert_eq!(next("P2").await, Some(222));
    assert_eq!(next("P3").await, None, "a paid order has no checks");
    assert_eq!(next("P4").await, None, "a parked order has no checks");
    assert_eq!(next("P5").await, Some(555), "a closing order is checked");
    assert!(s.load("NOPE").await.unwrap().is_none());
    // The same as schedule_check one at a time would leave.
    s.schedule_check("P1", 5).await.unwrap();
    s.schedule_check("P3", 5).await.unwrap();
    s.schedule_check("P4", 5).await.unwrap();
    assert_eq!(
        (next("P1").await, next("P3").await, next("P4").await),
        (Some(5), None, None)
    );
    // More checks than one statement takes.
    let mut many: Vec<(String, i64)> = (0..1100).map(|i| (format!("X{i:04}"), i)).collect();
    many[3] = ("P1".into(), 7_000);
    many[1099] = ("P2".into(), 9_000);
    s.schedule_checks(&many).await.unwrap();
    assert_eq!(
        (next("P1").await, next("P2").await),
        (Some(7_000), Some(9_000))
    );
    let due = s.claim_due(8_000, 10, &|_, _| i64::MAX / 2).await.unwrap();
    let due: Vec<_> = due.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(due, ["P5", "P1"], "claims follow the new checks");
}

//! A shopper's own orders: listed newest first, and finished ones hidden (a logical delete).

use crate::app::types::OrderStatus;
use crate::server::domain::{Cause, HideOutcome};
use crate::server::store::Store;

use super::{kinds, order, payment, place, status};

pub(super) async fn session_orders_and_hide(s: Store) {
    let first = place(&s, "H1", &[("PIN-PANDA", 1)]).await.unwrap();
    place(&s, "H2", &[("PIN-PANDA", 1)]).await.unwrap();
    let mut theirs = order("H3", &[("PIN-PANDA", 1)]);
    theirs.session_id = "s2".into();
    s.create_order(&theirs, "Shop").await.unwrap();
    let ids = |rows: Vec<crate::server::domain::OrderRow>| {
        rows.into_iter().map(|r| r.id).collect::<Vec<_>>()
    };
    assert_eq!(ids(s.session_orders("s1", 50).await.unwrap()), ["H2", "H1"]);
    assert_eq!(ids(s.session_orders("s1", 1).await.unwrap()), ["H2"]);

    assert_eq!(s.hide("H1", "s1").await.unwrap(), HideOutcome::NotFinished);
    assert_eq!(
        s.hide("H3", "s1").await.unwrap(),
        HideOutcome::NotFound,
        "not theirs"
    );
    assert_eq!(s.hide("NOPE", "s1").await.unwrap(), HideOutcome::NotFound);
    s.mark_paid(&payment("H1", first.total_fee, "T-H1"), Cause::Notify)
        .await
        .unwrap();
    for _ in 0..2 {
        assert_eq!(s.hide("H1", "s1").await.unwrap(), HideOutcome::Hidden);
    }
    assert_eq!(ids(s.session_orders("s1", 50).await.unwrap()), ["H2"]);
    // A logical delete: the order and its history stay for operators.
    assert_eq!(status(&s, "H1").await, OrderStatus::Paid);
    assert_eq!(
        kinds(&s, "H1").await,
        vec!["created", "paid", "hidden"],
        "hidden once"
    );
}

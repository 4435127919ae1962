//! Conformance for what several nodes on one store see of each other (leases, wake-ups,
//! signals); on sled, the one process's view of the same.

use super::*;

pub(super) fn leases_are_held_by_one_node_until_released_or_expired(f: &Fixture) {
    let a = f.open();
    if !a.is_shared() {
        // One process owns a sled database: every lease is its own.
        assert!(a
            .try_lease(b"q", std::time::Duration::from_secs(60))
            .unwrap());
        a.release_lease(b"q").unwrap();
        assert!(a.is_empty(Tree::Leases));
        return;
    }
    // A second handle on the same database is a second node.
    let b = f.open();
    let long = std::time::Duration::from_secs(60);
    assert!(a.try_lease(b"q", long).unwrap());
    assert!(!b.try_lease(b"q", long).unwrap());
    assert!(a.try_lease(b"q", long).unwrap(), "the holder renews");
    b.release_lease(b"q").unwrap();
    assert!(
        !b.try_lease(b"q", long).unwrap(),
        "only the holder releases"
    );
    a.release_lease(b"q").unwrap();
    assert!(b.try_lease(b"q", long).unwrap());
    assert!(!a.try_lease(b"q", long).unwrap());
    // A holder that never comes back loses the lease at its expiry.
    assert!(a
        .try_lease(b"dead", std::time::Duration::from_millis(1))
        .unwrap());
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(b.try_lease(b"dead", long).unwrap());
    // Racing for one lease: exactly one of many wins.
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let s = f.open();
            std::thread::spawn(move || s.try_lease(b"race", long).unwrap())
        })
        .collect();
    let won = handles
        .into_iter()
        .filter(|_| true)
        .map(|h| h.join().unwrap())
        .filter(|w| *w)
        .count();
    assert_eq!(won, 1);
}

pub(super) fn outbox_writes_wake_every_node(f: &Fixture) {
    let a = f.open();
    // On PostgreSQL a second handle is a second node; sled has only the one.
    let b = if a.is_shared() { f.open() } else { a.clone() };
    let mut rx = b.watch_events();
    rx.borrow_and_update();
    let ev = EventRecord::new("x", "", serde_json::json!({}));
    a.transact::<_, ()>(&EVENT_TREES, |tx| Ok(tx.emit(&ev).map(|_| ())?))
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !rx.has_changed().unwrap() {
        assert!(std::time::Instant::now() < deadline, "no wake-up");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(b.last_event_seq().unwrap(), 1);
    // An aborted transaction wakes nobody.
    rx.borrow_and_update();
    let r: Result<(), TxError<()>> = a.transact(&EVENT_TREES, |tx| {
        tx.emit(&ev)?;
        Err(TxFail::Abort(()))
    });
    assert!(r.is_err());
    if a.is_shared() {
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(!rx.has_changed().unwrap());
    }
}

pub(super) fn signals_reach_every_other_node(f: &Fixture) {
    let a = f.open();
    let mut own = a.signals();
    a.signal("hello from a");
    if !a.is_shared() {
        // One process: nothing to tell, nothing received.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(own.try_recv().is_err());
        return;
    }
    let b = f.open();
    let mut rx = b.signals();
    // B listens from its open on; a signal sent before may or may not arrive.
    std::thread::sleep(std::time::Duration::from_millis(300));
    while rx.try_recv().is_ok() {}
    for i in 0..100 {
        a.signal(&format!("line {i}"));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < 100 {
        assert!(std::time::Instant::now() < deadline, "got only {got:?}");
        match rx.try_recv() {
            Ok(l) => got.push(l.to_string()),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
    let want: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
    assert_eq!(got, want, "in order, each once");
    // A node never hears its own signals; a malformed one is not sent.
    a.signal("two\nlines");
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(own.try_recv().is_err());
    assert!(rx.try_recv().is_err());
}

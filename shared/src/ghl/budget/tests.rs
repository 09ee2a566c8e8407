use super::*;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.insert(*name, value.parse().expect("value"));
    }
    h
}

fn window(remaining: &str, interval: &str) -> HeaderMap {
    headers(&[
        ("x-ratelimit-remaining", remaining),
        ("x-ratelimit-interval-milliseconds", interval),
        ("x-ratelimit-max", "100"),
    ])
}

#[test]
fn a_spent_window_waits_for_its_end_and_other_locations_do_not() {
    let budget = Budget::default();
    assert!(budget.take("loc", Use::Enrichment).is_ok(), "unknown: go");
    budget.observe("loc", &window("1", "10000"));
    assert!(budget.take("loc", Use::Enrichment).is_ok(), "one left");
    let wait = budget.wait("loc", Use::Enrichment);
    assert!(
        wait > Duration::from_secs(9) && wait <= MAX_WAIT,
        "{wait:?}"
    );
    assert_eq!(budget.wait("other", Use::Enrichment), Duration::ZERO);
    budget.observe("loc", &window("0", "50"));
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(
        budget.wait("loc", Use::Enrichment),
        Duration::ZERO,
        "passed"
    );
    // Whatever GHL says, the clock does not overflow and the wait stays bounded.
    budget.observe("loc", &window("0", &u64::MAX.to_string()));
    assert!(budget.wait("loc", Use::Enrichment) <= MAX_WAIT);
}

#[test]
fn the_rest_takes_only_what_enrichments_share_leaves() {
    let budget = Budget::new(0.8);
    budget.observe("loc", &window("81", "10000"));
    for used in [Use::Reconcile, Use::Backfill, Use::Names, Use::WriteBack] {
        assert_eq!(budget.wait("loc", used), Duration::ZERO, "{used:?}");
    }
    assert!(budget.take("loc", Use::Reconcile).is_ok());
    // 80 left: exactly enrichment's share, which it has not touched.
    let wait = budget.take("loc", Use::Backfill).expect_err("kept");
    assert!(wait > Duration::from_secs(9), "{wait:?}");
    assert!(
        budget.take("loc", Use::Enrichment).is_ok(),
        "enrichment goes"
    );
    // The 79 left are what enrichment has not spent of its 80.
    assert!(budget.take("loc", Use::WriteBack).is_err());
    budget.observe("loc", &window("90", "10000"));
    assert!(budget.take("loc", Use::Names).is_ok(), "10 beyond its 79");
}

#[test]
fn enrichment_never_spends_more_than_its_share() {
    let budget = Budget::new(0.1);
    for n in 0..20 {
        assert!(budget.take("loc", Use::Enrichment).is_ok(), "untold: {n}");
    }
    let budget = Budget::new(0.1);
    budget.observe("loc", &window("100", "10000"));
    for n in 0..10 {
        assert!(budget.take("loc", Use::Enrichment).is_ok(), "{n}");
    }
    let wait = budget
        .take("loc", Use::Enrichment)
        .expect_err("share spent");
    assert!(wait > Duration::from_secs(9) && wait <= WINDOW, "{wait:?}");
    // What it left is the others' to take.
    assert!(budget.take("loc", Use::Reconcile).is_ok());
}

#[test]
fn a_day_at_its_budget_keeps_enrichment_going_while_the_rest_waits() {
    let budget = Budget::new(0.8);
    budget.observe(
        "loc",
        &headers(&[
            ("x-ratelimit-remaining", "99"),
            ("x-ratelimit-interval-milliseconds", "10000"),
            ("x-ratelimit-daily-remaining", "150000"),
            ("x-ratelimit-limit-daily", "200000"),
        ]),
    );
    let wait = budget.take("loc", Use::Reconcile).expect_err("day kept");
    assert!(
        wait > Duration::from_secs(60) && wait <= DAY_RECHECK,
        "{wait:?}"
    );
    assert!(budget.take("loc", Use::Enrichment).is_ok());
    // Nothing left of the day: enrichment waits too, until GHL is asked again.
    budget.observe("loc", &headers(&[("x-ratelimit-daily-remaining", "0")]));
    assert!(budget.take("loc", Use::Enrichment).is_err());
}

/// What the budget takes to be left of `location`'s window.
fn left(budget: &Budget, location: &str) -> Option<u64> {
    budget.with(location, |l| l.window.map(|w| w.remaining))
}

#[test]
fn calls_out_side_by_side_leave_the_least_ghl_said() {
    let budget = Budget::new(0.8);
    let first = budget.take("loc", Use::Enrichment).expect("go");
    first.observe(&window("80", "10000"));
    // Three calls out at once: GHL counts them 79, 78, 77, and the answer of the
    // one it counted last comes first.
    let out: Vec<Taken> = (0..3)
        .map(|_| budget.take("loc", Use::Enrichment).expect("go"))
        .collect();
    let [a, b, c] = <[Taken; 3]>::try_from(out).expect("three");
    c.observe(&window("77", "10000"));
    assert_eq!(
        left(&budget, "loc"),
        Some(75),
        "two still out, counted spent"
    );
    b.observe(&window("78", "10000"));
    assert_eq!(left(&budget, "loc"), Some(76));
    a.observe(&window("79", "10000"));
    assert_eq!(
        left(&budget, "loc"),
        Some(77),
        "the least said, not the last"
    );
    // Enrichment spent 4 of its 80: 76 stay its own, one is the others'.
    assert!(budget.take("loc", Use::Reconcile).is_ok());
    assert!(budget.take("loc", Use::Reconcile).is_err(), "kept");
    // Once none is out, the next answer is taken as GHL says it (its window moves).
    let next = budget.take("loc", Use::Enrichment).expect("go");
    next.observe(&window("90", "10000"));
    assert_eq!(left(&budget, "loc"), Some(90));
}

#[test]
fn a_call_that_fails_unanswered_is_no_longer_out() {
    let budget = Budget::default();
    budget
        .take("loc", Use::Enrichment)
        .expect("go")
        .observe(&window("50", "10000"));
    let failed = budget.take("loc", Use::Enrichment).expect("go");
    drop(failed);
    let answered = budget.take("loc", Use::Enrichment).expect("go");
    answered.observe(&window("48", "10000"));
    assert_eq!(left(&budget, "loc"), Some(48), "nothing counted out");
}

#[test]
fn an_answer_without_window_headers_lands_its_call_and_keeps_the_window() {
    let budget = Budget::default();
    let a = budget.take("loc", Use::Enrichment).expect("go");
    let b = budget.take("loc", Use::Enrichment).expect("go");
    a.observe(&window("60", "10000"));
    assert_eq!(left(&budget, "loc"), Some(59), "b still out");
    // A proxy or an odd endpoint answers without GHL's headers: b is no longer
    // out, and what GHL last said stands (b counted in it).
    b.observe(&headers(&[("content-type", "application/json")]));
    assert_eq!(left(&budget, "loc"), Some(59));
    // None out: the next word is taken as GHL says it, not held to the least of
    // the calls before.
    let c = budget.take("loc", Use::Enrichment).expect("go");
    c.observe(&window("70", "10000"));
    assert_eq!(left(&budget, "loc"), Some(70));
}

#[test]
fn a_held_call_names_the_setting_that_governs_it() {
    let enrichment = reserved(Use::Enrichment, 1500);
    assert!(
        enrichment.contains("GHL_ENRICHMENT_SHARE_PERCENT") && enrichment.contains("1500 ms"),
        "{enrichment}"
    );
    let reconcile = reserved(Use::Reconcile, 200);
    assert!(
        reconcile.contains("reconcile retries in 200 ms"),
        "{reconcile}"
    );
}

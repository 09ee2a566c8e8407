//! Where the time of one contact goes: parse, normalise, hash, build, serialise
//! (parse and serialise with serde_json and with sonic-rs, which `map` uses; the
//! `reused` variants fill one contact and one event again and again, as `map` does).
//! `build` and `whole` map the same contact again and again, so its names and
//! places come from the memo of repeating values, as most do in a real backfill;
//! `normalize` and `hash` show what a first sight of them costs.
//! Run with `cargo bench -p ghl-capi --bench per_contact`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ghl_capi::capi::ServerEvent;
use ghl_capi::ghl::Contact;
use ghl_capi::mapping::{Mapping, Occurrence, Subject, Trigger, identity};
use ghl_capi::normalize::{normalize, sha256_hex};
use ghl_capi::ops::map::parse_contact_into;
use serde::Deserialize;
use serde_json::Map;

/// A contact shaped like `../shared/bench/gen_contacts.py` writes them.
const CONTACT: &str = r#"{"id": "c0000000000000000001", "locationId": "ve9EPM428h8vShlRW1KT", "firstName": "JOSÉ", "lastName": "Smith-Jones", "name": "JOSÉ Smith-Jones", "email": "  JOSE.Smith-Jones1@Example.COM ", "phone": "+1 (512) 555-0001", "city": "San Francisco", "state": "CA", "postalCode": "94105-1234", "country": "US", "dateOfBirth": "1977-01-01T00:00:00.000Z", "tags": ["lead", "webinar"], "source": "facebook form", "dateAdded": "2026-11-25T00:00:01.000Z", "dateUpdated": "2026-11-25T11:06:41.000Z", "customFields": [{"id": "orderValue", "value": 117.13}], "attributionSource": {"url": "https://example.com/landing", "fbclid": "IwAR000000000001abc", "ip": "203.0.113.1", "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)", "medium": "form"}}"#;

fn per_contact(c: &mut Criterion) {
    let contact: Contact = serde_json::from_str(CONTACT).expect("contact");
    let mapping = Mapping::builtin();
    let now = contact.date_added().expect("dateAdded") + chrono::Duration::hours(1);
    let occurrence = Occurrence::for_contact(Trigger::ContactCreated, "", &contact, now);
    let normalized: Vec<String> = identity(&contact)
        .filter_map(|(f, raw)| normalize(f, raw, contact.country.as_deref()))
        .map(|n| n.as_str().to_owned())
        .collect();
    let event = mapping
        .map(&occurrence, &contact, &Map::new(), now)
        .remove(0)
        .outcome
        .expect("valid");

    let mut group = c.benchmark_group("per_contact");
    // serde_json beside sonic-rs, which `ghl-capi map` uses for this path.
    group.bench_function("parse/serde_json", |b| {
        b.iter(|| serde_json::from_str::<Contact>(black_box(CONTACT)))
    });
    group.bench_function("parse/sonic_rs", |b| {
        b.iter(|| sonic_rs::from_slice::<Contact>(black_box(CONTACT.as_bytes())))
    });
    // As `map` parses: into the previous line's contact, reusing its strings.
    let mut reused = Contact::default();
    group.bench_function("parse/serde_json_reused", |b| {
        b.iter(|| {
            let mut parser = serde_json::Deserializer::from_str(black_box(CONTACT));
            Contact::deserialize_in_place(&mut parser, &mut reused).and_then(|()| parser.end())
        })
    });
    group.bench_function("parse/sonic_rs_reused", |b| {
        b.iter(|| parse_contact_into(black_box(CONTACT.as_bytes()), &mut reused))
    });
    group.bench_function("normalize", |b| {
        b.iter(|| {
            identity(black_box(&contact))
                .filter_map(|(f, raw)| normalize(f, raw, contact.country.as_deref()))
                .count()
        })
    });
    group.bench_function("hash", |b| {
        b.iter(|| {
            black_box(&normalized)
                .iter()
                .map(|v| sha256_hex(v))
                .collect::<Vec<_>>()
        })
    });
    group.bench_function("build", |b| {
        b.iter(|| mapping.map(black_box(&occurrence), &contact, &Map::new(), now))
    });
    // As `map` builds: into one scratch event, reusing its lists.
    let related = Map::new();
    let mut scratch = ServerEvent::default();
    group.bench_function("build/reused", |b| {
        b.iter(|| {
            let mut built = 0;
            let subject = Subject::new(&contact, black_box(&occurrence), &related);
            mapping.map_each(
                &subject,
                now,
                &mut scratch,
                |_| true,
                |_, outcome| built += usize::from(outcome.is_ok()),
            );
            built
        })
    });
    group.bench_function("serialize/serde_json", |b| {
        b.iter(|| serde_json::to_string(black_box(&event)))
    });
    group.bench_function("serialize/sonic_rs", |b| {
        b.iter(|| sonic_rs::to_string(black_box(&event)))
    });
    // The path of one contact through `map`, buffers reused as there.
    let (mut occurrences, mut out) = (Vec::new(), Vec::new());
    group.bench_function("whole", |b| {
        b.iter(|| {
            parse_contact_into(black_box(CONTACT.as_bytes()), &mut reused).expect("contact");
            let contact = &reused;
            let trigger = Trigger::ContactCreated;
            Occurrence::refill_for_contact_record(
                &mut occurrences,
                (trigger, false),
                "",
                contact,
                now,
            );
            out.clear();
            let subject = Subject::new(contact, &occurrences[0], &related);
            mapping.map_each(
                &subject,
                now,
                &mut scratch,
                |_| true,
                |_, outcome| {
                    if let Ok(event) = outcome {
                        let _ = sonic_rs::to_writer(&mut out, event);
                    }
                },
            );
            out.len()
        })
    });
    group.finish();
}

criterion_group!(benches, per_contact);
criterion_main!(benches);

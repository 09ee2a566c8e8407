//! The profile's test vectors (`meta/normalize-vectors.jsonl`), every line of them.

use ghl_capi::normalize::{Field, digest, normalize};
use ghl_capi_tests::reference_jsonl;

#[test]
fn every_normalization_vector_passes() {
    let vectors = reference_jsonl("meta/normalize-vectors.jsonl");
    assert!(vectors.len() > 1900, "the vector file looks truncated");
    let mut failures = Vec::new();
    for (i, v) in vectors.iter().enumerate() {
        let field: Field = v["field"]
            .as_str()
            .expect("field")
            .parse()
            .expect("known field");
        let input = v["input"].as_str().expect("input");
        let country = v["country"].as_str();
        let got = normalize(field, input, country);
        let normalized = got.as_ref().map(|n| n.as_str());
        let sha = got.as_ref().map(|n| n.sha256());
        // What an event carries, through the memo of repeating values, twice.
        let sent = [(); 2].map(|()| digest(field, input, country));
        if normalized != v["expected"].as_str()
            || sha.as_deref() != v["sha256"].as_str()
            || sent != [sha; 2]
        {
            failures.push(format!(
                "line {}: {field} {input:?} -> {normalized:?} / {sha:?}, expected {} / {}",
                i + 1,
                v["expected"],
                v["sha256"]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors fail:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
}

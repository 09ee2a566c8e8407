//! The reference material beside the repository: API facts, fixtures, vectors.

use std::path::PathBuf;

/// `../shared` from the repository root: the read-only reference material
/// (API facts, fixtures, vectors). `GHL_CAPI_REFERENCE` overrides it.
pub fn reference_dir() -> PathBuf {
    std::env::var_os("GHL_CAPI_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

/// A file of the reference material, by its path below `../shared`.
pub fn reference(path: &str) -> PathBuf {
    reference_dir().join(path)
}

/// The text of a reference file; panics with the path when it is missing, since a
/// test without its data must fail loudly rather than pass on nothing.
pub fn read_reference(path: &str) -> String {
    let full = reference(path);
    std::fs::read_to_string(&full)
        .unwrap_or_else(|e| panic!("cannot read reference file {}: {e}", full.display()))
}

/// Each line of a JSON-lines reference file, parsed.
pub fn reference_jsonl(path: &str) -> Vec<serde_json::Value> {
    read_reference(path)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}:{}: {e}", i + 1)))
        .collect()
}

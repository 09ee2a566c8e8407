//! Reading the input: whole lines, in chunks handed to the workers.

use std::io::{self, Read};
use std::sync::mpsc;

use super::CHUNK;

/// A chunk's lines, without their `\n` or `\r\n`; line ends are found with SIMD
/// (`memchr`): a byte-by-byte split took a twentieth of `map`'s time.
pub(super) fn lines(chunk: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = chunk.strip_suffix(b"\n").unwrap_or(chunk);
    let mut start = 0;
    memchr::memchr_iter(b'\n', body)
        .chain([body.len()])
        .map(move |end| {
            let line = &body[start..end];
            start = end + 1;
            line.strip_suffix(b"\r").unwrap_or(line)
        })
}

/// Reads `input` in chunks of whole lines and hands them on, numbered. A line
/// longer than a chunk simply makes its chunk longer.
pub(super) fn read_chunks(
    mut input: impl Read,
    chunks: &mpsc::SyncSender<(u64, Vec<u8>)>,
    spares: &mpsc::Receiver<Vec<u8>>,
) -> io::Result<()> {
    let mut carry = Vec::new();
    let mut index = 0;
    loop {
        // Recycled chunks keep their pages; a new one is sized so it never regrows
        // (each regrowth of a large buffer costs fresh, kernel-zeroed pages).
        let mut chunk = spares
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(2 * CHUNK));
        chunk.clear();
        chunk.append(&mut carry);
        // Up to a chunk's worth, read straight into spare capacity (never zeroed first).
        let read = (&mut input).take(CHUNK as u64).read_to_end(&mut chunk)?;
        if read > 0 {
            match memchr::memrchr(b'\n', &chunk) {
                Some(end) => carry.extend_from_slice(&chunk[end + 1..]),
                // No line end yet: keep reading into the same chunk.
                None => {
                    carry = chunk;
                    continue;
                }
            }
            chunk.truncate(chunk.len() - carry.len());
        }
        // A closed channel means the writer stopped on an error of its own.
        if chunk.is_empty() || chunks.send((index, chunk)).is_err() {
            break;
        }
        index += 1;
    }
    Ok(())
}

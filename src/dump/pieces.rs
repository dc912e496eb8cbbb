//! A file's BLAKE3 from the hashes of its pieces, so restore's verifying pass hashes every
//! byte once instead of twice.
//!
//! Restore keeps a hash of each [`PIECE`]-sized piece of a dump file, to check every piece
//! again as it is read for the load, and compares the whole file's BLAKE3 with the recorded
//! one. Both came from separate passes over the same bytes (1.1 GB for shape c). BLAKE3 is a
//! tree: a piece of 256 KiB at a multiple of 256 KiB is a complete subtree of 256 chunks,
//! and the whole file's hash is its root. So each piece's *chaining value* (the subtree's
//! non-root output, [`blake3::hazmat`]) serves the later piece checks, and merging those
//! values along the tree's shape gives exactly `blake3::hash(file)`: the tests compare
//! the two at every size around the tree's boundaries.
//!
//! The tree's shape is BLAKE3's own rule ([`blake3::hazmat::left_subtree_len`]): the left
//! subtree of an input of `n` bytes holds the largest power-of-two number of chunks that is
//! less than `n`. For an input longer than one piece that is a multiple of the piece, so
//! every split falls between pieces. An input of one piece has no parent node: its root
//! is hashed directly ([`root`] takes it as `single`).
//!
//! Pure: no I/O.

use blake3::hazmat::{ChainingValue, HasherExt, Mode, left_subtree_len, merge_subtrees_non_root};

/// Bytes in a piece: 256 chunks of 1 KiB, a complete BLAKE3 subtree.
pub(crate) const PIECE: u64 = 256 << 10;

/// The chaining value of piece `index` (its bytes: [`PIECE`] of them, or fewer for the
/// file's last piece; never none).
pub(crate) fn piece_value(index: u64, bytes: &[u8]) -> ChainingValue {
    let mut h = blake3::Hasher::new();
    h.set_input_offset(index * PIECE);
    h.update(bytes);
    h.finalize_non_root()
}

/// The BLAKE3 of a file of `size` bytes whose pieces have `values` (in order). A file of at
/// most one piece has no parent node to merge: `single` gives its root hash then (called
/// with the piece's bytes, or none for an empty file).
pub(crate) fn root(
    size: u64,
    values: &[ChainingValue],
    single: impl FnOnce() -> blake3::Hash,
) -> blake3::Hash {
    if size <= PIECE {
        return single();
    }
    debug_assert_eq!(values.len() as u64, size.div_ceil(PIECE));
    let (l, r) = children(size, values);
    blake3::hazmat::merge_subtrees_root(&l, &r, Mode::Hash)
}

/// The chaining value of a subtree of `len` bytes made of whole pieces (the last may be
/// short), starting at a piece boundary.
fn subtree(len: u64, values: &[ChainingValue]) -> ChainingValue {
    if len <= PIECE {
        return values[0];
    }
    let (l, r) = children(len, values);
    merge_subtrees_non_root(&l, &r, Mode::Hash)
}

/// The chaining values of the two children of a node over `len` (more than one piece) bytes.
fn children(len: u64, values: &[ChainingValue]) -> (ChainingValue, ChainingValue) {
    let left = left_subtree_len(len);
    let pieces = (left / PIECE) as usize;
    (
        subtree(left, &values[..pieces]),
        subtree(len - left, &values[pieces..]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_pieces(data: &[u8]) -> blake3::Hash {
        let values: Vec<ChainingValue> = data
            .chunks(PIECE as usize)
            .enumerate()
            .map(|(i, p)| piece_value(i as u64, p))
            .collect();
        root(data.len() as u64, &values, || blake3::hash(data))
    }

    #[test]
    fn the_root_from_pieces_is_the_files_blake3() {
        let p = PIECE as usize;
        // Deterministic, non-repeating bytes (a repeating pattern could hide a piece mix-up).
        let data: Vec<u8> = (0..(p * 9 + 4321) as u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
            .collect();
        let mut sizes = vec![
            0,
            1,
            1024,
            1025,
            p - 1,
            p,
            p + 1,
            p + 1024,
            2 * p - 1,
            2 * p,
        ];
        sizes.extend([
            2 * p + 1,
            3 * p,
            3 * p + 7,
            4 * p,
            4 * p + 1,
            5 * p - 3,
            8 * p,
        ]);
        sizes.extend([8 * p + 1, 9 * p, data.len()]);
        for n in sizes {
            assert_eq!(by_pieces(&data[..n]), blake3::hash(&data[..n]), "{n} bytes");
        }
    }

    #[test]
    fn a_changed_or_moved_piece_changes_its_value() {
        let a = vec![7u8; PIECE as usize];
        let mut b = a.clone();
        b[12345] ^= 1;
        assert_ne!(piece_value(3, &a), piece_value(3, &b));
        // The same bytes at another place in the file are another subtree.
        assert_ne!(piece_value(3, &a), piece_value(4, &a));
    }
}

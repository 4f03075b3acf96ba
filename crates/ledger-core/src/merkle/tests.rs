//! The Merkle tree against hand-built trees and a reference implementation (RFC 9162).
// Small test trees: indexes and counts fit every integer type they are cast to.
#![allow(clippy::cast_possible_truncation)]

use proptest::prelude::*;

use super::*;

/// Chain hash `[i; 32]`: the leaf bytes of the hand-built trees.
fn d(i: u8) -> ChainHash {
    ChainHash([i; 32])
}

/// Leaf hash of `d(i)`, computed straight from the definition rather than through `leaf_hash`.
fn l(i: u8) -> Hash {
    let mut input = vec![0x00];
    input.extend_from_slice(&[i; 32]);
    *blake3::hash(&input).as_bytes()
}

/// Node hash straight from the definition.
fn n(left: Hash, right: Hash) -> Hash {
    let mut input = vec![0x01];
    input.extend_from_slice(&left);
    input.extend_from_slice(&right);
    *blake3::hash(&input).as_bytes()
}

fn chain_hashes(count: u8) -> Vec<ChainHash> {
    (0..count).map(d).collect()
}

/// The recursive MTH of RFC 9162 §2.1.1, written independently of the builder.
fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => *blake3::hash(b"").as_bytes(),
        1 => leaves[0],
        len => {
            let mut k = 1;
            while k * 2 < len {
                k *= 2;
            }
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

fn builder_root(leaves: &[Hash]) -> Hash {
    let mut builder = MerkleBuilder::new();
    for leaf in leaves {
        builder.push(*leaf);
    }
    assert_eq!(builder.len(), leaves.len() as u64);
    builder.root()
}

/// Leaves that are all distinct: leaf hashes of pseudo-random chain hashes.
fn leaves(count: u64, seed: u64) -> Vec<Hash> {
    (0..count)
        .map(|i| {
            let mut hasher = blake3::Hasher::new();
            hasher.update(&seed.to_be_bytes());
            hasher.update(&i.to_be_bytes());
            leaf_hash(&ChainHash(*hasher.finalize().as_bytes()))
        })
        .collect()
}

fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn primitives_match_the_definitions() {
    assert_eq!(hex(&empty_root()), "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
    for i in [0u8, 1, 7, 255] {
        assert_eq!(leaf_hash(&d(i)), l(i));
    }
    assert_eq!(node_hash(&l(0), &l(1)), n(l(0), l(1)));
    assert_ne!(node_hash(&l(0), &l(1)), node_hash(&l(1), &l(0)));
    // Domain separation: a leaf whose bytes happen to be a node's children is not that node.
    assert_ne!(leaf_hash(&ChainHash(l(0))), n(l(0), l(1)));
}

#[test]
fn split_point_is_largest_power_of_two_below() {
    let cases = [(2, 1), (3, 2), (4, 2), (5, 4), (7, 4), (8, 4), (9, 8), (1 << 40, 1 << 39), ((1 << 40) + 1, 1 << 40)];
    for (size, k) in cases {
        assert_eq!(split_point(size), k, "size {size}");
    }
    assert_eq!(split_point(u64::MAX), 1 << 63);
}

#[test]
fn hand_built_roots_for_one_to_eight_leaves() {
    let h01 = n(l(0), l(1));
    let h23 = n(l(2), l(3));
    let h0_3 = n(h01, h23);
    let h45 = n(l(4), l(5));
    let h67 = n(l(6), l(7));
    let expected = [
        empty_root(),
        l(0),
        h01,
        n(h01, l(2)),
        h0_3,
        n(h0_3, l(4)),
        n(h0_3, h45),
        n(h0_3, n(h45, l(6))),
        n(h0_3, n(h45, h67)),
    ];
    let all = chain_hashes(8);
    for (size, want) in expected.iter().enumerate() {
        let chain = &all[..size];
        let hashes: Vec<Hash> = chain.iter().map(leaf_hash).collect();
        assert_eq!(builder_root(&hashes), *want, "builder, size {size}");
        assert_eq!(mth(&hashes), *want, "recursive, size {size}");
        assert_eq!(tree_root(chain, size as u64).unwrap(), *want, "tree_root over chain hashes, size {size}");
        assert_eq!(tree_root(hashes.as_slice(), size as u64).unwrap(), *want, "tree_root over leaves, size {size}");
        let mut by_chain = MerkleBuilder::new();
        chain.iter().for_each(|c| by_chain.push_chain_hash(c));
        assert_eq!(by_chain.root(), *want);
        assert_eq!(by_chain.is_empty(), size == 0);
    }
}

/// The tree of RFC 9162 §2.1.5 (RFC 6962 §2.1.3): seven leaves d0..d6.
///
/// ```text
///             hash
///            /    \
///           k      l
///          / \    / \
///         g   h  i   j
///        / \ / \ / \ |
///        a b c d e f d6
/// ```
struct Rfc {
    a: Hash,
    b: Hash,
    c: Hash,
    d: Hash,
    e: Hash,
    f: Hash,
    g: Hash,
    h: Hash,
    i: Hash,
    j: Hash,
    k: Hash,
    l: Hash,
    hash: Hash,
}

fn rfc_tree() -> Rfc {
    let (a, b, c, d, e, f, j) = (l(0), l(1), l(2), l(3), l(4), l(5), l(6));
    let g = n(a, b);
    let h = n(c, d);
    let i = n(e, f);
    let k = n(g, h);
    let l = n(i, j);
    Rfc { a, b, c, d, e, f, g, h, i, j, k, l, hash: n(k, l) }
}

#[test]
fn rfc_example_inclusion_proofs() {
    let t = rfc_tree();
    let leaves = chain_hashes(7);
    assert_eq!(tree_root(leaves.as_slice(), 7).unwrap(), t.hash);
    let expected: [Vec<Hash>; 7] = [
        vec![t.b, t.h, t.l], // d0, listed in the RFC
        vec![t.a, t.h, t.l],
        vec![t.d, t.g, t.l],
        vec![t.c, t.g, t.l], // d3, listed in the RFC
        vec![t.f, t.j, t.k], // d4, listed in the RFC
        vec![t.e, t.j, t.k],
        vec![t.i, t.k],
    ];
    for (m, want) in expected.iter().enumerate() {
        let proof = inclusion_proof(leaves.as_slice(), m as u64, 7).unwrap();
        assert_eq!(&proof, want, "d{m}");
        assert!(verify_inclusion(&l(m as u8), m as u64, 7, &proof, &t.hash), "d{m}");
    }
}

#[test]
fn rfc_example_consistency_proofs() {
    let t = rfc_tree();
    let leaves = chain_hashes(7);
    let hash0 = n(t.g, t.c); // size 3
    let hash1 = t.k; // size 4
    let hash2 = n(t.k, t.i); // size 6
    let cases = [(3, hash0, vec![t.c, t.d, t.g, t.l]), (4, hash1, vec![t.l]), (6, hash2, vec![t.i, t.j, t.k])];
    for (m, root_m, want) in cases {
        assert_eq!(tree_root(leaves.as_slice(), m).unwrap(), root_m, "root of size {m}");
        let proof = consistency_proof(leaves.as_slice(), m, 7).unwrap();
        assert_eq!(proof, want, "PROOF({m}, D[7])");
        assert!(verify_consistency(m, 7, &root_m, &t.hash, &proof), "PROOF({m}, D[7])");
    }
}

#[test]
fn known_answer_root() {
    // Regression vector: the root of the tree whose leaves are the chain hashes [0x00; 32],
    // [0x01; 32], [0x02; 32]. Computed once from this implementation; it must never change.
    const ROOT_OF_0_1_2: &str = "3f97043de3a7a8fe71e55454f9f9dead4e44301744481419a20754c5a4f5ee38";
    let root = tree_root(chain_hashes(3).as_slice(), 3).unwrap();
    assert_eq!(hex(&root), ROOT_OF_0_1_2);
}

#[test]
fn builder_equals_recursive_definition() {
    let all = leaves(130, 1);
    let mut builder = MerkleBuilder::new();
    assert_eq!(builder.root(), mth(&[]));
    for (count, leaf) in all.iter().enumerate() {
        builder.push(*leaf);
        assert_eq!(builder.root(), mth(&all[..=count]), "size {}", count + 1);
        // O(log n) memory: one stacked subtree per set bit of the size.
        assert_eq!(builder.stack.len() as u32, (count as u64 + 1).count_ones());
    }
}

#[test]
fn exhaustive_small_trees() {
    for size in 0..=33u64 {
        let all = leaves(size, size);
        let roots: Vec<Hash> = (0..=size).map(|s| mth(&all[..s as usize])).collect();
        let root = roots[size as usize];
        for m in 0..size {
            let proof = inclusion_proof(all.as_slice(), m, size).unwrap();
            assert!(verify_inclusion(&all[m as usize], m, size, &proof, &root), "inclusion {m} in {size}");
            for other in (0..size).filter(|&o| o != m) {
                assert!(!verify_inclusion(&all[m as usize], other, size, &proof, &root), "{m} as {other} in {size}");
            }
        }
        for m in 0..=size {
            let proof = consistency_proof(all.as_slice(), m, size).unwrap();
            assert!(verify_consistency(m, size, &roots[m as usize], &root, &proof), "consistency {m} -> {size}");
            // An empty proof (m = 0 or m = size) legitimately proves both trivial cases.
            let trivial = |o: u64| o == 0 || o == size;
            for other in (0..=size).filter(|&o| o != m && !(proof.is_empty() && trivial(o))) {
                assert!(
                    !verify_consistency(other, size, &roots[other as usize], &root, &proof),
                    "{m} as {other} -> {size}"
                );
            }
        }
    }
}

#[test]
fn edge_cases() {
    let all = leaves(5, 9);
    let root5 = mth(&all);
    let empty: &[Hash] = &[];
    assert_eq!(tree_root(empty, 0).unwrap(), empty_root());
    assert!(!verify_inclusion(&all[0], 0, 0, &[], &empty_root()));
    assert!(verify_inclusion(&all[0], 0, 1, &[], &all[0]));
    assert!(!verify_inclusion(&all[0], 0, 1, &[all[1]], &all[0]), "an extra element must fail");
    let proof = inclusion_proof(all.as_slice(), 1, 5).unwrap();
    assert!(!verify_inclusion(&all[1], 1, 5, &proof[..proof.len() - 1], &root5), "a missing element must fail");
    let mut longer = proof.clone();
    longer.push(all[0]);
    assert!(!verify_inclusion(&all[1], 1, 5, &longer, &root5), "an extra element must fail");

    // Consistency with the empty tree and with itself.
    assert!(verify_consistency(0, 5, &empty_root(), &root5, &[]));
    assert!(!verify_consistency(0, 5, &root5, &root5, &[]));
    assert!(!verify_consistency(0, 5, &empty_root(), &root5, &[root5]));
    assert!(verify_consistency(5, 5, &root5, &root5, &[]));
    assert!(!verify_consistency(5, 5, &root5, &root5, &[root5]));
    assert!(!verify_consistency(5, 5, &root5, &empty_root(), &[]));
    assert!(!verify_consistency(5, 4, &root5, &root5, &[]));
    assert!(!verify_consistency(3, 5, &mth(&all[..3]), &root5, &[]), "0 < m < n needs a proof");
}

#[test]
fn proof_errors() {
    let all = leaves(5, 3);
    let s = all.as_slice();
    assert_eq!(inclusion_proof(s, 5, 5), Err(MerkleError::IndexOutOfRange { index: 5, size: 5 }));
    assert_eq!(inclusion_proof(s, 0, 0), Err(MerkleError::IndexOutOfRange { index: 0, size: 0 }));
    assert_eq!(inclusion_proof(s, 0, 6), Err(MerkleError::SizeTooLarge { size: 6, available: 5 }));
    assert_eq!(consistency_proof(s, 1, 6), Err(MerkleError::SizeTooLarge { size: 6, available: 5 }));
    assert_eq!(consistency_proof(s, 4, 3), Err(MerkleError::SizesOutOfOrder { old_size: 4, new_size: 3 }));
    assert_eq!(tree_root(s, 6), Err(MerkleError::SizeTooLarge { size: 6, available: 5 }));
    assert_eq!(consistency_proof(s, 0, 5), Ok(vec![]));
    assert_eq!(consistency_proof(s, 5, 5), Ok(vec![]));
    // A proof over a prefix of the source only reads that prefix.
    assert_eq!(inclusion_proof(s, 1, 3).unwrap(), inclusion_proof(&all[..3], 1, 3).unwrap());
}

/// A source that fails past a given index, as a store's disk read might.
struct Failing {
    leaves: Vec<Hash>,
    fail_from: u64,
}

impl LeafSource for Failing {
    type Error = String;

    fn leaf_count(&self) -> u64 {
        self.leaves.len() as u64
    }

    fn leaf_hash(&self, index: u64) -> Result<Hash, String> {
        if index >= self.fail_from {
            return Err(format!("cannot read leaf {index}"));
        }
        Ok(self.leaves[index as usize])
    }
}

#[test]
fn leaf_source_errors_propagate() {
    let source = Failing { leaves: leaves(8, 4), fail_from: 6 };
    assert_eq!(inclusion_proof(&source, 0, 8), Err(MerkleError::Source("cannot read leaf 6".to_string())));
    assert_eq!(consistency_proof(&source, 3, 8), Err(MerkleError::Source("cannot read leaf 6".to_string())));
    assert!(inclusion_proof(&source, 0, 6).is_ok());
    assert_eq!(
        MerkleError::<String>::Source("disk".into()).to_string(),
        "leaf source failed: disk",
        "errors display their cause"
    );
}

fn flip(proof: &[Hash], element: usize, byte: usize, mask: u8) -> Vec<Hash> {
    let mut tampered = proof.to_vec();
    tampered[element][byte] ^= mask;
    tampered
}

fn size_and_index() -> impl Strategy<Value = (u64, u64)> {
    (1..=300u64).prop_flat_map(|size| (Just(size), 0..size))
}

fn size_and_old_size() -> impl Strategy<Value = (u64, u64)> {
    (1..=300u64).prop_flat_map(|size| (Just(size), 0..=size))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn inclusion_proofs_verify_and_tampering_fails(
        (size, m) in size_and_index(),
        seed in any::<u64>(),
        byte in 0..32usize,
        mask in 1..=255u8,
        other_size in 1..=300u64,
    ) {
        let all = leaves(size.max(other_size), seed);
        let root = tree_root(all.as_slice(), size).unwrap();
        prop_assert_eq!(root, mth(&all[..size as usize]));
        let leaf = all[m as usize];
        let proof = inclusion_proof(all.as_slice(), m, size).unwrap();
        prop_assert!(verify_inclusion(&leaf, m, size, &proof, &root));

        for element in 0..proof.len() {
            prop_assert!(!verify_inclusion(&leaf, m, size, &flip(&proof, element, byte, mask), &root));
        }
        let mut bad_leaf = leaf;
        bad_leaf[byte] ^= mask;
        prop_assert!(!verify_inclusion(&bad_leaf, m, size, &proof, &root));
        let mut bad_root = root;
        bad_root[byte] ^= mask;
        prop_assert!(!verify_inclusion(&leaf, m, size, &proof, &bad_root));
        for other in (0..size).filter(|&o| o != m) {
            prop_assert!(!verify_inclusion(&leaf, other, size, &proof, &root), "index {} accepted", other);
        }
        // A different size, against that size's real root.
        if other_size != size {
            let other_root = tree_root(all.as_slice(), other_size).unwrap();
            prop_assert!(!verify_inclusion(&leaf, m, other_size, &proof, &other_root));
        }
    }

    #[test]
    fn consistency_proofs_verify_and_tampering_fails(
        (size, m) in size_and_old_size(),
        seed in any::<u64>(),
        byte in 0..32usize,
        mask in 1..=255u8,
        other_size in 0..=300u64,
    ) {
        let all = leaves(size.max(other_size), seed);
        let root_of = |s: u64| tree_root(all.as_slice(), s).unwrap();
        let (root_m, root_n) = (root_of(m), root_of(size));
        let proof = consistency_proof(all.as_slice(), m, size).unwrap();
        prop_assert!(verify_consistency(m, size, &root_m, &root_n, &proof));

        for element in 0..proof.len() {
            prop_assert!(!verify_consistency(m, size, &root_m, &root_n, &flip(&proof, element, byte, mask)));
        }
        let mut bad = root_m;
        bad[byte] ^= mask;
        prop_assert!(!verify_consistency(m, size, &bad, &root_n, &proof));
        let mut bad = root_n;
        bad[byte] ^= mask;
        // (Every tree is consistent with the empty one, whatever its root.)
        prop_assert_eq!(verify_consistency(m, size, &root_m, &bad, &proof), m == 0);
        // A different old size or new size, each against its real root. (An old size of 0 is
        // consistent with every tree, so it is no different size for this check.)
        if other_size != m && other_size <= size && other_size > 0 {
            prop_assert!(!verify_consistency(other_size, size, &root_of(other_size), &root_n, &proof));
        }
        // (With m = 0 every tree is consistent with the empty one, so only m > 0 can fail.)
        if other_size != size && other_size >= m && m > 0 {
            prop_assert!(!verify_consistency(m, other_size, &root_m, &root_of(other_size), &proof));
        }
        // Another log's tree of the same sizes.
        let foreign = leaves(size, seed.wrapping_add(1));
        if m > 0 {
            prop_assert!(!verify_consistency(m, size, &tree_root(foreign.as_slice(), m).unwrap(), &root_n, &proof));
        }
        if m > 0 {
            let foreign_root = tree_root(foreign.as_slice(), size).unwrap();
            prop_assert!(!verify_consistency(m, size, &root_m, &foreign_root, &proof));
        }
    }
}

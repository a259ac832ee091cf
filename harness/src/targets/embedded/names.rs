//! Kubernetes-like generated names (`nginx-7c5ddbdf54-x2k4p`).

use std::hash::{Hash, Hasher};

/// The alphabet apimachinery's `rand.String` and `SafeEncodeString` use: no vowels, no look-alikes.
const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A deterministic `len`-character string derived from `seed`.
pub fn suffix(seed: &str, len: usize) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    seed.hash(&mut h);
    let mut x = h.finish();
    (0..len)
        .map(|_| {
            let c = ALPHABET[(x % ALPHABET.len() as u64) as usize] as char;
            x /= ALPHABET.len() as u64;
            if x == 0 {
                x = 0x9e37_79b9_7f4a_7c15;
            }
            c
        })
        .collect()
}

/// A random `len`-character string.
pub fn random(len: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

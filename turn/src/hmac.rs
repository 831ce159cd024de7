//! HMAC (RFC 2104) over the SHA-1 and SHA-256 compression functions, with the keyed inner and
//! outer states computed once per key. A tag of a STUN message then costs only the compressions
//! of the message itself plus one for the outer hash: no buffering layers, no allocation.

use sha1::digest::generic_array::GenericArray;

/// Both hashes work on 64-byte blocks.
const BLOCK: usize = 64;

/// A Merkle-Damgard hash with 64-byte blocks and `W` big-endian 32-bit state words.
#[derive(Clone, Copy)]
pub(crate) struct HashFn<const W: usize> {
    iv: [u32; W],
    compress: fn(&mut [u32; W], &[u8; BLOCK]),
}

fn sha1_compress(state: &mut [u32; 5], block: &[u8; BLOCK]) {
    sha1::compress(state, std::slice::from_ref(GenericArray::from_slice(block)));
}

fn sha256_compress(state: &mut [u32; 8], block: &[u8; BLOCK]) {
    sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
}

/// SHA-1.
pub(crate) const SHA1: HashFn<5> = HashFn {
    iv: [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ],
    compress: sha1_compress,
};

/// SHA-256.
pub(crate) const SHA256: HashFn<8> = HashFn {
    iv: [
        0x6a09_e667,
        0xbb67_ae85,
        0x3c6e_f372,
        0xa54f_f53a,
        0x510e_527f,
        0x9b05_688c,
        0x1f83_d9ab,
        0x5be0_cd19,
    ],
    compress: sha256_compress,
};

/// A hash in progress: the state after whole blocks, and the bytes of the partial one.
struct Running<const W: usize> {
    compress: fn(&mut [u32; W], &[u8; BLOCK]),
    state: [u32; W],
    block: [u8; BLOCK],
    filled: usize,
    /// Bytes hashed so far, including the whole blocks the state started from.
    total: u64,
}

impl<const W: usize> Running<W> {
    fn from_state(compress: fn(&mut [u32; W], &[u8; BLOCK]), state: [u32; W], total: u64) -> Self {
        Self {
            compress,
            state,
            block: [0; BLOCK],
            filled: 0,
            total,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.filled > 0 {
            let take = (BLOCK - self.filled).min(data.len());
            self.block[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled < BLOCK {
                return;
            }
            (self.compress)(&mut self.state, &self.block);
            self.filled = 0;
        }
        let mut blocks = data.chunks_exact(BLOCK);
        for block in &mut blocks {
            if let Ok(block) = block.try_into() {
                (self.compress)(&mut self.state, block);
            }
        }
        let rest = blocks.remainder();
        self.block[..rest.len()].copy_from_slice(rest);
        self.filled = rest.len();
    }

    /// Pads with the bit length and returns the final state.
    fn finish(&mut self) -> [u32; W] {
        let bits = self.total * 8;
        self.block[self.filled] = 0x80;
        self.block[self.filled + 1..].fill(0);
        if self.filled + 1 > BLOCK - 8 {
            (self.compress)(&mut self.state, &self.block);
            self.block.fill(0);
        }
        self.block[BLOCK - 8..].copy_from_slice(&bits.to_be_bytes());
        (self.compress)(&mut self.state, &self.block);
        self.state
    }
}

/// The digest bytes of a final state, into `out` (which may be shorter than the digest).
fn write_digest<const W: usize>(state: &[u32; W], out: &mut [u8]) {
    for (chunk, word) in out.chunks_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes()[..chunk.len()]);
    }
}

/// An HMAC key with its inner and outer states precomputed.
#[derive(Clone)]
pub(crate) struct KeyedHmac<const W: usize> {
    compress: fn(&mut [u32; W], &[u8; BLOCK]),
    inner: [u32; W],
    outer: [u32; W],
}

impl<const W: usize> KeyedHmac<W> {
    /// Prepares `key` (any length; keys longer than a block are hashed first, as RFC 2104 says).
    pub fn new(f: HashFn<W>, key: &[u8]) -> Self {
        let mut k = [0u8; BLOCK];
        if key.len() > BLOCK {
            let mut h = Running::from_state(f.compress, f.iv, 0);
            h.update(key);
            write_digest(&h.finish(), &mut k[..W * 4]);
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let keyed = |pad: u8| {
            let mut block = k;
            block.iter_mut().for_each(|b| *b ^= pad);
            let mut state = f.iv;
            (f.compress)(&mut state, &block);
            state
        };
        Self {
            compress: f.compress,
            inner: keyed(0x36),
            outer: keyed(0x5c),
        }
    }

    /// The tag length in bytes.
    pub const fn tag_len(&self) -> usize {
        W * 4
    }

    /// Writes HMAC(key, concatenation of `parts`) into `out`, truncated to `out.len()`.
    pub fn tag(&self, parts: &[&[u8]], out: &mut [u8]) {
        let mut inner = Running::from_state(self.compress, self.inner, BLOCK as u64);
        for part in parts {
            inner.update(part);
        }
        let mut digest = [0u8; 32];
        write_digest(&inner.finish(), &mut digest[..W * 4]);
        // The outer message is the inner digest: one block with its padding.
        let mut block = [0u8; BLOCK];
        block[..W * 4].copy_from_slice(&digest[..W * 4]);
        block[W * 4] = 0x80;
        block[BLOCK - 8..].copy_from_slice(&(((BLOCK + W * 4) * 8) as u64).to_be_bytes());
        let mut state = self.outer;
        (self.compress)(&mut state, &block);
        write_digest(&state, out);
    }

    /// Whether `expected` is the full tag of `parts`, compared in constant time.
    pub fn verify(&self, parts: &[&[u8]], expected: &[u8]) -> bool {
        let mut tag = [0u8; 32];
        self.tag(parts, &mut tag[..W * 4]);
        expected.len() == W * 4
            && tag[..W * 4]
                .iter()
                .zip(expected)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl<const W: usize> std::fmt::Debug for KeyedHmac<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyedHmac<{}>", W * 32) // never the key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::hmac;

    /// Every key length around the block size, every message length over two blocks, split
    /// into parts at varying places: the same tags as aws-lc's HMAC.
    #[test]
    fn matches_aws_lc_for_all_lengths() {
        let bytes: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        for key_len in [0, 1, 16, 20, 32, 63, 64, 65, 100, 200] {
            let key = &bytes[..key_len];
            let sha1 = KeyedHmac::new(SHA1, key);
            let sha256 = KeyedHmac::new(SHA256, key);
            let ref1 = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
            let ref256 = hmac::Key::new(hmac::HMAC_SHA256, key);
            for len in 0..150 {
                let msg = &bytes[..len];
                let cut = len / 3;
                let parts: [&[u8]; 3] = [&msg[..cut], &msg[cut..cut * 2], &msg[cut * 2..]];
                let mut t1 = [0u8; 20];
                sha1.tag(&parts, &mut t1);
                assert_eq!(t1, hmac::sign(&ref1, msg).as_ref(), "SHA-1 {key_len} {len}");
                let mut t256 = [0u8; 32];
                sha256.tag(&parts, &mut t256);
                assert_eq!(
                    t256,
                    hmac::sign(&ref256, msg).as_ref(),
                    "SHA-256 {key_len} {len}"
                );
                assert!(sha1.verify(&parts, &t1));
                t1[len % 20] ^= 1;
                assert!(!sha1.verify(&parts, &t1));
                assert!(!sha1.verify(&parts, &t1[..19]));
            }
        }
    }
}

//! The mutator: deterministic (a seeded splitmix64), so a CI failure replays exactly.

/// splitmix64: tiny, fast, and the same sequence on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Bytes that sit on parser edges in every target.
const INTERESTING: &[u8] = b"\0\r\n.: ;=<>\"\\{}[],-\t\x7f\x80\xff%+/@";

/// Tokens every target gets besides its own dictionary.
const COMMON: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b"\r\n.\r\n",
    b"\n.\n",
    b"\r.\r",
    b"\n.\r\n",
    b"\r\n.\n",
    b"\r\n\r\n",
    b"\xc3\xa9",
    b"\xf0\x9f\x98\x80",
    b"\xed\xa0\x80",
    b"=?utf-8?b?",
    b"?=",
    b"18446744073709551616",
    b"-1",
    b"4294967295",
];

/// Produces inputs from seeds: a few stacked mutations of one seed, sometimes spliced with
/// another.
pub struct Mutator {
    rng: Rng,
    seeds: Vec<Vec<u8>>,
    dict: &'static [&'static [u8]],
}

impl Mutator {
    pub fn new(rng: Rng, seeds: Vec<Vec<u8>>, dict: &'static [&'static [u8]]) -> Self {
        Self { rng, seeds, dict }
    }

    fn token(&mut self) -> &'static [u8] {
        let n = self.dict.len() + COMMON.len();
        let i = self.rng.below(n);
        if i < self.dict.len() {
            self.dict[i]
        } else {
            COMMON[i - self.dict.len()]
        }
    }

    /// The next input, at most `max_len` bytes.
    pub fn next(&mut self, max_len: usize) -> Vec<u8> {
        let i = self.rng.below(self.seeds.len());
        let mut v = self.seeds[i].clone();
        let rounds = 1 + self.rng.below(8);
        for _ in 0..rounds {
            self.mutate(&mut v, max_len);
        }
        v.truncate(max_len);
        v
    }

    fn mutate(&mut self, v: &mut Vec<u8>, max_len: usize) {
        let len = v.len();
        let pos = self.rng.below(len + 1);
        match self.rng.below(12) {
            // Flip a bit.
            0 if len > 0 => {
                let p = self.rng.below(len);
                v[p] ^= 1 << self.rng.below(8);
            }
            // An edge byte.
            1 if len > 0 => {
                let p = self.rng.below(len);
                v[p] = INTERESTING[self.rng.below(INTERESTING.len())];
            }
            // A random byte.
            2 if len > 0 => {
                let p = self.rng.below(len);
                v[p] = self.rng.next_u64() as u8;
            }
            // Insert a token.
            3 | 4 => {
                let t = self.token();
                v.splice(pos..pos, t.iter().copied());
            }
            // Replace a span with a token.
            5 if len > 0 => {
                let end = (pos + 1 + self.rng.below(16)).min(len);
                let t = self.token();
                v.splice(pos.min(end)..end, t.iter().copied());
            }
            // Delete a span.
            6 if len > 0 => {
                let end = (pos + 1 + self.rng.below(64)).min(len);
                v.drain(pos.min(end)..end);
            }
            // Duplicate a span, sometimes many times (deep nesting, long lines, floods).
            7 if len > 0 => {
                let start = self.rng.below(len);
                let end = (start + 1 + self.rng.below(128)).min(len);
                let chunk = v[start..end].to_vec();
                let times = if self.rng.chance(8) {
                    1 + self.rng.below(2000)
                } else {
                    1 + self.rng.below(4)
                };
                let mut rep = Vec::new();
                for _ in 0..times {
                    if rep.len() + chunk.len() > max_len {
                        break;
                    }
                    rep.extend_from_slice(&chunk);
                }
                v.splice(pos..pos, rep);
            }
            // Splice: this seed's head with another's tail.
            8 => {
                let other = self.seeds[self.rng.below(self.seeds.len())].clone();
                let from = self.rng.below(other.len() + 1);
                v.truncate(pos);
                v.extend_from_slice(&other[from..]);
            }
            // Truncate.
            9 => v.truncate(pos),
            // Random bytes.
            10 => {
                let n = 1 + self.rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| self.rng.next_u64() as u8).collect();
                v.splice(pos..pos, bytes);
            }
            // Change a decimal number to a boundary value.
            _ => {
                if let Some(p) = v[pos.min(len)..].iter().position(u8::is_ascii_digit) {
                    let s = pos + p;
                    let e = v[s..]
                        .iter()
                        .position(|b| !b.is_ascii_digit())
                        .map_or(len, |q| s + q);
                    let vals: [&[u8]; 6] = [
                        b"0",
                        b"1",
                        b"65536",
                        b"4294967296",
                        b"99999999999999999999",
                        b"255",
                    ];
                    let val = vals[self.rng.below(vals.len())];
                    v.splice(s..e, val.iter().copied());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_inputs() {
        let seeds = vec![b"EHLO a\r\nMAIL FROM:<a@b>\r\n".to_vec(), b"x".to_vec()];
        let mut a = Mutator::new(Rng::new(7), seeds.clone(), &[b"RCPT TO:"]);
        let mut b = Mutator::new(Rng::new(7), seeds, &[b"RCPT TO:"]);
        for _ in 0..200 {
            let x = a.next(4096);
            assert!(x.len() <= 4096);
            assert_eq!(x, b.next(4096));
        }
    }
}

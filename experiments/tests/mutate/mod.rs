//! Seeded mutations for the fuzz tests: a small, dependency-free generator (SplitMix64) and the
//! byte and YAML mutations the fuzzers apply. One seed gives one sequence of cases, so a failure
//! is reproduced by its printed case number and seed.
#![allow(dead_code)] // each fuzz binary uses a different subset

/// Cases per fuzz target: `MCD_FUZZ_CASES` (the long mode, e.g. 20000), else `default`.
pub fn cases(default: usize) -> usize {
    std::env::var("MCD_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Base seed: `MCD_FUZZ_SEED`, else a fixed one (CI runs the same cases every time).
pub fn seed() -> u64 {
    std::env::var("MCD_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_f00d)
}

/// SplitMix64.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Byte-level damage: flips, overwrites, inserts, deletes, truncation, a repeated slice, or a
/// header field set to an extreme value. Returns the mutated bytes and what was done.
pub fn mutate_bytes(rng: &mut Rng, bytes: &[u8]) -> (Vec<u8>, String) {
    let mut b = bytes.to_vec();
    let len = b.len();
    let at = |rng: &mut Rng| if len == 0 { 0 } else { rng.below(len) };
    let what = match rng.below(8) {
        0 if len > 0 => {
            let i = at(rng);
            b[i] ^= 1 << rng.below(8);
            format!("flipped a bit at {i}")
        }
        1 if len > 0 => {
            let i = at(rng);
            let n = 1 + rng.below(8).min(len - i - 1);
            for x in &mut b[i..i + n] {
                *x = rng.next_u64() as u8;
            }
            format!("overwrote {n} bytes at {i}")
        }
        2 => {
            let i = at(rng);
            let n = 1 + rng.below(16);
            let junk: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            b.splice(i..i, junk);
            format!("inserted {n} random bytes at {i}")
        }
        3 if len > 0 => {
            let i = at(rng);
            let n = 1 + rng.below(32).min(len - i - 1);
            b.drain(i..i + n);
            format!("deleted {n} bytes at {i}")
        }
        4 => {
            let keep = at(rng);
            b.truncate(keep);
            format!("truncated to {keep} bytes")
        }
        5 if len > 1 => {
            let i = at(rng);
            let n = 1 + rng.below(64).min(len - i - 1);
            let copy = b[i..i + n].to_vec();
            b.splice(i..i, copy);
            format!("repeated {n} bytes at {i}")
        }
        6 if len >= 4 => {
            // A 32-bit big-endian field (IDX headers) set to an extreme.
            let i = rng.below(len.min(16) / 4) * 4;
            let v = *rng.pick(&[0u32, 1, 0x7fff_ffff, 0xffff_ffff, 60_000, 28 * 28 + 1]);
            b[i..i + 4].copy_from_slice(&v.to_be_bytes());
            format!("set the 32-bit field at {i} to {v}")
        }
        _ => {
            // Text-level: a random line doubled or removed, or a number made extreme.
            let text = String::from_utf8_lossy(bytes).into_owned();
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            if lines.is_empty() {
                return (b, "nothing to do on an empty file".into());
            }
            let i = rng.below(lines.len());
            let what = match rng.below(3) {
                0 => {
                    let l = lines[i].clone();
                    lines.insert(i, l);
                    format!("doubled line {}", i + 1)
                }
                1 => {
                    lines.remove(i);
                    format!("removed line {}", i + 1)
                }
                _ => {
                    let v = rng.pick(&["-1", "0", "1e308", "nan", "inf", "", "x", "99999999999"]);
                    let mut fields: Vec<String> =
                        lines[i].split([',', ' ']).map(str::to_string).collect();
                    let f = rng.below(fields.len());
                    fields[f] = (*v).to_string();
                    lines[i] = fields.join(if lines[i].contains(',') { "," } else { " " });
                    format!("set a field of line {} to `{v}`", i + 1)
                }
            };
            let mut out = lines.join("\n");
            out.push('\n');
            return (out.into_bytes(), what);
        }
    };
    (b, what)
}

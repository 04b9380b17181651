//! MC passes through the first hidden Linear of an MLP without input dropout, its product
//! shared by all passes over an input.
//!
//! The plain pass computes `(m ⊙ p) Wᵀ + b` for every pass, where `p` is the deterministic
//! prefix (the same in all T passes) and `m` the first hidden dropout's mask, `s` (= 1/(1 - rate))
//! where a unit is kept and 0 where dropped. Since `m ⊙ p = s·p − s·(dropped part of p)`, the
//! product is `c − Σ_{j dropped} s·p_j W[:, j]` with `c = (s·p) Wᵀ + b` computed once per input.
//! A pass then costs only its dropped units that are non-zero (a fraction `rate` of them at
//! most; ReLU zeros cost nothing) instead of a full matmul. Exact algebra, different rounding: the
//! results agree with the plain path to float precision, not bit for bit. The masks are the
//! same bits (the same call of the same stream), so nothing else about a seeded run changes.

use crate::dropout::Dropout;

/// Output columns per tile: a tile of the packed weights (1024 inputs x 128 columns, 512 KiB,
/// contiguous so that its rows do not fight over the same cache sets) stays in the core's L2
/// cache while a block of rows goes through it.
const TILE: usize = 128;
/// Most rows in a block: each block reads every tile of the weights once from L3.
const BLOCK_ROWS: usize = 256;
/// Dropped units listed per block at most, in input rows' worth (a block ends early when the
/// next row could overflow it): bounds the list whatever the rate.
const LIST_ROWS: usize = 32;

/// Bytes [`passes`] and [`Shared::new`] use beside their inputs and output: the packed
/// weights, and per thread a row's mask and the list of dropped units of a block.
pub(crate) fn scratch_bytes(in_dim: usize, out_dim: usize, threads: usize) -> usize {
    let per_thread =
        (in_dim + 3) * size_of::<f32>() + (LIST_ROWS + 1) * in_dim * size_of::<(u32, f32)>();
    out_dim.div_ceil(TILE) * TILE * in_dim * size_of::<f32>() + threads.max(1) * per_thread
}

/// One chunk's shared work: prefix rows, their full product and the packed weights.
#[derive(Debug)]
pub(crate) struct Shared<'a> {
    /// [len, in]: the prefix rows (after the activation, before the mask).
    prefix: &'a [f32],
    /// [len, out]: `(s·prefix) Wᵀ + b`.
    product: &'a [f32],
    /// [tiles, in, TILE]: `Wᵀ` cut into column tiles, zero-padded to whole tiles.
    packed: Vec<f32>,
    len: usize,
    in_dim: usize,
    out_dim: usize,
}

impl<'a> Shared<'a> {
    /// `weight` is the Linear's [out, in] weight, row-major.
    pub fn new(prefix: &'a [f32], product: &'a [f32], weight: &[f32], in_dim: usize) -> Self {
        let out_dim = weight.len() / in_dim;
        let len = prefix.len() / in_dim;
        assert_eq!(out_dim * in_dim, weight.len(), "weight shape");
        assert_eq!(len * in_dim, prefix.len(), "prefix shape");
        assert_eq!(len * out_dim, product.len(), "product shape");
        let tiles = out_dim.div_ceil(TILE);
        let mut packed = vec![0f32; tiles * in_dim * TILE];
        for (o, w_row) in weight.chunks_exact(in_dim).enumerate() {
            let (t, c) = (o / TILE, o % TILE);
            let tile = &mut packed[t * in_dim * TILE..(t + 1) * in_dim * TILE];
            for (j, &w) in w_row.iter().enumerate() {
                tile[j * TILE + c] = w;
            }
        }
        Self {
            prefix,
            product,
            packed,
            len,
            in_dim,
            out_dim,
        }
    }
}

/// Writes `out.len() / out_dim` rows of the first hidden Linear's output, pass-major (row `r`
/// belongs to input `r % len`), with call `call` of `dropout`'s stream as their mask: the rows
/// the plain path would get from masking the prefix repeated over the passes. Uses up to
/// `threads` threads; the result does not depend on their number.
pub(crate) fn passes(sh: &Shared, dropout: &Dropout, call: u64, out: &mut [f32], threads: usize) {
    let rows = out.len() / sh.out_dim;
    assert_eq!(rows * sh.out_dim, out.len(), "whole output rows");
    let threads = threads.clamp(1, rows.max(1));
    let per = rows.div_ceil(threads);
    if threads == 1 {
        part(sh, dropout, call, 0, out);
        return;
    }
    rayon::scope(|s| {
        for (i, chunk) in out.chunks_mut(per * sh.out_dim).enumerate() {
            s.spawn(move |_| part(sh, dropout, call, i * per, chunk));
        }
    });
}

/// Rows `first_row..` into `out`, dispatched to the widest build the CPU runs.
fn part(sh: &Shared, dropout: &Dropout, call: u64, first_row: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the feature this build of the body was compiled for.
            #[allow(unsafe_code)]
            unsafe {
                return part_avx512(sh, dropout, call, first_row, out);
            }
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above, for AVX2.
            #[allow(unsafe_code)]
            unsafe {
                return part_avx2(sh, dropout, call, first_row, out);
            }
        }
    }
    part_body(sh, dropout, call, first_row, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn part_avx512(sh: &Shared, dropout: &Dropout, call: u64, first_row: usize, out: &mut [f32]) {
    part_body(sh, dropout, call, first_row, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn part_avx2(sh: &Shared, dropout: &Dropout, call: u64, first_row: usize, out: &mut [f32]) {
    part_body(sh, dropout, call, first_row, out)
}

/// The body every build shares: plain multiplies and subtractions (no FMA contraction), so
/// all builds compute the same floats.
#[inline(always)]
fn part_body(sh: &Shared, dropout: &Dropout, call: u64, first_row: usize, out: &mut [f32]) {
    let (ind, outd) = (sh.in_dim, sh.out_dim);
    let rows = out.len() / outd;
    // A row's mask, drawn from the multiple of 4 at or before its start (where mask ranges
    // must begin).
    let mut mask = vec![0f32; ind + 3];
    // Dropped non-zero units of the block's rows: (input unit, s·p_j); where each row's ends.
    let cap = LIST_ROWS * ind;
    let mut dropped: Vec<(u32, f32)> = Vec::with_capacity(cap + ind);
    let mut ends = Vec::with_capacity(BLOCK_ROWS);
    let mut r0 = 0;
    while r0 < rows {
        dropped.clear();
        ends.clear();
        let mut r = r0;
        while r < rows && r - r0 < BLOCK_ROWS && (r == r0 || dropped.len() + ind <= cap) {
            let row = first_row + r;
            // Row `row` of the mask over the repeated prefix, as the plain path draws it.
            let skip = row * ind % 4;
            dropout.fill_range(call, row * ind - skip, &mut mask[..skip + ind], 1);
            let p = &sh.prefix[(row % sh.len) * ind..][..ind];
            list_dropped(&mask[skip..skip + ind], p, dropout.scale(), &mut dropped);
            ends.push(dropped.len());
            r += 1;
        }
        let block = &mut out[r0 * outd..r * outd];
        subtract_block(sh, first_row + r0, &dropped, &ends, block);
        r0 = r;
    }
}

/// Appends (j, scale·p_j) for every unit j the mask drops where p_j is non-zero.
#[inline(always)]
fn list_dropped(mask: &[f32], p: &[f32], scale: f32, dropped: &mut Vec<(u32, f32)>) {
    const W: usize = 16;
    let mut m16 = mask.chunks_exact(W);
    let mut p16 = p.chunks_exact(W);
    for (base, (m, p)) in (0..).step_by(W).zip((&mut m16).zip(&mut p16)) {
        // Branch-free test of 16 units, then one step per dropped unit (a tenth of them).
        let mut bits = 0u32;
        for i in 0..W {
            bits |= u32::from((m[i] == 0.0) & (p[i] != 0.0)) << i;
        }
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            dropped.push(((base + i) as u32, scale * p[i]));
            bits &= bits - 1;
        }
    }
    let base = mask.len() - m16.remainder().len();
    for (i, (&m, &p)) in m16.remainder().iter().zip(p16.remainder()).enumerate() {
        if m == 0.0 && p != 0.0 {
            dropped.push(((base + i) as u32, scale * p));
        }
    }
}

/// Rows `row0..` of the output (`block`) from the product and the listed dropped units, one
/// column tile at a time.
#[inline(always)]
fn subtract_block(
    sh: &Shared,
    row0: usize,
    dropped: &[(u32, f32)],
    ends: &[usize],
    block: &mut [f32],
) {
    let (ind, outd) = (sh.in_dim, sh.out_dim);
    for (t, tile) in sh.packed.chunks_exact(ind * TILE).enumerate() {
        let t0 = t * TILE;
        let width = TILE.min(outd - t0);
        let mut start = 0;
        for (r, &end) in ends.iter().enumerate() {
            let n = (row0 + r) % sh.len;
            let base = &sh.product[n * outd + t0..][..width];
            // A whole tile's copies have a fixed size (inlined, not memcpy calls).
            let mut acc: [f32; TILE] = match base.try_into() {
                Ok(whole) => whole,
                Err(_) => {
                    let mut acc = [0f32; TILE];
                    acc[..width].copy_from_slice(base);
                    acc
                }
            };
            for &(j, a) in &dropped[start..end] {
                let w: &[f32; TILE] = tile[j as usize * TILE..][..TILE]
                    .try_into()
                    .expect("a whole tile row");
                for (x, &wk) in acc.iter_mut().zip(w) {
                    *x -= a * wk;
                }
            }
            start = end;
            let dst = &mut block[r * outd + t0..][..width];
            match <&mut [f32; TILE]>::try_from(&mut *dst) {
                Ok(whole) => *whole = acc,
                Err(_) => dst.copy_from_slice(&acc[..width]),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1), a third of them zero (like a ReLU's output).
    fn values(n: usize, salt: u64) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let h = crate::rng::splitmix64(salt ^ i as u64);
                if h.is_multiple_of(3) {
                    0.0
                } else {
                    (h >> 40) as f32 / (1u64 << 23) as f32 - 1.0
                }
            })
            .collect()
    }

    #[test]
    fn passes_follow_the_definition_for_any_thread_count_and_build() {
        // 300 output columns: two whole tiles and a part; 7 inputs, 3 passes of them.
        let (len, ind, outd, passes_n) = (7, 50, 300, 3);
        let prefix = values(len * ind, 1);
        let product = values(len * outd, 2);
        let weight = values(outd * ind, 3);
        let sh = Shared::new(&prefix, &product, &weight, ind);
        let dropout = Dropout::new(0.2, 4);
        let call = 6;
        let rows = passes_n * len;
        let mask = dropout.mask(call, rows * ind);
        // The definition: product minus each dropped unit's s·p_j times its weight column.
        let mut want = vec![0f32; rows * outd];
        for r in 0..rows {
            let n = r % len;
            for o in 0..outd {
                let mut v = product[n * outd + o];
                for j in 0..ind {
                    if mask[r * ind + j] == 0.0 {
                        v -= dropout.scale() * prefix[n * ind + j] * weight[o * ind + j];
                    }
                }
                want[r * outd + o] = v;
            }
        }
        let run = |threads: usize| {
            let mut out = vec![f32::NAN; rows * outd];
            passes(&sh, &dropout, call, &mut out, threads);
            out
        };
        let one = run(1);
        for (got, want) in one.iter().zip(&want) {
            assert!((got - want).abs() <= 1e-5, "{got} vs {want}");
        }
        for threads in [2, 3, 64] {
            assert_eq!(run(threads), one, "{threads} threads");
        }
        // The baseline build computes the same floats as the dispatched one.
        let mut baseline = vec![f32::NAN; rows * outd];
        part_body(&sh, &dropout, call, 0, &mut baseline);
        assert_eq!(baseline, one);
    }
}

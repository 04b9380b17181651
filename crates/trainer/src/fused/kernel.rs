//! One member's training step (forward, backward, Adam) as plain loops over f32 slices.
//!
//! Layout: activations are feature-major, `[width, bp]`, with the batch padded to `bp`, a
//! multiple of [`LANES`], so that every inner loop runs over eight contiguous batch rows: one
//! AVX2 register. Weights are as the stack holds them, `[in, out]` row-major.
//!
//! Every output element is one fixed chain of fused multiply-adds (`f32::mul_add`, correctly
//! rounded everywhere), and every reduction a fixed eight-lane pattern, so the baseline
//! x86-64 build (where `mul_add` is a libm call) and the AVX2+FMA build compute the same bits:
//! the build only changes the speed, never the result (tested). The body is compiled twice
//! and picked at run time, as the dropout mask kernel is.

/// Batch rows per vector; `bp` is a multiple of this.
pub const LANES: usize = 8;

/// The shape of one member: `widths[0]` inputs, hidden widths, `widths[L]` outputs.
#[derive(Debug, Clone)]
pub struct Shape {
    pub widths: Vec<usize>,
}

impl Shape {
    /// Number of weight layers.
    pub fn layers(&self) -> usize {
        self.widths.len() - 1
    }

    /// Offsets of layer l's weight `[in, out]` and bias `[out]` in the flat parameter vector
    /// (layer by layer: weight, then bias).
    pub fn offsets(&self) -> Vec<(usize, usize)> {
        let mut at = 0;
        self.widths
            .windows(2)
            .map(|w| {
                let (wo, bo) = (at, at + w[0] * w[1]);
                at = bo + w[1];
                (wo, bo)
            })
            .collect()
    }

    /// Parameters of one member.
    pub fn parameters(&self) -> usize {
        self.widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }
}

/// Buffers of one worker, reused for every member and step.
#[derive(Debug)]
pub struct Scratch {
    /// Input of each layer, `[widths[l], bp]` (layer 0: the masked batch).
    acts: Vec<Vec<f32>>,
    /// Output `[widths[L], bp]`.
    out: Vec<f32>,
    /// Gradient with respect to the current layer's pre-activation, and the one below.
    dz: Vec<f32>,
    dz_below: Vec<f32>,
    /// Dropout masks, `[rows, width]` row-major as the stream draws them, per position.
    pub masks: Vec<Vec<f32>>,
    /// A hidden mask transposed to the activations' layout.
    mask_t: Vec<f32>,
    bp: usize,
}

impl Scratch {
    pub fn new(shape: &Shape, batch: usize) -> Self {
        let bp = batch.div_ceil(LANES) * LANES;
        let widest = shape.widths.iter().copied().max().unwrap_or(1);
        let l = shape.layers();
        Self {
            acts: shape.widths[..l]
                .iter()
                .map(|&w| vec![0.0; w * bp])
                .collect(),
            out: vec![0.0; shape.widths[l] * bp],
            dz: vec![0.0; widest * bp],
            dz_below: vec![0.0; widest * bp],
            masks: shape.widths[..l]
                .iter()
                .map(|&w| vec![0.0; w * batch])
                .collect(),
            mask_t: vec![0.0; widest * bp],
            bp,
        }
    }

    /// Output unit c of the last [`forward`], for the batch's rows (`[k, bp]` row-major; the
    /// first `rows` entries of each unit's row are the batch's).
    pub fn output(&self) -> &[f32] {
        &self.out
    }

    /// The padded batch width: the stride of [`Scratch::output`]'s rows.
    pub fn stride(&self) -> usize {
        self.bp
    }
}

/// One member's batch: `rows` row indices into `x` (`[n, widths[0]]`) and `y` (`[n, k]`),
/// which dropout positions have a mask in [`Scratch::masks`] (filled for `rows.len()`), and
/// each position's kept value (the mask's non-zero value; None where nothing drops).
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    pub x: &'a [f32],
    pub y: &'a [f32],
    pub rows: &'a [usize],
    pub masked: &'a [bool],
    pub kept: &'a [Option<f32>],
}

/// Whether this CPU runs the AVX2 + FMA build of the body.
#[cfg(target_arch = "x86_64")]
fn avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// The per-member loss `0.5 * mean over rows of the summed squared error` of `batch` and its
/// gradient with respect to `params`, written into `grad` (overwritten). The dispatching entry.
pub fn loss_and_grad(
    shape: &Shape,
    params: &[f32],
    batch: Batch,
    scratch: &mut Scratch,
    grad: &mut [f32],
) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2_fma() {
            // SAFETY: the CPU has the features this build of the body was compiled for.
            #[allow(unsafe_code)]
            unsafe {
                return loss_and_grad_avx2(shape, params, batch, scratch, grad);
            }
        }
    }
    loss_and_grad_body::<false>(shape, params, batch, scratch, grad)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn loss_and_grad_avx2(
    shape: &Shape,
    params: &[f32],
    batch: Batch,
    scratch: &mut Scratch,
    grad: &mut [f32],
) -> f32 {
    loss_and_grad_body::<true>(shape, params, batch, scratch, grad)
}

/// The body; `SIMD` (only inside [`loss_and_grad_avx2`], i.e. after the CPU check) runs the
/// multiply-add blocks with AVX2 intrinsics, which compute the same bits as the portable
/// blocks (the tests compare `loss_and_grad_body::<false>` with the dispatched build).
#[inline(always)]
pub(super) fn loss_and_grad_body<const SIMD: bool>(
    shape: &Shape,
    params: &[f32],
    batch: Batch,
    s: &mut Scratch,
    grad: &mut [f32],
) -> f32 {
    forward_body::<SIMD>(shape, params, batch, s);
    let layers = shape.layers();
    let w = &shape.widths;
    let offsets = shape.offsets();
    let len = batch.rows.len();
    let bp = s.bp;
    let k = w[layers];

    // Loss and its gradient with respect to the output.
    let inv_len = 1.0 / len as f32;
    let mut loss = 0f32;
    for c in 0..k {
        let o = &s.out[c * bp..(c + 1) * bp];
        let g = &mut s.dz[c * bp..(c + 1) * bp];
        for (i, &r) in batch.rows.iter().enumerate() {
            let e = o[i] - batch.y[r * k + c];
            loss += e * e;
            g[i] = e * inv_len;
        }
        g[len..].fill(0.0);
    }

    // Backward.
    for l in (0..layers).rev() {
        let (wo, bo) = offsets[l];
        let (n_in, n_out) = (w[l], w[l + 1]);
        let a = &s.acts[l];
        let dz = &s.dz[..n_out * bp];
        weight_grad::<SIMD>(a, n_in, dz, n_out, bp, &mut grad[wo..wo + n_in * n_out]);
        for (c, g) in grad[bo..bo + n_out].iter_mut().enumerate() {
            *g = lane_sum(&dz[c * bp..(c + 1) * bp]);
        }
        if l == 0 {
            break;
        }
        let below = &mut s.dz_below[..n_in * bp];
        coef_times::<SIMD>(
            &params[wo..wo + n_in * n_out],
            n_out,
            1,
            n_in,
            n_out,
            dz,
            bp,
            below,
        );
        // Through the mask and the ReLU: a > 0 exactly where the unit was active and kept,
        // and there the mask is the kept value (libtorch: dh * mask, then zero where a <= 0).
        let kept = batch.kept[l];
        for j in 0..n_in {
            let g = &mut below[j * bp..j * bp + len];
            let act = &a[j * bp..j * bp + len];
            match kept {
                Some(k) => {
                    for (g, &x) in g.iter_mut().zip(act) {
                        *g = if x > 0.0 { *g * k } else { 0.0 };
                    }
                }
                None => {
                    for (g, &x) in g.iter_mut().zip(act) {
                        *g = if x > 0.0 { *g } else { 0.0 };
                    }
                }
            }
            below[j * bp + len..(j + 1) * bp].fill(0.0);
        }
        std::mem::swap(&mut s.dz, &mut s.dz_below);
    }
    loss * 0.5 * inv_len
}

/// The net's output on `batch` (masks applied where `batch.masked` says) into the scratch's
/// output, `[k, bp]` ([`Scratch::output`]); the dispatching entry, as [`loss_and_grad`].
pub fn forward(shape: &Shape, params: &[f32], batch: Batch, scratch: &mut Scratch) {
    #[cfg(target_arch = "x86_64")]
    {
        if avx2_fma() {
            // SAFETY: the CPU has the features this build of the body was compiled for.
            #[allow(unsafe_code)]
            unsafe {
                forward_avx2(shape, params, batch, scratch);
            }
            return;
        }
    }
    forward_body::<false>(shape, params, batch, scratch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn forward_avx2(shape: &Shape, params: &[f32], batch: Batch, scratch: &mut Scratch) {
    forward_body::<true>(shape, params, batch, scratch)
}

/// The forward half of [`loss_and_grad_body`]: every layer's input kept in the scratch.
#[inline(always)]
fn forward_body<const SIMD: bool>(shape: &Shape, params: &[f32], batch: Batch, s: &mut Scratch) {
    let layers = shape.layers();
    let w = &shape.widths;
    let offsets = shape.offsets();
    let len = batch.rows.len();
    let bp = s.bp;
    debug_assert!(len <= bp && len > 0);

    // Gather the batch transposed, the input mask applied (x * m, as the batched forward).
    let d = w[0];
    {
        let a0 = &mut s.acts[0];
        let mask = batch.masked[0].then_some(&s.masks[0]);
        for (i, &r) in batch.rows.iter().enumerate() {
            let row = &batch.x[r * d..(r + 1) * d];
            for (j, &v) in row.iter().enumerate() {
                a0[j * bp + i] = match mask {
                    Some(m) => v * m[i * d + j],
                    None => v,
                };
            }
        }
        for j in 0..d {
            a0[j * bp + len..(j + 1) * bp].fill(0.0);
        }
    }

    // Forward.
    for l in 0..layers {
        let (wo, bo) = offsets[l];
        let (n_in, n_out) = (w[l], w[l + 1]);
        let (below, above) = s.acts.split_at_mut(l + 1);
        let dst: &mut [f32] = if l + 1 == layers {
            &mut s.out
        } else {
            &mut above[0]
        };
        coef_times::<SIMD>(
            &params[wo..wo + n_in * n_out],
            1,
            n_out,
            n_out,
            n_in,
            &below[l],
            bp,
            dst,
        );
        let bias = &params[bo..bo + n_out];
        let hidden = l + 1 < layers;
        let mask = (hidden && batch.masked[l + 1]).then(|| {
            transpose(&s.masks[l + 1], len, n_out, bp, &mut s.mask_t);
            &s.mask_t
        });
        for (c, &b) in bias.iter().enumerate() {
            let row = &mut dst[c * bp..(c + 1) * bp];
            for v in &mut row[..len] {
                *v += b;
            }
            if hidden {
                // `!(v <= 0)` keeps NaN, as libtorch's relu does.
                let relu = |v: f32| if v <= 0.0 { 0.0 } else { v };
                match mask {
                    Some(m) => {
                        for (v, &k) in row[..len].iter_mut().zip(&m[c * bp..c * bp + len]) {
                            *v = relu(*v) * k;
                        }
                    }
                    None => {
                        for v in &mut row[..len] {
                            *v = relu(*v);
                        }
                    }
                }
            }
            row[len..].fill(0.0);
        }
    }
}

/// `t[c, i] = m[i, c]` for `i < rows`, `c < width` (`m` `[rows, width]`, `t` `[width, bp]`),
/// eight rows at a time so that every write is a run of eight.
#[inline(always)]
fn transpose(m: &[f32], rows: usize, width: usize, bp: usize, t: &mut [f32]) {
    let m = &m[..rows * width];
    let mut i0 = 0;
    while i0 + LANES <= rows {
        let block = &m[i0 * width..(i0 + LANES) * width];
        for c in 0..width {
            let out: &mut [f32] = &mut t[c * bp + i0..c * bp + i0 + LANES];
            for (ii, o) in out.iter_mut().enumerate() {
                *o = block[ii * width + c];
            }
        }
        i0 += LANES;
    }
    for i in i0..rows {
        for c in 0..width {
            t[c * bp + i] = m[i * width + c];
        }
    }
}

/// `out[r, i] = sum_q coef[r * rs + q * qs] * src[q, i]` for `r < rows`, `q < depth`, every
/// `i < bp`; `src` is `[depth, bp]`, `out` `[rows, bp]`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn coef_times<const SIMD: bool>(
    coef: &[f32],
    rs: usize,
    qs: usize,
    rows: usize,
    depth: usize,
    src: &[f32],
    bp: usize,
    out: &mut [f32],
) {
    let mut r0 = 0;
    while r0 < rows {
        let left = rows - r0;
        let mut i0 = 0;
        while i0 < bp {
            let wide = bp - i0 >= 2 * LANES;
            match (left.min(4), wide) {
                (4, true) => coef_block::<4, 2, SIMD>(coef, rs, qs, r0, depth, src, bp, i0, out),
                (4, false) => coef_block::<4, 1, SIMD>(coef, rs, qs, r0, depth, src, bp, i0, out),
                (3, true) => coef_block::<3, 2, SIMD>(coef, rs, qs, r0, depth, src, bp, i0, out),
                (3, false) => coef_block::<3, 1, SIMD>(coef, rs, qs, r0, depth, src, bp, i0, out),
                (2, true) => coef_block::<2, 2, SIMD>(coef, rs, qs, r0, depth, src, bp, i0, out),
                (2, false) => coef_block::<2, 1, SIMD>(coef, rs, qs, r0, depth, src, bp, i0, out),
                (_, true) => coef_block::<1, 2, SIMD>(coef, rs, qs, r0, depth, src, bp, i0, out),
                (_, false) => coef_block::<1, 1, SIMD>(coef, rs, qs, r0, depth, src, bp, i0, out),
            }
            i0 += if wide { 2 * LANES } else { LANES };
        }
        r0 += left.min(4);
    }
}

/// [`coef_times`] for rows `r0..r0 + R` and batch columns `i0..i0 + V * LANES`: R x V
/// accumulator vectors held in registers over the whole depth.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn coef_block<const R: usize, const V: usize, const SIMD: bool>(
    coef: &[f32],
    rs: usize,
    qs: usize,
    r0: usize,
    depth: usize,
    src: &[f32],
    bp: usize,
    i0: usize,
    out: &mut [f32],
) {
    // Every index below is in bounds (the intrinsics read without checks).
    assert!(depth > 0 && (r0 + R - 1) * rs + (depth - 1) * qs < coef.len());
    assert!((depth - 1) * bp + i0 + V * LANES <= src.len());
    assert!((r0 + R - 1) * bp + i0 + V * LANES <= out.len());
    #[cfg(target_arch = "x86_64")]
    if SIMD {
        // SAFETY: SIMD is true only inside `loss_and_grad_avx2`, which runs after the CPU
        // check; the asserts above bound every offset the block reads and writes.
        #[allow(unsafe_code)]
        unsafe {
            simd::coef_block::<R, V>(coef, rs, qs, r0, depth, src, bp, i0, out);
        }
        return;
    }
    let mut acc = [[[0f32; LANES]; V]; R];
    for q in 0..depth {
        let s: &[f32] = &src[q * bp + i0..q * bp + i0 + V * LANES];
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let c = coef[(r0 + r) * rs + q * qs];
            for (v, acc_v) in acc_r.iter_mut().enumerate() {
                for (l, a) in acc_v.iter_mut().enumerate() {
                    *a = c.mul_add(s[v * LANES + l], *a);
                }
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        let row = (r0 + r) * bp + i0;
        for (v, acc_v) in acc_r.iter().enumerate() {
            out[row + v * LANES..row + (v + 1) * LANES].copy_from_slice(acc_v);
        }
    }
}

/// `g[j, c] = sum_i a[j, i] * dz[c, i]` (`a` `[n_in, bp]`, `dz` `[n_out, bp]`, `g`
/// `[n_in, n_out]`): blocks of 4 x 2 dot products, eight lanes each.
#[inline(always)]
fn weight_grad<const SIMD: bool>(
    a: &[f32],
    n_in: usize,
    dz: &[f32],
    n_out: usize,
    bp: usize,
    g: &mut [f32],
) {
    let mut j0 = 0;
    while j0 < n_in {
        let rj = (n_in - j0).min(4);
        let mut c0 = 0;
        while c0 < n_out {
            let rc = (n_out - c0).min(2);
            match (rj, rc) {
                (4, 2) => dot_block::<4, 2, SIMD>(a, j0, dz, c0, n_out, bp, g),
                (4, _) => dot_block::<4, 1, SIMD>(a, j0, dz, c0, n_out, bp, g),
                (3, 2) => dot_block::<3, 2, SIMD>(a, j0, dz, c0, n_out, bp, g),
                (3, _) => dot_block::<3, 1, SIMD>(a, j0, dz, c0, n_out, bp, g),
                (2, 2) => dot_block::<2, 2, SIMD>(a, j0, dz, c0, n_out, bp, g),
                (2, _) => dot_block::<2, 1, SIMD>(a, j0, dz, c0, n_out, bp, g),
                (_, 2) => dot_block::<1, 2, SIMD>(a, j0, dz, c0, n_out, bp, g),
                (_, _) => dot_block::<1, 1, SIMD>(a, j0, dz, c0, n_out, bp, g),
            }
            c0 += rc;
        }
        j0 += rj;
    }
}

#[inline(always)]
fn dot_block<const RJ: usize, const RC: usize, const SIMD: bool>(
    a: &[f32],
    j0: usize,
    dz: &[f32],
    c0: usize,
    n_out: usize,
    bp: usize,
    g: &mut [f32],
) {
    assert!((j0 + RJ) * bp <= a.len() && (c0 + RC) * bp <= dz.len());
    assert!((j0 + RJ - 1) * n_out + c0 + RC <= g.len() && bp.is_multiple_of(LANES));
    #[cfg(target_arch = "x86_64")]
    if SIMD {
        // SAFETY: as in `coef_block`: after the CPU check, offsets bounded by the asserts.
        #[allow(unsafe_code)]
        unsafe {
            simd::dot_block::<RJ, RC>(a, j0, dz, c0, n_out, bp, g);
        }
        return;
    }
    let mut acc = [[[0f32; LANES]; RC]; RJ];
    for i in (0..bp).step_by(LANES) {
        let mut b = [[0f32; LANES]; RC];
        for (c, bc) in b.iter_mut().enumerate() {
            bc.copy_from_slice(&dz[(c0 + c) * bp + i..(c0 + c) * bp + i + LANES]);
        }
        for (j, acc_j) in acc.iter_mut().enumerate() {
            let av: &[f32] = &a[(j0 + j) * bp + i..(j0 + j) * bp + i + LANES];
            for (c, acc_c) in acc_j.iter_mut().enumerate() {
                for l in 0..LANES {
                    acc_c[l] = av[l].mul_add(b[c][l], acc_c[l]);
                }
            }
        }
    }
    for (j, acc_j) in acc.iter().enumerate() {
        for (c, acc_c) in acc_j.iter().enumerate() {
            g[(j0 + j) * n_out + c0 + c] = reduce(acc_c);
        }
    }
}

/// The eight lanes summed in a fixed tree.
#[inline(always)]
fn reduce(v: &[f32; LANES]) -> f32 {
    ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]))
}

/// Sum of a row of `bp` values (a multiple of [`LANES`]) in eight lanes.
#[inline(always)]
fn lane_sum(row: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    for chunk in row.chunks_exact(LANES) {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += v;
        }
    }
    reduce(&acc)
}

/// Adam's constants for one step (PyTorch's rule, in f32 as libtorch computes it on f32
/// tensors: decay added to the gradient, bias-corrected moments, eps after the square root).
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    pub b1: f32,
    pub one_minus_b1: f32,
    pub b2: f32,
    pub one_minus_b2: f32,
    /// `-lr / (1 - b1^t)`.
    pub step: f32,
    /// `sqrt(1 - b2^t)`.
    pub bc2_sqrt: f32,
    pub eps: f32,
}

impl AdamStep {
    pub fn new(lr: f64, beta1: f64, beta2: f64, eps: f64, t: i32) -> Self {
        let bc1 = 1.0 - beta1.powi(t);
        Self {
            b1: beta1 as f32,
            one_minus_b1: (1.0 - beta1) as f32,
            b2: beta2 as f32,
            one_minus_b2: (1.0 - beta2) as f32,
            step: (-lr / bc1) as f32,
            bc2_sqrt: (1.0 - beta2.powi(t)).sqrt() as f32,
            eps: eps as f32,
        }
    }

    /// Updates `p` with gradient `g` (plus `decay * p` when `decay` is not 0) and moments m, v.
    #[inline]
    pub fn apply(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], decay: f32) {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = if decay != 0.0 { g + decay * *p } else { g };
            *m = *m * self.b1 + g * self.one_minus_b1;
            *v = *v * self.b2 + (g * self.one_minus_b2) * g;
            let denom = v.sqrt() / self.bc2_sqrt + self.eps;
            *p += (*m * self.step) / denom;
        }
    }
}

/// The two multiply-add blocks with AVX2 + FMA intrinsics: lane for lane the arithmetic of the
/// portable blocks (`_mm256_fmadd_ps` is `mul_add`; the lanes are reduced in [`reduce`]'s tree).
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod simd {
    use super::LANES;
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU has AVX2 and FMA; the caller checked that every offset is in bounds.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn coef_block<const R: usize, const V: usize>(
        coef: &[f32],
        rs: usize,
        qs: usize,
        r0: usize,
        depth: usize,
        src: &[f32],
        bp: usize,
        i0: usize,
        out: &mut [f32],
    ) {
        let mut acc = [[_mm256_setzero_ps(); V]; R];
        let c = coef.as_ptr();
        let s = src.as_ptr();
        for q in 0..depth {
            let row = s.add(q * bp + i0);
            let mut sv = [_mm256_setzero_ps(); V];
            for (v, x) in sv.iter_mut().enumerate() {
                *x = _mm256_loadu_ps(row.add(v * LANES));
            }
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let k = _mm256_set1_ps(*c.add((r0 + r) * rs + q * qs));
                for (a, &x) in acc_r.iter_mut().zip(&sv) {
                    *a = _mm256_fmadd_ps(k, x, *a);
                }
            }
        }
        let o = out.as_mut_ptr();
        for (r, acc_r) in acc.iter().enumerate() {
            for (v, a) in acc_r.iter().enumerate() {
                _mm256_storeu_ps(o.add((r0 + r) * bp + i0 + v * LANES), *a);
            }
        }
    }

    /// # Safety
    /// As [`coef_block`].
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot_block<const RJ: usize, const RC: usize>(
        a: &[f32],
        j0: usize,
        dz: &[f32],
        c0: usize,
        n_out: usize,
        bp: usize,
        g: &mut [f32],
    ) {
        let mut acc = [[_mm256_setzero_ps(); RC]; RJ];
        let (ap, dp) = (a.as_ptr(), dz.as_ptr());
        let mut i = 0;
        while i < bp {
            let mut b = [_mm256_setzero_ps(); RC];
            for (c, x) in b.iter_mut().enumerate() {
                *x = _mm256_loadu_ps(dp.add((c0 + c) * bp + i));
            }
            for (j, acc_j) in acc.iter_mut().enumerate() {
                let av = _mm256_loadu_ps(ap.add((j0 + j) * bp + i));
                for (x, &bc) in acc_j.iter_mut().zip(&b) {
                    *x = _mm256_fmadd_ps(av, bc, *x);
                }
            }
            i += LANES;
        }
        let gp = g.as_mut_ptr();
        for (j, acc_j) in acc.iter().enumerate() {
            for (c, x) in acc_j.iter().enumerate() {
                // ((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7)), as `reduce`.
                let s = _mm_add_ps(_mm256_castps256_ps128(*x), _mm256_extractf128_ps::<1>(*x));
                let t = _mm_add_ps(s, _mm_movehl_ps(s, s));
                let r = _mm_add_ss(t, _mm_shuffle_ps::<1>(t, t));
                *gp.add((j0 + j) * n_out + c0 + c) = _mm_cvtss_f32(r);
            }
        }
    }
}

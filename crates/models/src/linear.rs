//! Large dense layers on the CPU through oneDNN's inner product.
//!
//! libtorch's `linear` on f32 CPU tensors calls MKL's sgemm. On this project's AMD machines
//! that ran the CO2 net's 1024 x 1024 layers at 100 to 140 GFLOP/s in MC prediction, and swung
//! between runs; oneDNN's inner product, in the same libtorch, at 160 to 200 with its two
//! layout copies included (training steps: 3 to 8 % faster). On 256 x 256 layers oneDNN was
//! 12 % slower, so only layers of [`ONEDNN_MIN_WEIGHTS`] weights or more use it. Both paths
//! are differentiable (`to_mkldnn`, `mkldnn_linear` and `to_dense` have backward formulas), so
//! training and MC prediction of one batch run the same kernel and give the same floats; the
//! two kernels differ by float rounding (about 1e-6 relative).
//!
//! oneDNN reorders the weight matrix into its own layout on every call: a transient copy of
//! the weights ([`scratch_bytes`]), which MC prediction's memory plan reserves. Below
//! [`ONEDNN_MIN_ROWS`] rows that copy would outweigh the activations, and MKL is used.

use std::sync::OnceLock;

use tch::{Device, Kind, Tensor};

/// Fewest input rows sent to oneDNN.
pub const ONEDNN_MIN_ROWS: usize = 256;
/// Fewest weights (in x out) of a layer sent to oneDNN.
pub const ONEDNN_MIN_WEIGHTS: usize = 512 * 512;

/// `xs.linear(w, Some(b))`, through oneDNN for 2-D CPU f32 inputs of at least
/// [`ONEDNN_MIN_ROWS`] rows and weights of at least [`ONEDNN_MIN_WEIGHTS`], where libtorch has
/// it.
pub(crate) fn linear(xs: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
    let rows = xs.size().first().copied().unwrap_or(0) as usize;
    if xs.dim() == 2 && xs.kind() == Kind::Float && uses_onednn(w, rows) {
        // Each copy is dropped as soon as the next exists.
        let packed = xs.g_to_mkldnn(None);
        let out = packed.mkldnn_linear(w, Some(b));
        drop(packed);
        return out.to_dense(None, false);
    }
    xs.linear(w, Some(b))
}

/// Whether a batch of `rows` rows through the layer of weight `w` goes to oneDNN.
pub(crate) fn uses_onednn(w: &Tensor, rows: usize) -> bool {
    w.device() == Device::Cpu
        && w.kind() == Kind::Float
        && rows >= ONEDNN_MIN_ROWS
        && w.numel() >= ONEDNN_MIN_WEIGHTS
        && onednn()
}

/// Transient bytes beside the activations when a batch of `rows` runs through a layer with
/// weight `w`: oneDNN's reordered copy of the weights, or nothing.
pub(crate) fn scratch_bytes(w: &Tensor, rows: usize) -> usize {
    if uses_onednn(w, rows) {
        w.numel() * 4
    } else {
        0
    }
}

/// Whether this libtorch was built with oneDNN (MKLDNN): asked once, with a tiny layer.
fn onednn() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        let ones = |shape: &[i64]| Tensor::ones(shape, (Kind::Float, Device::Cpu));
        ones(&[1, 2])
            .f_to_mkldnn(None)
            .and_then(|x| x.f_mkldnn_linear(&ones(&[1, 2]), Some(&ones(&[1]))))
            .and_then(|y| y.f_to_dense(None, false))
            .is_ok()
    })
}

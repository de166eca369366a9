// Forward/backward pairs of the elementary operations of DeepSeek-V3 training, on row-major
// activations [N, features] (one row per token). Each backward adds into the gradients it is
// given (+=), so a tensor used twice (the shared embedding and head, a residual stream)
// collects both contributions. Templated on the scalar: float32 for training, double for the
// finite-difference checks (tests/train/). research/training.md §6 has the math.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "reference/model/rope.h"
#include "reference/model/tensor.h"

namespace dsv3::train {

// ---- Linear: y = x W^T (nn.Linear, W [out, in]) ---------------------------------------------
template <class S>
MatT<S> linear_fwd(const MatT<S>& x, const MatT<S>& w);
// dx += dy W; dW += dy^T x. dx may be null (the input needs no gradient).
template <class S>
void linear_bwd(const MatT<S>& x, const MatT<S>& w, const MatT<S>& dy, MatT<S>* dx, MatT<S>& dw);
// Plain loops: the same two products, for tests of the Eigen form.
template <class S>
void linear_bwd_reference(const MatT<S>& x, const MatT<S>& w, const MatT<S>& dy, MatT<S>& dx,
                          MatT<S>& dw);

// ---- RMSNorm (eps from the config): y = g * x / r, r = sqrt(mean x^2 + eps) ----------------
template <class S>
struct RmsCache {
  VecT<S> inv_r;  // 1/r per row  [N]
};
template <class S>
MatT<S> rms_norm_fwd(const MatT<S>& x, const VecT<S>& g, double eps, RmsCache<S>& cache);
// training.md §6.1: dg_k += sum_rows dy_k x_k / r;
// dx += (g*dy)/r - x * sum_k(g_k dy_k x_k) / (n r^3).
template <class S>
void rms_norm_bwd(const MatT<S>& x, const VecT<S>& g, const RmsCache<S>& cache, const MatT<S>& dy,
                  MatT<S>& dx, VecT<S>& dg);

// ---- SwiGLU FFN: y = W2 (silu(W1 x) * (W3 x)) -----------------------------------------------
template <class S>
struct SwigluCache {
  MatT<S> a, b;  // W1 x and W3 x [N, inter] (the paper caches these; h is recomputed, §3.3.3)
};
template <class S>
MatT<S> swiglu_fwd(const MatT<S>& x, const MatT<S>& w1, const MatT<S>& w3, const MatT<S>& w2,
                   SwigluCache<S>& cache);
// training.md §6.3. dx += W1^T da + W3^T db; dW1, dW3, dW2 +=.
template <class S>
void swiglu_bwd(const MatT<S>& x, const MatT<S>& w1, const MatT<S>& w3, const MatT<S>& w2,
                const SwigluCache<S>& cache, const MatT<S>& dy, MatT<S>& dx, MatT<S>& dw1,
                MatT<S>& dw3, MatT<S>& dw2);

// ---- Decoupled RoPE (interleaved pairs, YaRN-corrected frequencies) --------------------------
// Rotates, in every row r, the `heads` dim-wide slices starting at column `col0` with stride
// `stride`, at position positions[r]. With inverse = true it applies the transpose, which is the
// backward of the forward rotation (the rotation is orthogonal up to YaRN's attention_factor,
// which scales both and so stays in the transpose).
template <class S>
void rope_rows(const model::RopeTable& rope, MatT<S>& x, std::span<const int64_t> positions,
               int64_t col0, int64_t stride, int64_t heads, bool inverse);

// ---- Causal softmax attention of one head over one sequence --------------------------------
// q [n, dk], k [n, dk], v [n, dv]: P = softmax(scale q k^T) with j <= t (eq. 10), o = P v.
template <class S>
MatT<S> attention_fwd(const MatT<S>& q, const MatT<S>& k, const MatT<S>& v, S scale, MatT<S>& p);
// training.md §6.4: dV = P^T dO; dP = dO V^T; dS = P*(dP - rowsum(dP*P)); dQ = scale dS K;
// dK = scale dS^T Q. Outputs are overwritten.
template <class S>
void attention_bwd(const MatT<S>& q, const MatT<S>& k, const MatT<S>& v, const MatT<S>& p, S scale,
                   const MatT<S>& dout, MatT<S>& dq, MatT<S>& dk, MatT<S>& dv);
// Plain loops over (t, j), for tests of the Eigen form.
template <class S>
void attention_bwd_reference(const MatT<S>& q, const MatT<S>& k, const MatT<S>& v, const MatT<S>& p,
                             S scale, const MatT<S>& dout, MatT<S>& dq, MatT<S>& dk, MatT<S>& dv);

// ---- Cross-entropy ------------------------------------------------------------------------
// Sum over rows of -log softmax(logits_r)[target_r] (in double), and, when dlogits is set,
// dlogits = weight * (softmax - onehot). Rows with target < 0 are ignored.
template <class S>
double cross_entropy(const MatT<S>& logits, std::span<const int32_t> targets, S weight,
                     MatT<S>* dlogits);

}  // namespace dsv3::train

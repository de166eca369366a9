#include "reference/train/ops.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace dsv3::train {

template <class S>
MatT<S> linear_fwd(const MatT<S>& x, const MatT<S>& w) {
  return x * w.transpose();  // [N, in] x [in, out]
}

template <class S>
void linear_bwd(const MatT<S>& x, const MatT<S>& w, const MatT<S>& dy, MatT<S>* dx, MatT<S>& dw) {
  dw.noalias() += dy.transpose() * x;  // [out, N] x [N, in]
  if (dx) dx->noalias() += dy * w;     // [N, out] x [out, in]
}

template <class S>
void linear_bwd_reference(const MatT<S>& x, const MatT<S>& w, const MatT<S>& dy, MatT<S>& dx,
                          MatT<S>& dw) {
  for (Eigen::Index n = 0; n < x.rows(); ++n)
    for (Eigen::Index o = 0; o < w.rows(); ++o)
      for (Eigen::Index i = 0; i < w.cols(); ++i) {
        dw(o, i) += dy(n, o) * x(n, i);
        dx(n, i) += dy(n, o) * w(o, i);
      }
}

template <class S>
MatT<S> rms_norm_fwd(const MatT<S>& x, const VecT<S>& g, double eps, RmsCache<S>& cache) {
  // The same arithmetic as model::rms_norm, so a float32 training forward equals inference.
  MatT<S> y(x.rows(), x.cols());
  cache.inv_r.resize(x.rows());
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    S ms = x.row(r).squaredNorm() / static_cast<S>(x.cols());
    S inv = S(1) / std::sqrt(ms + static_cast<S>(eps));
    cache.inv_r[r] = inv;
    y.row(r) = (x.row(r) * inv).cwiseProduct(g.transpose());
  }
  return y;
}

template <class S>
void rms_norm_bwd(const MatT<S>& x, const VecT<S>& g, const RmsCache<S>& cache, const MatT<S>& dy,
                  MatT<S>& dx, VecT<S>& dg) {
  const S n = static_cast<S>(x.cols());
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    const S inv = cache.inv_r[r];
    auto gdy = dy.row(r).cwiseProduct(g.transpose());  // g * dy  [d]
    const S dot = gdy.dot(x.row(r));                   // sum_k g_k dy_k x_k
    dg.noalias() += (dy.row(r).cwiseProduct(x.row(r)) * inv).transpose();
    dx.row(r).noalias() += gdy * inv - x.row(r) * (dot * inv * inv * inv / n);
  }
}

namespace {
template <class S>
S sigmoid(S v) {
  return S(1) / (S(1) + std::exp(-v));
}
}  // namespace

template <class S>
MatT<S> swiglu_fwd(const MatT<S>& x, const MatT<S>& w1, const MatT<S>& w3, const MatT<S>& w2,
                   SwigluCache<S>& cache) {
  cache.a = linear_fwd(x, w1);  // [N, inter]
  cache.b = linear_fwd(x, w3);  // [N, inter]
  // silu(a) = a / (1 + e^-a), written as model.cpp does so float32 results agree bit for bit.
  MatT<S> h =
      cache.a.unaryExpr([](S v) { return v / (S(1) + std::exp(-v)); }).cwiseProduct(cache.b);
  return linear_fwd(h, w2);  // [N, d]
}

template <class S>
void swiglu_bwd(const MatT<S>& x, const MatT<S>& w1, const MatT<S>& w3, const MatT<S>& w2,
                const SwigluCache<S>& cache, const MatT<S>& dy, MatT<S>& dx, MatT<S>& dw1,
                MatT<S>& dw3, MatT<S>& dw2) {
  const MatT<S>& a = cache.a;
  const MatT<S>& b = cache.b;
  MatT<S> sig = a.unaryExpr([](S v) { return sigmoid(v); });  // σ(a)
  MatT<S> silu = a.cwiseProduct(sig);
  MatT<S> h = silu.cwiseProduct(b);  // recomputed (§3.3.3)
  dw2.noalias() += dy.transpose() * h;
  MatT<S> dh = dy * w2;                          // [N, inter]
  MatT<S> db = dh.cwiseProduct(silu);            // δb = δh ⊙ silu(a)
  MatT<S> da = dh.cwiseProduct(b).cwiseProduct(  // δa = δh ⊙ b ⊙ σ(a)(1 + a(1 − σ(a)))
      sig.cwiseProduct((a.array() * (S(1) - sig.array()) + S(1)).matrix()));
  linear_bwd(x, w1, da, &dx, dw1);
  linear_bwd(x, w3, db, &dx, dw3);
}

template <class S>
void rope_rows(const model::RopeTable& rope, MatT<S>& x, std::span<const int64_t> positions,
               int64_t col0, int64_t stride, int64_t heads, bool inverse) {
  const int half = rope.dim / 2;
  std::vector<S> cs(half), sn(half);
  for (Eigen::Index r = 0; r < x.rows(); ++r) {
    // cos/sin as RopeTable::apply computes them (the angle in the scalar type).
    for (int j = 0; j < half; ++j) {
      S angle = static_cast<S>(positions[r]) * static_cast<S>(rope.inv_freq[j]);
      cs[j] = std::cos(angle) * static_cast<S>(rope.attention_factor);
      sn[j] = std::sin(angle) * static_cast<S>(rope.attention_factor);
      if (inverse) sn[j] = -sn[j];  // R^T = R(-θ), same scale
    }
    for (int64_t h = 0; h < heads; ++h) {
      S* v = x.row(r).data() + col0 + h * stride;
      for (int j = 0; j < half; ++j) {
        S re = v[2 * j], im = v[2 * j + 1];
        v[2 * j] = re * cs[j] - im * sn[j];
        v[2 * j + 1] = re * sn[j] + im * cs[j];
      }
    }
  }
}

template <class S>
MatT<S> attention_fwd(const MatT<S>& q, const MatT<S>& k, const MatT<S>& v, S scale, MatT<S>& p) {
  const Eigen::Index n = q.rows();
  p = q * k.transpose();  // [n, n]
  for (Eigen::Index t = 0; t < n; ++t) {
    // eq. (10): causal softmax of scale * q_t . k_j over j <= t (as model.cpp's loop).
    S mx = -std::numeric_limits<S>::infinity();
    for (Eigen::Index j = 0; j <= t; ++j) mx = std::max(mx, p(t, j) * scale);
    S sum = 0;
    for (Eigen::Index j = 0; j <= t; ++j) sum += p(t, j) = std::exp(p(t, j) * scale - mx);
    for (Eigen::Index j = 0; j <= t; ++j) p(t, j) /= sum;
    for (Eigen::Index j = t + 1; j < n; ++j) p(t, j) = 0;
  }
  return p * v;  // [n, dv]
}

template <class S>
void attention_bwd(const MatT<S>& q, const MatT<S>& k, const MatT<S>& v, const MatT<S>& p, S scale,
                   const MatT<S>& dout, MatT<S>& dq, MatT<S>& dk, MatT<S>& dv) {
  dv.noalias() = p.transpose() * dout;  // δv_j = Σ_t P_tj δo_t
  MatT<S> dp = dout * v.transpose();    // δP_tj = δo_t . v_j   [n, n]
  // Softmax: δs = P ⊙ (δP − Σ_j P δP); masked entries have P = 0 and get nothing.
  Eigen::Matrix<S, Eigen::Dynamic, 1> rowdot = p.cwiseProduct(dp).rowwise().sum();
  MatT<S> ds = p.cwiseProduct(dp - rowdot.replicate(1, dp.cols()));
  ds *= scale;
  dq.noalias() = ds * k;
  dk.noalias() = ds.transpose() * q;
}

template <class S>
void attention_bwd_reference(const MatT<S>& q, const MatT<S>& k, const MatT<S>& v, const MatT<S>& p,
                             S scale, const MatT<S>& dout, MatT<S>& dq, MatT<S>& dk, MatT<S>& dv) {
  const Eigen::Index n = q.rows();
  dq = MatT<S>::Zero(n, q.cols());
  dk = MatT<S>::Zero(n, k.cols());
  dv = MatT<S>::Zero(n, v.cols());
  for (Eigen::Index t = 0; t < n; ++t) {
    // δo_t . o_t = Σ_j P_tj δP_tj
    S od = 0;
    std::vector<S> dp(t + 1);
    for (Eigen::Index j = 0; j <= t; ++j) {
      dp[j] = dout.row(t).dot(v.row(j));
      od += p(t, j) * dp[j];
    }
    for (Eigen::Index j = 0; j <= t; ++j) {
      dv.row(j) += p(t, j) * dout.row(t);
      const S ds = p(t, j) * (dp[j] - od) * scale;
      dq.row(t) += ds * k.row(j);
      dk.row(j) += ds * q.row(t);
    }
  }
}

template <class S>
double cross_entropy(const MatT<S>& logits, std::span<const int32_t> targets, S weight,
                     MatT<S>* dlogits) {
  // Per-row losses summed in row order afterwards: the total does not depend on thread count.
  std::vector<double> row_loss(logits.rows(), 0.0);
  if (dlogits) dlogits->setZero(logits.rows(), logits.cols());
#pragma omp parallel for schedule(static) if (logits.size() > (1 << 16))
  for (Eigen::Index r = 0; r < logits.rows(); ++r) {
    if (targets[r] < 0) continue;
    const S mx = logits.row(r).maxCoeff();
    // e^(z - max) once per entry in the scalar type (as PyTorch's float32 softmax), summed in
    // double; the gradient reuses them.
    std::vector<S> e(logits.cols());
    double z = 0;
    for (Eigen::Index v = 0; v < logits.cols(); ++v) z += e[v] = std::exp(logits(r, v) - mx);
    row_loss[r] = std::log(z) - static_cast<double>(logits(r, targets[r]) - mx);
    if (dlogits) {
      const S scale = static_cast<S>(1.0 / z) * weight;
      for (Eigen::Index v = 0; v < logits.cols(); ++v) (*dlogits)(r, v) = e[v] * scale;
      (*dlogits)(r, targets[r]) -= weight;
    }
  }
  double total = 0;
  for (double l : row_loss) total += l;
  return total;
}

#define DSV3_INSTANTIATE(S)                                                                      \
  template MatT<S> linear_fwd(const MatT<S>&, const MatT<S>&);                                   \
  template void linear_bwd(const MatT<S>&, const MatT<S>&, const MatT<S>&, MatT<S>*, MatT<S>&);  \
  template void linear_bwd_reference(const MatT<S>&, const MatT<S>&, const MatT<S>&, MatT<S>&,   \
                                     MatT<S>&);                                                  \
  template MatT<S> rms_norm_fwd(const MatT<S>&, const VecT<S>&, double, RmsCache<S>&);           \
  template void rms_norm_bwd(const MatT<S>&, const VecT<S>&, const RmsCache<S>&, const MatT<S>&, \
                             MatT<S>&, VecT<S>&);                                                \
  template MatT<S> swiglu_fwd(const MatT<S>&, const MatT<S>&, const MatT<S>&, const MatT<S>&,    \
                              SwigluCache<S>&);                                                  \
  template void swiglu_bwd(const MatT<S>&, const MatT<S>&, const MatT<S>&, const MatT<S>&,       \
                           const SwigluCache<S>&, const MatT<S>&, MatT<S>&, MatT<S>&, MatT<S>&,  \
                           MatT<S>&);                                                            \
  template void rope_rows(const model::RopeTable&, MatT<S>&, std::span<const int64_t>, int64_t,  \
                          int64_t, int64_t, bool);                                               \
  template MatT<S> attention_fwd(const MatT<S>&, const MatT<S>&, const MatT<S>&, S, MatT<S>&);   \
  template void attention_bwd(const MatT<S>&, const MatT<S>&, const MatT<S>&, const MatT<S>&, S, \
                              const MatT<S>&, MatT<S>&, MatT<S>&, MatT<S>&);                     \
  template void attention_bwd_reference(const MatT<S>&, const MatT<S>&, const MatT<S>&,          \
                                        const MatT<S>&, S, const MatT<S>&, MatT<S>&, MatT<S>&,   \
                                        MatT<S>&);                                               \
  template double cross_entropy(const MatT<S>&, std::span<const int32_t>, S, MatT<S>*);

DSV3_INSTANTIATE(float)
DSV3_INSTANTIATE(double)

}  // namespace dsv3::train

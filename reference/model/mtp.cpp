#include "reference/model/mtp.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace dsv3::model {

int mtp_modules(const Model& m) {
  return static_cast<int>(m.weights().mtp.size());
}

const MtpWeights& mtp_weights(const Model& m, int k) {
  const int M = mtp_modules(m);
  if (M == 0)
    throw std::invalid_argument(fmt::format("model {} has no MTP module", m.config().name));
  if (k < 1) throw std::invalid_argument(fmt::format("MTP depth must be >= 1, got {}", k));
  return m.weights().mtp[(k - 1) % M];
}

int mtp_layer_index(const Model& m, int k) {
  (void)mtp_weights(m, k);  // validates k
  return static_cast<int>(m.config().num_hidden_layers) + (k - 1) % mtp_modules(m);
}

Mat mtp_project(const Model& m, int k, std::span<const int32_t> next_tokens,
                const Mat& prev_hidden) {
  const MtpWeights& w = mtp_weights(m, k);
  const int64_t n = static_cast<int64_t>(next_tokens.size()), d = m.config().hidden_size;
  if (prev_hidden.rows() != n || prev_hidden.cols() != d)
    throw std::invalid_argument(fmt::format("mtp_project: {} tokens but hidden [{}, {}]", n,
                                            prev_hidden.rows(), prev_hidden.cols()));
  Mat emb = m.embed(next_tokens);  // [n, d] Emb is the main model's embedding (shared, eq. 21)
  const double eps = m.config().rms_norm_eps;
  // Code order [embedding; hidden]: eh_proj's first d input columns read the embedding.
  Mat cat(n, 2 * d);  // [n, 2d]
  cat.leftCols(d) = rms_norm(emb, w.enorm, eps);
  cat.rightCols(d) = rms_norm(prev_hidden, w.hnorm, eps);
  // Native weights: eh_proj's float32 copy (made once, NativeWeights::f32).
  const Mat& eh =
      m.f32_matrix(w.eh_proj, fmt::format("model.layers.{}.eh_proj.weight", mtp_layer_index(m, k)));
  return cat * eh.transpose();  // M_k: [d, 2d]
}

Mat mtp_head(const Model& m, int k, const Mat& h) {
  const MtpWeights& w = mtp_weights(m, k);
  return m.head(rms_norm(h, w.shared_head_norm, m.config().rms_norm_eps));
}

MtpOutput mtp_forward(const Model& m, std::span<const int32_t> ids, const Mat& main_hidden,
                      AttnImpl impl, int depth, const ForwardOptions& opt) {
  const int64_t N = static_cast<int64_t>(ids.size());
  if (main_hidden.rows() != N)
    throw std::invalid_argument(
        fmt::format("mtp_forward: {} ids but {} hidden rows", N, main_hidden.rows()));
  if (depth < 0) depth = mtp_modules(m);
  ForwardOptions o = opt;
  o.trace = nullptr;  // the trace holds main-model positions only
  o.hidden = nullptr;
  MtpOutput out;
  Mat prev = main_hidden;  // h^0: after the main model's final norm
  for (int k = 1; k <= depth; ++k) {
    const int64_t n = N - k;  // positions 0 .. N-1-k see t_{i+k}
    if (n <= 0) break;
    Mat x = mtp_project(m, k, ids.subspan(k, n), prev.topRows(n));  // eq. (21)
    KVCache cache(m.config(), impl, /*num_layers=*/1);
    cache.reserve_more(n);
    // eq. (22): TRM_k over positions 0 .. n-1, causal, same RoPE positions as the main tokens.
    Mat h = m.block(mtp_weights(m, k).block, mtp_layer_index(m, k), x, cache, 0, o, 0);
    cache.advance(n);
    out.logits.push_back(mtp_head(m, k, h));  // eq. (23)
    out.hidden.push_back(h);
    prev = std::move(h);
  }
  return out;
}

double cross_entropy_sum(const Mat& logits, std::span<const int32_t> targets) {
  if (static_cast<int64_t>(targets.size()) != logits.rows())
    throw std::invalid_argument("cross_entropy_sum: one target per row");
  double total = 0;
  for (Eigen::Index r = 0; r < logits.rows(); ++r) {
    const float mx = logits.row(r).maxCoeff();
    double z = 0;
    for (Eigen::Index v = 0; v < logits.cols(); ++v)
      z += std::exp(static_cast<double>(logits(r, v) - mx));
    total += std::log(z) - static_cast<double>(logits(r, targets[r]) - mx);
  }
  return total;
}

MtpLoss mtp_loss(const Model& m, std::span<const int32_t> ids, double lambda, AttnImpl impl) {
  const int64_t N = static_cast<int64_t>(ids.size());
  if (N < 2) throw std::invalid_argument("the loss needs at least two tokens");
  KVCache cache = m.new_cache(impl);
  std::vector<Mat> hidden;
  ForwardOptions fo;
  fo.hidden = &hidden;
  Mat logits = m.forward(ids, cache, fo);
  MtpLoss L;
  L.lambda = lambda;
  const int64_t T = N - 1;
  L.main_targets = T;
  L.main = cross_entropy_sum(logits.topRows(T), ids.subspan(1)) / static_cast<double>(T);
  const int D = mtp_modules(m);
  if (D == 0) return L;
  MtpOutput mo = mtp_forward(m, ids, hidden.back(), impl, D);
  for (int k = 1; k <= D; ++k) {
    const int64_t valid = T - k;  // eq. (24): targets t_{k+1} .. t_{N-1} (0-based)
    L.targets.push_back(std::max<int64_t>(valid, 0));
    double s = 0;
    if (valid > 0)
      s = cross_entropy_sum(mo.logits[k - 1].topRows(valid), ids.subspan(k + 1, valid));
    L.sum.push_back(s);
    L.per_token.push_back(valid > 0 ? s / static_cast<double>(valid) : 0.0);
    L.paper.push_back(s / static_cast<double>(T));  // the paper divides by T, not T - k
  }
  for (int k = 0; k < D; ++k) {
    L.total_paper += lambda / D * L.paper[k];  // eq. (25)
    L.total_per_token += lambda / D * L.per_token[k];
  }
  return L;
}

}  // namespace dsv3::model

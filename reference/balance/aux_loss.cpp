#include "reference/balance/aux_loss.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace dsv3::balance {

namespace {

// L = α Σ_i f_i P_i over rows [r0, r0+T) with f given; adds dL/dz · weight to grad and
// returns P. With s' = s/S (S = Σ_j s_j): dL/ds_i = (α/T)(f_i − Σ_j f_j s'_j)/S;
// with raw s: dL/ds_i = (α/T) f_i. Then dz = ds · s(1 − s).
std::vector<double> prob_term(const Mat& logits, int r0, int T, const std::vector<double>& f,
                              double alpha, ProbNorm norm, double weight, Mat& grad) {
  const int n = static_cast<int>(logits.cols());
  std::vector<double> p(n, 0.0), s(n);
  for (int t = r0; t < r0 + T; ++t) {
    double S = 0, fs = 0;
    for (int i = 0; i < n; ++i)
      S += s[i] = 1.0 / (1.0 + std::exp(-static_cast<double>(logits(t, i))));
    for (int i = 0; i < n; ++i) fs += f[i] * s[i] / S;
    for (int i = 0; i < n; ++i) {
      const double sp = norm == ProbNorm::kNormalised ? s[i] / S : s[i];
      p[i] += sp / T;
      const double ds = norm == ProbNorm::kNormalised ? (f[i] - fs) / S : f[i];
      grad(t, i) += static_cast<float>(weight * alpha / T * ds * s[i] * (1.0 - s[i]));
    }
  }
  return p;
}

}  // namespace

AuxLoss expert_balance_loss(const Mat& logits, std::span<const int> topk_idx, int k, double alpha,
                            ProbNorm norm) {
  const int T = static_cast<int>(logits.rows());
  const int n = static_cast<int>(logits.cols());
  if (k <= 0 || topk_idx.size() != static_cast<size_t>(T) * k)
    throw std::invalid_argument("expert_balance_loss: topk_idx must be [T, k]");
  AuxLoss r;
  r.grad_logits = Mat::Zero(T, n);
  r.f.assign(n, 0.0);
  if (T == 0) {
    r.p.assign(n, 0.0);
    return r;
  }
  for (int e : topk_idx) r.f.at(e) += static_cast<double>(n) / (static_cast<double>(k) * T);
  r.p = prob_term(logits, 0, T, r.f, alpha, norm, 1.0, r.grad_logits);
  for (int i = 0; i < n; ++i) r.value += alpha * r.f[i] * r.p[i];
  return r;
}

AuxLoss sequence_balance_loss(const Mat& logits, int k, int seq_len, double alpha) {
  const int T = static_cast<int>(logits.rows());
  const int n = static_cast<int>(logits.cols());
  if (seq_len <= 0 || T % seq_len)
    throw std::invalid_argument("sequence_balance_loss: rows must be a multiple of seq_len");
  if (k <= 0 || k > n) throw std::invalid_argument("sequence_balance_loss: bad k");
  AuxLoss r;
  r.grad_logits = Mat::Zero(T, n);
  r.f.assign(n, 0.0);
  r.p.assign(n, 0.0);
  const int n_seq = T / seq_len;
  std::vector<int> idx(n);
  for (int q = 0; q < n_seq; ++q) {
    const int r0 = q * seq_len;
    std::vector<double> f(n, 0.0);
    for (int t = r0; t < r0 + seq_len; ++t) {
      // eq. (18): the indicator uses the plain top-K of s (σ is monotone: top-K of z).
      std::iota(idx.begin(), idx.end(), 0);
      std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int a, int b) {
        return logits(t, a) > logits(t, b) || (logits(t, a) == logits(t, b) && a < b);
      });
      for (int j = 0; j < k; ++j)
        f[idx[j]] += static_cast<double>(n) / (static_cast<double>(k) * seq_len);
    }
    const std::vector<double> p =
        prob_term(logits, r0, seq_len, f, alpha, ProbNorm::kNormalised, 1.0 / n_seq, r.grad_logits);
    for (int i = 0; i < n; ++i) {
      r.value += alpha * f[i] * p[i] / n_seq;  // eq. (17), mean over sequences
      r.f[i] += f[i] / n_seq;
      r.p[i] += p[i] / n_seq;
    }
  }
  return r;
}

}  // namespace dsv3::balance

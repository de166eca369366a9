#include "reference/balance/batch_router.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace dsv3::balance {

model::Config router_config(int n_experts, int top_k, int groups, int topk_groups,
                            double route_scale) {
  model::Config c;
  c.name = "balance-router";
  c.source = "built-in";
  c.n_routed_experts = n_experts;
  c.num_experts_per_tok = top_k;
  c.n_group = groups;
  c.topk_group = topk_groups;
  c.scoring_func = model::ScoringFunc::kSigmoid;
  c.topk_method = model::TopkMethod::kNoauxTc;
  c.norm_topk_prob = true;
  c.routed_scaling_factor = route_scale;
  if (n_experts <= 0 || top_k <= 0 || top_k > n_experts)
    throw std::invalid_argument("router: need 0 < top-k <= experts");
  if (groups <= 0 || n_experts % groups)
    throw std::invalid_argument("router: groups must divide the number of experts");
  if (topk_groups <= 0 || topk_groups > groups)
    throw std::invalid_argument("router: topk-groups must be in [1, groups]");
  if (groups > 1 && n_experts / groups < 2)
    throw std::invalid_argument("router: each group needs at least 2 experts (top-2 group score)");
  if (top_k > topk_groups * (n_experts / groups))
    throw std::invalid_argument("router: the kept groups hold fewer experts than top-k");
  return c;
}

namespace {

// "a ranks before b": larger value first, the lower index on ties (model::route's rule).
inline bool before(float va, int a, float vb, int b) {
  return va > vb || (va == vb && a < b);
}

// Keeps the k best (value, index) pairs of a stream in idx[0..k), best first.
struct TopK {
  int k, n = 0;
  int* idx;
  float* val;
  void push(float v, int i) {
    if (n == k && !before(v, i, val[k - 1], idx[k - 1])) return;
    int j = n < k ? n++ : k - 1;
    while (j > 0 && before(v, i, val[j - 1], idx[j - 1])) {
      val[j] = val[j - 1];
      idx[j] = idx[j - 1];
      --j;
    }
    val[j] = v;
    idx[j] = i;
  }
};

}  // namespace

void route_batch(const model::Config& c, const Mat& logits, std::span<const float> bias,
                 BatchRouting& out, const model::RouterOptions& opt) {
  const int n = static_cast<int>(c.n_routed_experts);
  const int k = static_cast<int>(c.num_experts_per_tok);
  const int groups = static_cast<int>(c.n_group);
  const int per_group = n / groups;
  const int keep_groups = static_cast<int>(c.topk_group);
  const bool grouped = groups > 1 && c.topk_method != model::TopkMethod::kGreedy;
  const bool has_bias = !bias.empty();
  const bool sigmoid = c.scoring_func == model::ScoringFunc::kSigmoid;
  const bool mask_inf = std::isinf(opt.masked_fill) && opt.masked_fill < 0;
  if (logits.cols() != n) throw std::invalid_argument("route_batch: logits columns != experts");
  if (has_bias && static_cast<int>(bias.size()) != n)
    throw std::invalid_argument("route_batch: bias size != experts");
  const int T = static_cast<int>(logits.rows());
  out.tokens = T;
  out.k = k;
  out.topk_idx.resize(static_cast<size_t>(T) * k);
  out.topk_weight.resize(static_cast<size_t>(T) * k);
  const float scale = static_cast<float>(c.routed_scaling_factor);

#pragma omp parallel if (T >= 2048)
  {
    std::vector<float> s(n), biased(n), gscore(groups), gval(keep_groups), tval(k);
    std::vector<int> gidx(keep_groups);
    std::vector<char> keep(groups);
#pragma omp for schedule(static)
    for (int t = 0; t < T; ++t) {
      const float* z = logits.data() + static_cast<size_t>(t) * n;
      if (sigmoid) {
        for (int i = 0; i < n; ++i) s[i] = 1.0f / (1.0f + std::exp(-z[i]));  // eq. (15)
      } else {
        float mx = z[0];
        for (int i = 1; i < n; ++i) mx = std::max(mx, z[i]);
        float sum = 0;
        for (int i = 0; i < n; ++i) sum += s[i] = std::exp(z[i] - mx);
        for (int i = 0; i < n; ++i) s[i] /= sum;
      }
      for (int i = 0; i < n; ++i) biased[i] = has_bias ? s[i] + bias[i] : s[i];  // eq. (16)
      if (grouped) {
        for (int g = 0; g < groups; ++g) {
          float m1 = -INFINITY, m2 = -INFINITY;
          for (int i = g * per_group; i < (g + 1) * per_group; ++i) {
            const float v = biased[i];
            if (v > m1) {
              m2 = m1;
              m1 = v;
            } else if (v > m2) {
              m2 = v;
            }
          }
          gscore[g] = has_bias ? m1 + m2 : m1;
        }
        TopK gt{keep_groups, 0, gidx.data(), gval.data()};
        for (int g = 0; g < groups; ++g) gt.push(gscore[g], g);
        std::fill(keep.begin(), keep.end(), 0);
        for (int j = 0; j < keep_groups; ++j) keep[gidx[j]] = 1;
      }
      int* idx = out.topk_idx.data() + static_cast<size_t>(t) * k;
      TopK top{k, 0, idx, tval.data()};
      for (int i = 0; i < n; ++i) {
        if (grouped && !keep[i / per_group]) {
          if (mask_inf) continue;  // -inf never beats a kept expert (k <= kept experts)
          top.push(opt.masked_fill, i);
        } else {
          top.push(biased[i], i);
        }
      }
      float* w = out.topk_weight.data() + static_cast<size_t>(t) * k;
      float sum = 0;
      for (int j = 0; j < k; ++j) sum += w[j] = s[idx[j]];  // unbiased: eq. (13)
      const float denom = c.norm_topk_prob ? sum + 1e-20f : 1.0f;
      for (int j = 0; j < k; ++j) w[j] = w[j] / denom * scale;
    }
  }
}

std::vector<int64_t> expert_counts(const BatchRouting& r, int n_experts) {
  std::vector<int64_t> c(static_cast<size_t>(n_experts), 0);
  for (int e : r.topk_idx) ++c[e];
  return c;
}

}  // namespace dsv3::balance

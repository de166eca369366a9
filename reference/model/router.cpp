#include "reference/model/router.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace dsv3::model {

namespace {
// Indices of the k largest values, largest first; ties keep the lower index first.
std::vector<int> top_k(const std::vector<float>& v, int k) {
  std::vector<int> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int a, int b) { return v[a] > v[b] || (v[a] == v[b] && a < b); });
  idx.resize(k);
  return idx;
}
}  // namespace

RouteResult route(const Config& c, std::span<const float> logits, std::span<const float> bias,
                  const RouterOptions& opt) {
  const int n = static_cast<int>(c.n_routed_experts);
  const int k = static_cast<int>(c.num_experts_per_tok);
  const int groups = static_cast<int>(c.n_group);
  const int per_group = n / groups;
  if (static_cast<int>(logits.size()) != n)
    throw std::invalid_argument("route: logits size != n_routed_experts");
  if (!bias.empty() && static_cast<int>(bias.size()) != n)
    throw std::invalid_argument("route: bias size != n_routed_experts");

  RouteResult r;
  r.logits.assign(logits.begin(), logits.end());
  r.scores.resize(n);
  if (c.scoring_func == ScoringFunc::kSigmoid) {
    for (int i = 0; i < n; ++i) r.scores[i] = 1.0f / (1.0f + std::exp(-logits[i]));  // eq. (15)
  } else {
    float mx = *std::max_element(logits.begin(), logits.end());
    float sum = 0;
    for (int i = 0; i < n; ++i) sum += r.scores[i] = std::exp(logits[i] - mx);
    for (float& s : r.scores) s /= sum;  // DeepSeek-V2 eq. (11): softmax affinities
  }
  // eq. (16): the bias b_i enters only the selection, never the gate value.
  r.biased = r.scores;
  if (!bias.empty())
    for (int i = 0; i < n; ++i) r.biased[i] += bias[i];

  // Group-limited routing: score each group, keep the best topk_group groups.
  std::vector<float> selectable = r.biased;
  if (groups > 1 && c.topk_method != TopkMethod::kGreedy) {
    r.group_scores.resize(groups);
    for (int g = 0; g < groups; ++g) {
      std::vector<float> members(r.biased.begin() + g * per_group,
                                 r.biased.begin() + (g + 1) * per_group);
      std::sort(members.begin(), members.end(), std::greater<>());
      // With a correction bias (noaux_tc): sum of the group's top-2; otherwise its maximum.
      r.group_scores[g] = bias.empty() ? members[0] : members[0] + members[1];
    }
    r.groups_kept = top_k(r.group_scores, static_cast<int>(c.topk_group));
    std::vector<bool> keep(groups, false);
    for (int g : r.groups_kept) keep[g] = true;
    for (int i = 0; i < n; ++i)
      if (!keep[i / per_group]) selectable[i] = opt.masked_fill;
  }
  r.topk_idx = top_k(selectable, k);  // eq. (13)/(16): top-K_r

  // Gate values from the unbiased scores; eq. (13): normalise (sigmoid), then scale.
  r.topk_weight.resize(k);
  float sum = 0;
  for (int j = 0; j < k; ++j) sum += r.topk_weight[j] = r.scores[r.topk_idx[j]];
  const float denom = c.norm_topk_prob ? sum + 1e-20f : 1.0f;
  for (float& w : r.topk_weight) w = w / denom * static_cast<float>(c.routed_scaling_factor);
  return r;
}

}  // namespace dsv3::model

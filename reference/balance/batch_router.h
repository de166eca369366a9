// The DeepSeekMoE gate over a batch of tokens, for the balance lab's simulations and the routing
// benchmark. It makes exactly the decisions of model::route (eq. 12-16, group-limited top-k,
// same tie rule: the lower index wins), without allocating per token; tests compare the two on
// random inputs, with and without groups and bias.
#pragma once

#include <span>
#include <vector>

#include "reference/model/config.h"
#include "reference/model/router.h"
#include "reference/model/tensor.h"

namespace dsv3::balance {

// A routing-only config: N experts, top-k, `groups` expert groups of which `topk_groups` are
// kept (group score = top-2 sum of biased scores), sigmoid scores, gates normalised, scale 1.
model::Config router_config(int n_experts, int top_k, int groups = 1, int topk_groups = 1,
                            double route_scale = 1.0);

struct BatchRouting {
  int tokens = 0;
  int k = 0;
  std::vector<int> topk_idx;       // [T, K] chosen experts, best biased score first
  std::vector<float> topk_weight;  // [T, K] g_{i,t} from the UNBIASED scores (eq. 13, 16)
  const int* experts(int t) const { return topk_idx.data() + static_cast<size_t>(t) * k; }
};

// Routes every row of logits [T, N] (u_t·e_i) with the correction bias b [N] (may be empty).
// `out` is reused between calls. Runs tokens in parallel (OpenMP) when T is large.
void route_batch(const model::Config& c, const Mat& logits, std::span<const float> bias,
                 BatchRouting& out, const model::RouterOptions& opt = {});

// Assignments per expert of a routed batch: c_i [N].
std::vector<int64_t> expert_counts(const BatchRouting& r, int n_experts);

}  // namespace dsv3::balance

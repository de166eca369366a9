// The balance losses that auxiliary-loss-free balancing replaced, with their gradients with
// respect to the router logits z_{i,t} = u_t·e_i (sigmoid scores s = σ(z), eq. 15), so that a
// learned-router toy can train with them. In both, f_i is a constant (no gradient): only the
// probability term P_i carries gradient.
#pragma once

#include <span>
#include <vector>

#include "reference/model/tensor.h"

namespace dsv3::balance {

// How P_i averages the scores.
enum class ProbNorm {
  kNormalised,  // s'_{i,t} = s_{i,t} / Σ_j s_{j,t} (DeepSeek-V3 eq. 19): Σ_i P_i = 1
  kRaw,         // raw s_{i,t} (Loss-Free Balancing eq. 2 with sigmoid gates)
};

struct AuxLoss {
  double value = 0;
  std::vector<double> f;  // [N] f_i (averaged over sequences for the sequence-wise loss)
  std::vector<double> p;  // [N] P_i (likewise)
  Mat grad_logits;        // [T, N] dL/dz_{i,t}
};

// Conventional expert-level balance loss over a whole batch (DeepSeekMoE eq. 12-14, Loss-Free
// Balancing eq. 2): L = α Σ_i f_i P_i, f_i = N/(K·T) Σ_t 1(token t chose expert i) from the
// tokens' actual choices topk_idx [T, K], P_i = (1/T) Σ_t s_{i,t} (normalised or raw).
AuxLoss expert_balance_loss(const Mat& logits, std::span<const int> topk_idx, int k, double alpha,
                            ProbNorm norm = ProbNorm::kNormalised);

// DeepSeek-V3's complementary sequence-wise balance loss (eq. 17-20), computed on each sequence
// of seq_len consecutive rows and averaged over sequences (as Megatron's seq_aux_loss):
// f_i = N/(K·T) Σ_t 1(s_{i,t} ∈ Topk({s_{j,t}}, K)) from the UNBIASED, ungrouped top-K of the
// scores (not the routing decision), P_i = (1/T) Σ_t s'_{i,t} with s' normalised over all N.
AuxLoss sequence_balance_loss(const Mat& logits, int k, int seq_len, double alpha);

}  // namespace dsv3::balance

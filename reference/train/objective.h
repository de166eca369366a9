// The training objective of DeepSeek-V3 and its gradient, for a batch of B sequences of T tokens:
//
//   L = L_main + lambda * (1/D) * sum_k L_MTP^k + alpha * L_Bal          (eq. 19, 24, 25)
//
//   L_main    mean over the B(T-1) next-token targets of -log P(x_{t+1} | x_{<=t})
//   L_MTP^k   mean over the B(T-1-k) targets of -log P_k(x_{t+1+k}) from MTP module k at position
//   t;
//             module 1 reads the main model's output after its final norm, module k >= 2 the
//             previous module's block output before its shared_head.norm (mtp.h conventions)
//   L_Bal     the sequence-wise balance loss (eq. 17-20) of every DeepSeekMoE layer (main model
//             and MTP modules), summed over layers and averaged over the B sequences
//
// Routing is exactly the inference routing (model::route: biased scores select, -inf outside the
// kept groups, unbiased normalised gates times routed_scaling_factor). The selection is piecewise
// constant, so neither it nor the bias b receives a gradient; the LM loss reaches the router only
// through the gate values of the chosen experts. The MTP modules share the main model's
// embedding and output head: one tensor each, gradients summed.
//
// The MLA is the naive (non-absorbed) form training uses. Templated on the scalar: float32 for
// training, double for the finite-difference checks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "reference/model/config.h"
#include "reference/model/rope.h"
#include "reference/model/weights.h"

namespace dsv3::train {

struct LowPrecision;  // fp8_linear.h

// none: no balancing at all (bias frozen, alpha forced to 0);
// loss-free: the bias selects and is updated with gamma after each step (§2.1.2), plus alpha*L_Bal;
// aux: the classic auxiliary loss alpha*L_Bal alone; routing ignores the bias.
enum class BalanceMode { kNone, kLossFree, kAux };
const char* to_string(BalanceMode m);
BalanceMode parse_balance_mode(const std::string& s);  // throws std::invalid_argument

struct Objective {
  double mtp_lambda = 0.3;      // lambda (V3: 0.3, then 0.1)
  double balance_alpha = 1e-4;  // alpha (V3: 1e-4)
  BalanceMode balance = BalanceMode::kLossFree;
  // alpha as it enters L (0 without balancing).
  double effective_alpha() const { return balance == BalanceMode::kNone ? 0.0 : balance_alpha; }
};

struct Batch {  // ids [B, T], row-major
  int64_t B = 0, T = 0;
  std::vector<int32_t> ids;
  int32_t at(int64_t b, int64_t t) const { return ids[b * T + t]; }
};

struct LossParts {
  double total = 0;         // L
  double main = 0;          // L_main
  std::vector<double> mtp;  // [D] L_MTP^k
  double balance = 0;       // L_Bal, unweighted
  // Per DeepSeekMoE layer in checkpoint order (main layers, then MTP blocks): the checkpoint
  // layer index and the tokens routed to each expert in this forward (c_i of the bias update).
  std::vector<int> moe_layers;
  std::vector<std::vector<int64_t>> expert_counts;
};

// Forward of L; with grad set, also the backward: grad must have the weights' layout (see
// zeros_like) and receives dL/dθ added to it. The correction biases get no gradient.
// precision (float32 only; null = every GEMM in float32): the Linears DeepSeek-V3 runs in FP8
// (attention projections, dense, shared and routed expert FFNs) go through fp8_linear.h in BF16
// or FP8; embedding, head, MoE gate, MTP eh_proj, norms and the attention core stay float32.
template <class S>
LossParts loss_and_grad(const model::Config& c, const model::RopeTable& rope,
                        const model::ModelWeightsT<S>& w, const Batch& batch, const Objective& obj,
                        model::ModelWeightsT<S>* grad, const LowPrecision* precision = nullptr);

// Zero tensors in the layout of w (same MTP depth).
template <class S>
model::ModelWeightsT<S> zeros_like(const model::Config& c, const model::ModelWeightsT<S>& w);

// The MoE layer index (checkpoint naming) of a position in LossParts::moe_layers, and the
// correction bias it lives in (main layer or MTP block).
VecT<float>* correction_bias(const model::Config& c, model::ModelWeights& w, int layer);
const VecT<float>* correction_bias(const model::Config& c, const model::ModelWeights& w, int layer);

}  // namespace dsv3::train

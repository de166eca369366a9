// Multi-Token Prediction (DeepSeek-V3 §2.2, eq. 21-25): D sequential modules that each predict
// one token further ahead, keeping the complete causal chain at every depth.
//
// Indexing used throughout (0-based; the paper counts from 1). For input ids t_0 .. t_{N-1}:
//   main model   position i sees t_0..t_i and predicts t_{i+1}        (N - 1 targets; the paper's
//   T) depth k      position i combines h^{k-1}_i with Emb(t_{i+k}) and predicts t_{i+k+1};
//                it runs at positions 0 .. N-1-k, of which the last has no target, so
//                depth k has N - 1 - k = T - k valid targets (eq. 24).
//
// Conventions that are not in the paper's equations (model_spec §8, moe_mtp §6.2):
//   * eh_proj's input is [enorm(Emb(t_{i+k})); hnorm(h^{k-1}_i)] - embedding FIRST, the reverse
//     of the paper's notation [h; Emb] in eq. (21). The released weights (layer 61 of V3) follow
//     the code order, and vLLM, SGLang and Megatron all concatenate that way.
//   * h^0_i, the state depth 1 receives, is the main model's hidden state AFTER the final norm
//     (the one the output head sees), as vLLM, SGLang and Megatron do. DeepSeek never stated it.
//   * h^k for k >= 1 is the module's Transformer block output, before shared_head.norm.
//   * OutHead = the module's own RMSNorm (shared_head.norm) followed by the shared output head.
//   * The module's block runs at the same RoPE position i as the main token i, with a KV cache
//     of its own (one cache layer per depth).
//   * Depths beyond the trained modules reuse them cyclically (module (k-1) mod M). V3 ships
//     M = 1; the chain structure stays the paper's. (vLLM instead re-applies the depth-1 module
//     one position further on; both are heuristics, nothing was trained for depth > M.)
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "reference/model/model.h"

namespace dsv3::model {

// Number of trained MTP modules (0 when the checkpoint has none).
int mtp_modules(const Model& m);
// The weights used at depth k >= 1 and the checkpoint layer index they live at
// (num_hidden_layers + (k-1) mod M; V3: 61). Throws std::invalid_argument without modules.
const MtpWeights& mtp_weights(const Model& m, int k);
int mtp_layer_index(const Model& m, int k);

// eq. (21): h'^k_i = M_k [ enorm(Emb(t_{i+k})) ; hnorm(h^{k-1}_i) ]  (code order, see above).
// next_tokens [n] are the t_{i+k}, prev_hidden [n, d] the h^{k-1}_i; returns [n, d].
Mat mtp_project(const Model& m, int k, std::span<const int32_t> next_tokens,
                const Mat& prev_hidden);

// eq. (23): logits of P^k from block outputs h^k [n, d]: shared_head.norm, then the output head.
Mat mtp_head(const Model& m, int k, const Mat& h);

// Teacher-forced forward of depths 1..depth over a whole sequence (training, loss, dumps).
struct MtpOutput {
  std::vector<Mat> logits;  // [depth]: depth k at index k-1, [N-k, V]; row i predicts t_{i+k+1}
  std::vector<Mat> hidden;  // [depth]: h^k [N-k, d], block outputs before shared_head.norm
};
// main_hidden [N, d] is the main model's final-normed hidden state (ForwardOptions::hidden's last
// entry). depth < 0 means every trained module. Each depth uses a fresh cache of `impl`.
MtpOutput mtp_forward(const Model& m, std::span<const int32_t> ids, const Mat& main_hidden,
                      AttnImpl impl = AttnImpl::kAbsorbed, int depth = -1,
                      const ForwardOptions& opt = {});

// The training objective (eq. 24-25) beside the main next-token loss, for one sequence.
struct MtpLoss {
  int64_t main_targets = 0;       // T = N - 1
  double main = 0;                // mean next-token cross-entropy over the T targets
  double lambda = 0.3;            // V3: 0.3 for the first 10T tokens, then 0.1
  std::vector<int64_t> targets;   // [D]: T - k valid targets at depth k
  std::vector<double> sum;        // [D]: sum of -log P^k over the valid targets
  std::vector<double> per_token;  // [D]: sum / (T - k), as Megatron normalises
  std::vector<double> paper;      // [D]: sum / T, eq. (24) exactly
  double total_paper = 0;         // eq. (25): (lambda / D) sum_k paper[k]
  double total_per_token = 0;     // (lambda / D) sum_k per_token[k]
};
MtpLoss mtp_loss(const Model& m, std::span<const int32_t> ids, double lambda = 0.3,
                 AttnImpl impl = AttnImpl::kAbsorbed);

// Sum over rows r of -log softmax(logits.row(r))[targets[r]], in double.
double cross_entropy_sum(const Mat& logits, std::span<const int32_t> targets);

}  // namespace dsv3::model

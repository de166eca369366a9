// The optimizer step of DeepSeek-V3 training (training.md §6.6): clip the global gradient norm,
// AdamW with decoupled weight decay, then the auxiliary-loss-free bias update (§2.1.2); and the
// learning-rate schedule of §4.2 rescaled to the length of a run.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "reference/model/config.h"
#include "reference/model/weights.h"
#include "reference/train/objective.h"

namespace dsv3::train {

// Global L2 norm over every gradient tensor (correction biases have none), in double.
double grad_norm(const model::Config& c, const model::ModelWeights& grad);

// torch.nn.utils.clip_grad_norm_: when norm > max_norm, scale by max_norm / (norm + 1e-6).
// Returns the norm before clipping. max_norm <= 0 disables clipping.
double clip_grad_norm(const model::Config& c, model::ModelWeights& grad, double max_norm);
// The factor clip_grad_norm multiplies the gradients by (1 when no clipping happens).
float clip_scale(double norm, double max_norm);

// Sets every gradient to zero before a step's backward pass, in pieces shared by the threads
// (for the small config 1.2 GB, which one thread's setZero writes at a fraction of the
// machine's bandwidth).
void zero_grad(const model::Config& c, model::ModelWeights& grad);

struct AdamWOptions {
  double beta1 = 0.9;  // V3 §4.2
  double beta2 = 0.95;
  double eps = 1e-8;  // not stated in the paper; the usual value
  double weight_decay = 0.1;
  // V3 §3.3.3: the moments are stored in BF16 (round to nearest even after each update; the
  // step then reads the stored values). Master weights and gradients stay float32.
  bool bf16_moments = false;
};

struct AdamWState {
  int64_t step = 0;          // steps taken (t in the bias corrections)
  model::ModelWeights m, v;  // first and second moments, the weights' layout, float32
};

AdamWState adamw_init(const model::Config& c, const model::ModelWeights& w);

// One torch.optim.AdamW step, in its order of operations:
//   θ ← θ(1 − lr·wd)   (only tensors with >= 2 dimensions: no decay on 1-D norm weights)
//   m ← β1 m + (1 − β1) g;  v ← β2 v + (1 − β2) g²
//   θ ← θ − lr/(1 − β1^t) · m / (sqrt(v)/sqrt(1 − β2^t) + ε)
// A tensor that no token touched has a zero gradient and is still decayed and moved by its
// moments. Correction biases are not parameters and are left alone.
// grad_scale multiplies every gradient as it is read: adamw_step(..., clip_scale(norm, C)) on
// raw gradients equals clip_grad_norm then adamw_step, in one pass over memory instead of two.
// The fast form (what the trainer runs): the same operations on pieces of 2048 elements as
// vectorised array statements, shared by the threads piece by piece. Bit-identical to
// adamw_step_plain, the element-by-element loop kept beside it as the reference
// (test: Optimizer.FastAdamWEqualsThePlainLoopBitForBit).
void adamw_step(const model::Config& c, model::ModelWeights& w, const model::ModelWeights& grad,
                AdamWState& state, double lr, const AdamWOptions& opt, float grad_scale = 1.0f);
void adamw_step_plain(const model::Config& c, model::ModelWeights& w,
                      const model::ModelWeights& grad, AdamWState& state, double lr,
                      const AdamWOptions& opt, float grad_scale = 1.0f);

// Auxiliary-loss-free balancing (§2.1.2, LF Alg. 1): for every MoE layer of the step,
// b_i ← b_i + γ·sign(mean_j c_j − c_i), c = the tokens routed to each expert this step.
void update_biases(const model::Config& c, model::ModelWeights& w, const LossParts& step,
                   double gamma);

// MaxVio_batch per MoE layer of a step: (max_i c_i − mean c) / mean c.
std::vector<double> step_max_vio(const LossParts& step);

// Learning rate at step s (0-based) of n_steps:
//   constant: linear warm-up over `warmup` steps, then peak;
//   cosine: the V3 shape (§4.2) scaled to the run: warm-up, constant to 67.6% of the steps,
//           cosine to 0.1·peak by 96.6%, 0.1·peak to 98.9%, then 0.033·peak (7.3e-6 / 2.2e-4).
enum class Schedule { kConstant, kCosine };
Schedule parse_schedule(const std::string& s);  // throws std::invalid_argument
const char* to_string(Schedule s);
double learning_rate(Schedule s, double peak, int64_t step, int64_t n_steps, int64_t warmup);

}  // namespace dsv3::train

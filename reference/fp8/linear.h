// The model in FP8 (paper section 3.3.1, Fig. 6): every linear layer DeepSeek-V3 runs in FP8
// (attention projections, dense and expert FFNs) goes through the emulated FP8 GEMM with
// fine-grained scaling, via model::ForwardOptions::linear; embedding, output head, router, norms
// and attention scores stay in float32. Weights are quantized once per checkpoint tensor name
// and cached, or taken as they are from a checkpoint that stores F8_E4M3 codes with
// weight_scale_inv blocks.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "reference/fp8/gemm.h"
#include "reference/fp8/quant.h"
#include "reference/io/safetensors.h"
#include "reference/model/model.h"

namespace dsv3::fp8 {

enum class Scaling {
  kTile,    // DeepSeek-V3: 1x128 activation tiles, 128x128 weight blocks, scales at promotion
  kTensor,  // one scale per tensor (Transformer Engine style), applied after the GEMM
};

struct Fp8LinearOptions {
  GemmOptions gemm{Accum::kH100, kTile};
  Scaling scaling = Scaling::kTile;
  QuantOptions activations;  // E4M3 (the paper uses E4M3 for all tensors)
  QuantOptions weights;
  bool bf16_output = false;  // round y to BF16, as DeepGEMM writes it
};

using LinearHook = std::function<Mat(const Mat& x, const Mat& w, const std::string& name)>;

// y = x W^T through FP8. Thread-safe (the model calls it from its expert loop in parallel).
class Fp8Linear {
 public:
  explicit Fp8Linear(Fp8LinearOptions opt = {},
                     std::shared_ptr<const io::Checkpoint> checkpoint = nullptr);

  Mat operator()(const Mat& x, const Mat& w, const std::string& name);  // x [T, in], w [out, in]

  // The FP8 weight used for `name`: the checkpoint's own codes and weight_scale_inv when it
  // stores this tensor in FP8 with tile scaling, else w quantized (and cached by name).
  std::shared_ptr<const QMatrix> weight(const Mat& w, const std::string& name);

  const Fp8LinearOptions& options() const { return opt_; }
  int64_t calls() const;
  int64_t weights_from_checkpoint() const;  // distinct tensors taken as stored FP8 codes
  int64_t weights_quantized() const;        // distinct tensors quantized here

 private:
  Fp8LinearOptions opt_;
  std::shared_ptr<const io::Checkpoint> checkpoint_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<const QMatrix>> cache_;
  int64_t calls_ = 0, from_checkpoint_ = 0, quantized_ = 0;
};

// A hook for model::ForwardOptions::linear; copies of it share one Fp8Linear (one weight cache).
LinearHook make_linear_hook(const Fp8LinearOptions& opt = {},
                            std::shared_ptr<const io::Checkpoint> checkpoint = nullptr);

// The checkpoint that `model` (a built-in name, a folder or a config) stores its weights in:
// opened when it resolves to a folder, null otherwise (random weights: nothing stored).
std::shared_ptr<const io::Checkpoint> checkpoint_of(const std::string& model);

// For `dsv3 forward ... --precision fp8 [--accum h100|fp32|exact] [--promote NC]`:
// accum "h100" with promote NC > 0 (default 128) is DeepSeek-V3's recipe; promote 0 means no
// promotion at all, and since per-tile scales can only be applied at promotion, that mode uses
// per-tensor scaling (Transformer Engine with cuBLAS fast accumulation). When `model` names a
// checkpoint folder, its stored FP8 weights (F8_E4M3 + weight_scale_inv) are used as they are.
// Throws std::invalid_argument on a bad accum name or NC.
LinearHook make_forward_hook(const std::string& accum = "h100", int promote = kTile,
                             const std::string& model = "");

// For model::ForwardOptions::absorbed_weight in FP8 mode: the weight as the FP8 GEMMs see it,
// dequantized (the checkpoint's own FP8 codes when `model` stores them; else w quantized in
// 128x128 blocks, or per tensor when promote is 0, exactly as make_forward_hook quantizes it).
std::function<Mat(const Mat& w, const std::string& name)> make_absorbed_weight_hook(
    const std::string& accum = "h100", int promote = kTile, const std::string& model = "");

// Options for one accumulation choice as make_forward_hook interprets it.
Fp8LinearOptions forward_options(const std::string& accum, int promote);

// How far the logits move from float32 when the FP8-eligible linears run in FP8.
struct PrecisionRow {
  std::string label;     // e.g. "h100 N_C=128 (tile)"
  double rel_error = 0;  // ||L_fp8 - L_fp32||_F / ||L_fp32||_F
  // ||L_mode - L_exact||_F / ||L_exact||_F against FP8 with exact accumulation and the same
  // scaling. Not the accumulation error itself in an MoE model: a change this small still flips
  // expert choices that were near ties, and the flipped positions dominate the difference.
  double accum_rel_error = 0;
  double top1_agreement = 0;  // fraction of positions whose argmax is unchanged
  double kl_mean = 0;         // mean over positions of KL(p_fp32 || p_fp8), nats
  double kl_max = 0;
  int64_t positions = 0;
  // Filled by compare_precisions (0 from compare_logits):
  // fraction of (position, MoE layer) routing decisions whose expert set differs from float32;
  double route_flips = 0;
  // rel_error over the positions whose routing matches float32 in every layer (0 when none);
  double rel_error_same_routing = 0;
  // the standard error of rel_error from the sample of positions (bootstrap over positions).
  double rel_error_se = 0;
};

struct PrecisionMode {
  std::string label;
  Fp8LinearOptions options;
};
// exact, fp32, h100 N_C=32, h100 N_C=128 (tile scaling), and h100 without promotion (tensor).
std::vector<PrecisionMode> default_precision_modes();

// Runs `ids` as one prefill in float32 and in each mode; the checkpoint, when given, supplies
// stored FP8 weights. The reference is the float32 forward of the same weights (a checkpoint
// stored in FP8 is dequantized on load), so the error is activation quantization plus
// accumulation, amplified wherever a perturbed router picks other experts.
std::vector<PrecisionRow> compare_precisions(
    const model::Model& m, std::span<const int32_t> ids, const std::vector<PrecisionMode>& modes,
    std::shared_ptr<const io::Checkpoint> checkpoint = nullptr);

// Logit comparison on its own (rows are positions).
PrecisionRow compare_logits(const Mat& reference, const Mat& test);

}  // namespace dsv3::fp8

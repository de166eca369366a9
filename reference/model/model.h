// The DeepSeek-V3 reference model in float32: embedding, num_hidden_layers blocks of
// MLA + (dense SwiGLU | DeepSeekMoE), final RMSNorm, output head.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "reference/io/tokenizer.h"
#include "reference/model/config.h"
#include "reference/model/kv_cache.h"
#include "reference/model/native_weights.h"
#include "reference/model/rope.h"
#include "reference/model/router.h"
#include "reference/model/tensor.h"
#include "reference/model/trace.h"
#include "reference/model/weights.h"

namespace dsv3::model {

struct ForwardOptions {
  Trace* trace = nullptr;              // filled per token and layer when set
  std::vector<Mat>* hidden = nullptr;  // hidden.{0..L} as HF output_hidden_states: [T, d] each
  RouterOptions router;
  // When set, every linear layer that DeepSeek-V3 runs in FP8 (attention projections, dense
  // and expert FFNs; paper Fig. 6) calls this instead of x W^T. `name` is the checkpoint
  // tensor name, e.g. "model.layers.3.mlp.experts.5.up_proj.weight". Embedding, head,
  // router, norms and attention scores never go through it. It is called on the calling thread,
  // one layer after another in the model's order (the experts of a layer in ascending order):
  // hooks may record what they see without locking (the explorer's FP8 panel does).
  std::function<Mat(const Mat& x, const Mat& w, const std::string& name)> linear;
  // The absorbed attention form folds kv_b_proj into the query and output products instead of
  // running it as a GEMM. When set, it folds the matrix this returns for the weight (name as
  // above): FP8 mode returns dequant(quant(W^{UKV})) in 128x128 blocks, as DeepSeek's absorb
  // path dequantizes wkv_b before its einsums (model_spec §5.4).
  std::function<Mat(const Mat& w, const std::string& name)> absorbed_weight;
};

// RMSNorm of each row of x [T, d] with the learned weight [d] (eps from the config).
Mat rms_norm(const Mat& x, const Vec& weight, double eps);

// y = x W^T for x [T, in] and W [out, in] (the nn.Linear convention).
Mat matmul_wt(const Mat& x, const Mat& w);

// eq. (10) on one row of attention scores z [n], in place: p_s = exp(c z_s - m) / sum_s'
// exp(c z_s' - m), c the softmax scale and m the largest c z_s (MLA's softmax over the keys a
// query sees). The same bits as the plain loops (test DecodeStep.SoftmaxRowIsThePlainLoops).
void softmax_row(float* z, int64_t n, float c);

class Model {
 public:
  // Without a tokenizer the model uses the byte tokenizer.
  Model(Config config, ModelWeights weights,
        std::shared_ptr<const io::Tokenizer> tokenizer = nullptr);

  // "tiny", "small", ... (random weights from seed 0), a config.json path (random weights),
  // or a checkpoint folder (config.json + safetensors, and tokenizer.json when it has one).
  // WeightMode::kNative keeps a checkpoint's matrices as stored (mapped, FP8/BF16; see
  // native_weights.h); it needs a checkpoint folder (invalid_argument otherwise).
  static Model load(const std::string& name_or_dir, uint64_t seed = 0,
                    WeightMode mode = WeightMode::kF32);
  // A model on native weights: `weights` holds the vectors, `native` every matrix.
  Model(Config config, ModelWeights weights, std::shared_ptr<const NativeWeights> native,
        std::shared_ptr<const io::Tokenizer> tokenizer = nullptr);

  const Config& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  ModelWeights& mutable_weights() { return weights_; }  // e.g. the balance lab's live biases
  const RopeTable& rope() const { return rope_; }
  const io::Tokenizer& tokenizer() const { return *tokenizer_; }
  // True when the weights are random (a config without a checkpoint): everything the model
  // shows about routing, load and MTP is then noise, and views say so.
  bool random_weights() const { return random_; }
  std::shared_ptr<const io::Tokenizer> shared_tokenizer() const { return tokenizer_; }
  // The matrices as the checkpoint stores them, or null when the weights are float32 (then
  // every matrix is in weights()). With native weights, weights() holds only the vectors.
  const NativeWeights* native() const { return native_.get(); }
  WeightMode weight_mode() const { return native_ ? WeightMode::kNative : WeightMode::kF32; }
  // Embedding rows for ids: [n, d], in either weight mode.
  Mat embed(std::span<const int32_t> ids) const;
  // The float32 matrix `name` (checkpoint naming): `w` itself with float32 weights, else the
  // native matrix's float32 copy (NativeWeights::f32: made once, then kept).
  const Mat& f32_matrix(const Mat& w, const std::string& name) const;

  KVCache new_cache(AttnImpl impl) const { return KVCache(config_, impl); }

  // Runs ids at positions cache.length() .. + T - 1, appends them to the cache and
  // returns the logits [T, V]. Prefill (T > 1) and decode (T = 1) are the same call.
  Mat forward(std::span<const int32_t> ids, KVCache& cache, const ForwardOptions& opt = {}) const;

  // One transformer block (pre-norm MLA + FFN, two residual adds) over x [T, d] at positions
  // cache.length().. of `layer`'s cache slot; used by the main stack and by the MTP modules.
  Mat block(const LayerWeights& w, int layer_index, const Mat& x, KVCache& cache, int cache_layer,
            const ForwardOptions& opt, int64_t trace_offset) const;

  // Final RMSNorm + head.
  Mat head(const Mat& h_normed) const;

 private:
  Config config_;
  ModelWeights weights_;
  RopeTable rope_;
  std::shared_ptr<const io::Tokenizer> tokenizer_;
  bool random_ = false;
  std::shared_ptr<const NativeWeights> native_;
};

}  // namespace dsv3::model

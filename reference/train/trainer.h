// The training loop: batches from a safetensors file, loss and gradient (objective.h), clipping,
// AdamW and the bias update (optimizer.h), validation, a JSONL log, checkpoints with the
// optimizer state that resume bit-identically. `dsv3 train` and the explorer drive it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "reference/model/config.h"
#include "reference/model/rope.h"
#include "reference/model/weights.h"
#include "reference/train/changes.h"
#include "reference/train/fp8_linear.h"
#include "reference/train/objective.h"
#include "reference/train/optimizer.h"

namespace dsv3::train {

// Any problem with the options, the data or a checkpoint: one line, names the file.
struct TrainError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Where batches come from. A .safetensors file holding either
//   ids.step{k}     int64 [B, T]: step k trains on exactly that batch, or
//   tokens          1-D I64/I32/U16: a token stream (documents as BOS, tokens, EOS), optionally
//   domain_offsets  I64 [D+1]: where each domain of the stream starts (0, ..., numel(tokens)),
//                   their names comma-separated in the metadata key "domains".
// Step k reads B windows of T tokens at seeded random starts; a window never crosses a domain
// boundary (every sequence stays inside one domain, so experts can specialise by domain and a
// sequence-wise balance loss sees one domain at a time). Starts are uniform over all valid
// starts, so domains are sampled in proportion to their size.
// Validation reads fixed windows, spread round-robin over the domains, from a held-out file
// (`val_path`, same format) or, without one, from the last 5% of every domain.
class BatchSource {
 public:
  BatchSource(const std::string& path, int64_t vocab_size, const std::string& val_path = "");
  bool fixed() const { return fixed_; }
  // Batch of step k (0-based). Fixed batches ignore B and T.
  Batch train_batch(int64_t step, int64_t B, int64_t T, uint64_t seed) const;
  // The i-th of the fixed validation batches; nullopt when there is no held-out split.
  std::optional<Batch> val_batch(int64_t i, int64_t B, int64_t T) const;
  // The i-th fixed validation batch of one domain only (nullopt: the domain is shorter than T).
  std::optional<Batch> val_batch_of(int64_t domain, int64_t i, int64_t B, int64_t T) const;
  int64_t train_tokens() const { return static_cast<int64_t>(train_.tokens.size()); }
  int64_t val_tokens() const { return static_cast<int64_t>(val_.tokens.size()); }
  const std::vector<std::string>& domains() const { return train_.names; }
  const std::string& path() const { return path_; }

  // A token stream cut into domains: domain d is tokens[offsets[d], offsets[d+1]).
  struct Stream {
    std::vector<int32_t> tokens;
    std::vector<int64_t> offsets{0, 0};
    std::vector<std::string> names{"all"};
    int64_t size(size_t d) const { return offsets[d + 1] - offsets[d]; }
    size_t count() const { return names.size(); }
  };

 private:
  std::string path_;
  bool fixed_ = false;
  std::vector<Batch> steps_;
  Stream train_, val_;
};

struct TrainOptions {
  std::string model = "tiny";  // checkpoint folder, config.json or built-in name
  std::string data;
  std::string val_data;  // held-out stream; empty: the last 5% of every domain of `data`
  int64_t steps = 100;
  int64_t batch = 8, seq_len = 128;
  double lr = 1e-3;
  Schedule schedule = Schedule::kCosine;
  int64_t warmup = -1;  // -1: 2% of the steps (V3: 2K of ~100K steps)
  Objective objective;
  double bias_gamma = 1e-3;  // V3 §4.2
  // V3 §4.2's phase switches, scaled to the run: lambda 0.3 -> 0.1 after the first 10T of 14.8T
  // tokens (67.6%), gamma -> 0 for the last 500B (after 96.6%). Off: constant lambda and gamma.
  bool v3_phases = false;
  AdamWOptions adamw;
  // --precision: the FP8-eligible Linears in fp32, bf16 or fp8 (fp8_linear.h); fp8 also stores
  // the AdamW moments in BF16 (V3 §3.3.3).
  LowPrecision precision;
  // --val-precision: validation runs its forward in the training precision (in fp8 mode the
  // Fprop GEMMs in FP8, as the FP8-trained model runs; the default) or, with val_fp32, every
  // GEMM in float32 (the master weights as they are, without the FP8 forward's error).
  bool val_fp32 = false;
  double clip = 1.0;  // V3 §4.2
  uint64_t seed = 0;
  double init_std = 0;  // 0: 0.006 * sqrt(7168 / d), the paper's std*sqrt(d) kept (see docs)
  std::string save;     // output folder
  int64_t save_every = 100;
  int64_t eval_every = 0;  // 0: ten times per run
  int64_t eval_batches = 4;
  bool resume = false;
  // --replay: options set mid-run (changes.h), applied by run_training before step k+1.
  std::vector<OptionChange> changes;

  int64_t warmup_steps() const { return warmup >= 0 ? warmup : std::max<int64_t>(1, steps / 50); }
  // gamma and lambda in force at step k (0-based).
  double bias_gamma_at(int64_t k) const {
    if (objective.balance != BalanceMode::kLossFree) return 0.0;
    return v3_phases && static_cast<double>(k) >= 0.966 * static_cast<double>(steps) ? 0.0
                                                                                     : bias_gamma;
  }
  double mtp_lambda_at(int64_t k) const {
    return v3_phases && static_cast<double>(k) >= 0.676 * static_cast<double>(steps)
               ? objective.mtp_lambda / 3.0
               : objective.mtp_lambda;
  }
};

// The default init std for width d: V3 uses 0.006 at d = 7168; we keep std * sqrt(d).
double default_init_std(int64_t hidden_size);

struct StepRecord {
  int64_t step = 0;  // 1-based: steps done after this one
  LossParts loss;
  double grad_norm = 0;  // before clipping
  bool clipped = false;
  double lr = 0;
  double mtp_lambda = 0, bias_gamma = 0;  // in force at this step
  std::vector<double> max_vio;            // MaxVio_batch per MoE layer
  std::optional<double> val_loss;
  double seconds = 0;  // wall time of the step
  double tokens_per_s = 0;
};

class Trainer {
 public:
  explicit Trainer(TrainOptions opt);  // loads or initialises the model, or resumes

  const TrainOptions& options() const { return opt_; }
  // Mid-run changes (changes.h): the next train_step reads the options as they are then.
  TrainOptions& mutable_options() { return opt_; }
  const model::Config& config() const { return config_; }
  const model::ModelWeights& weights() const { return weights_; }
  int64_t step() const { return opt_state_.step; }
  bool done() const { return step() >= opt_.steps; }

  // One optimizer step. Throws TrainError (weights untouched) when the loss or the gradient
  // is not finite.
  StepRecord train_step();
  // Mean main-model loss over the validation batches (nullopt without a held-out split), in the
  // training precision unless options().val_fp32.
  std::optional<double> validate() const;
  // config.json, model.safetensors, optimizer.safetensors, trainer_state.json into opt.save.
  void save_checkpoint() const;
  // Appends one line to opt.save/log.jsonl.
  void log(const StepRecord& r) const;

 private:
  TrainOptions opt_;
  model::Config config_;
  model::RopeTable rope_;
  model::ModelWeights weights_;
  AdamWState opt_state_;
  model::ModelWeights grad_;  // reused every step (zeroed, not reallocated)
  std::unique_ptr<BatchSource> data_;
};

// The whole run of `dsv3 train`: progress on stderr when it is a terminal, checkpoints, Ctrl-C.
// stop is polled after each step (set by SIGINT). Returns the exit status.
int run_training(const TrainOptions& opt, std::atomic<bool>& stop);

// A time left as the progress bar and the Train panel show it: 12s, 4m07s, 3h05m ("?" unknown).
std::string format_duration(double seconds);

}  // namespace dsv3::train

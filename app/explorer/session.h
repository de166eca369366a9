// app::Session: the explorer's state - model, tokens, cursor, KV cache, one trace per computed
// position, selection and settings. Every front end (TUI, REPL, lessons, `dsv3 exec`) works on a
// Session through the command registry; none of them touches the model directly.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "reference/balance/model_balance.h"
#include "reference/fp8/panel.h"
#include "reference/io/tokenizer.h"
#include "reference/model/model.h"
#include "reference/model/sampling.h"
#include "reference/model/speculative.h"
#include "reference/train/live_run.h"
#include "visualizers/explorer_view.h"

namespace dsv3::app {

inline constexpr const char* kDefaultPrompt = "DeepSeek-V3 routes each token to 8 of 256 experts.";

struct SessionOptions {
  std::string model = "tiny";  // built-in name, config.json or checkpoint folder
  std::string prompt = kDefaultPrompt;
  model::AttnImpl attn = model::AttnImpl::kAbsorbed;
  uint64_t seed = 0;  // weights of built-in models
  // kNative keeps a checkpoint's matrices as stored (mapped FP8/BF16; --weights native): the
  // same numbers as float32 (model/native_weights.h), a fraction of the memory.
  model::WeightMode weights = model::WeightMode::kF32;
};

// Front-end settings that commands may change (`set colour mono`).
struct Settings {
  std::string colour = "auto";  // auto | 256 | 8 | mono
  // The pipeline panel's schedule (reference/pipeline): Fig. 5 of the report is DualPipe, 8 ranks,
  // 20 micro-batches.
  std::string schedule = "dualpipe";
  int ranks = 8;
  int micro_batches = 20;
  double pipeline_time = -1;  // the pipeline panel's time cursor, in F units (-1: none)
  int pipeline_zoom = 0;      // columns per time unit (0: fit; wider shows a window)
  // The MTP panel: drafts per speculative step (D; depths beyond the trained modules reuse them).
  int mtp_depth = 1;
  // A stand-in for a trained MTP module (random weights draft almost nothing right): with
  // probability mtp_agree each draft is replaced by the main model's own greedy token (the MTP
  // module still runs). -1: the module's own drafts. Greedy decoding only.
  double mtp_agree = -1;
  // The FP8 panel: which linear layer of the selected layer (index into fp8_linears()).
  int fp8_linear = 0;
};

// One linear layer's input for the FP8 panel: the cursor token's x [in] and the weight W [out, in].
struct LinearInput {
  std::string name;  // checkpoint tensor name, e.g. "model.layers.1.self_attn.q_a_proj.weight"
  RowVec x;
  Mat w;
};

// Called while computing several tokens: (done, total); return false to stop early.
using Progress = std::function<bool(int, int)>;

class Session {
 public:
  explicit Session(SessionOptions opt = {});
  ~Session();

  // Model and input. Each resets the tokens, the cache and the traces, then prefills the prompt.
  void load(const std::string& name_or_dir);
  void set_prompt(const std::string& text);
  void set_ids(std::vector<int32_t> ids);

  // Moves the cursor forward n positions: positions already computed are revisited as they
  // were; past the end, the next token is sampled from the last logits and computed.
  // Returns the number of positions moved.
  int step(int n = 1, const Progress& progress = {});
  int back(int n = 1);       // never recomputes; returns positions moved
  void go_to(int position);  // a computed position; throws std::out_of_range
  int generate(int n, const Progress& progress = {});  // appends n new tokens, cursor to the end

  // Attention form of the cache; switching recomputes every computed position in that form.
  model::AttnImpl attn() const { return attn_; }
  void set_attn(model::AttnImpl a);
  model::SamplingParams& sampling() { return sampling_; }
  const model::SamplingParams& sampling() const { return sampling_; }
  void set_top_k(int k);  // next-token candidates traced per position
  int top_k() const { return top_k_; }

  // Progress reporting for long steps and generations, set by the front end (the TUI draws a
  // progress line and stops at a key press); used when a call passes no Progress of its own.
  // It is called between units of work only, never after the last: there is nothing left to
  // stop, and a key the user typed for what comes next must not be taken as "stop".
  void set_progress_hook(Progress p) { progress_hook_ = std::move(p); }
  // True while the ncurses explorer shows the panels: they name its keys (", . choose").
  // Otherwise (REPL, `dsv3 exec`, lessons, tests) they name the commands that do the same.
  void set_keys_shown(bool on) { keys_shown_ = on; }
  bool keys_shown() const { return keys_shown_; }

  Settings& settings() { return settings_; }
  const Settings& settings() const { return settings_; }

  // Selection shared by panels and commands.
  int layer() const { return layer_; }
  void set_layer(int l);  // throws std::out_of_range
  int expert() const { return expert_; }
  void set_expert(int e);  // -1 clears; throws std::out_of_range

  const model::Model& model() const { return *model_; }
  const model::Config& config() const { return model_->config(); }
  const std::string& model_name() const { return model_name_; }
  // "random weights, seed S" for a model without a checkpoint, else "" (the header badge).
  std::string weights_note() const;
  const std::string& prompt() const { return prompt_; }
  const std::vector<int32_t>& tokens() const { return tokens_; }
  int prompt_len() const { return prompt_len_; }
  const std::vector<model::TokenTrace>& traces() const { return trace_.tokens; }
  int computed() const { return static_cast<int>(trace_.tokens.size()); }
  int cursor() const { return cursor_; }
  const model::KVCache& cache() const { return *cache_; }
  std::string piece(int32_t id) const { return tokenizer_->piece(id); }
  std::string text() const { return tokenizer_->decode(tokens_); }
  std::vector<float> bias(int layer) const;  // b_i of a MoE layer; empty for dense layers

  // The config used for "at real scale" numbers (DeepSeek-V3 671B), loaded once.
  const model::Config* real_config() const;

  // The pipeline panel: the schedule of settings() simulated and drawn (cached), with the time
  // cursor of settings().pipeline_time and the bars on one scale for every schedule.
  viz::Canvas pipeline_canvas(int w, int h) const;
  double pipeline_makespan() const;  // of the schedule of settings()
  // Moves the time cursor by dt (starting at 0 when there is none), clamped to [0, makespan].
  void move_pipeline_time(double dt);
  // The next (+1) or previous (-1) schedule that is valid for settings().ranks and micro-batches.
  std::string cycle_schedule(int dir);

  // Loss-free balancing live (§2.1.2, eq. 16 bias update): when on, every computed token's
  // routing moves the biases of every MoE layer by γ·sign(c̄ − c_i); a prefill counts as one
  // batch. Biases are model state: stepping back shows old traces but keeps today's biases.
  bool balancing() const { return balancer_ && balancer_->enabled(); }
  void set_balancing(bool on);
  double gamma() const { return balancer_ ? balancer_->gamma() : 0; }
  void set_gamma(double g);  // throws std::out_of_range outside (0, 1]
  int64_t bias_updates() const { return bias_updates_; }
  void reset_biases();  // back to the loaded model's biases
  // MaxVio_batch averaged over MoE layers, one value per bias update.
  std::vector<double> balance_history() const;

  // Speculative decoding with the MTP modules (§2.2, §5.4.3), one draft-verify step: the MTP
  // chain drafts settings().mtp_depth tokens after the last computed position, the main model
  // verifies them in one forward pass, and the accepted tokens (plus the correction or bonus
  // token) are appended and computed. The first call also runs the decoder's prefill.
  // Returns the number of tokens appended; throws std::runtime_error when the model has no
  // MTP module or the context is full.
  int mtp_step();
  // n steps with progress reporting (the TUI's hook: Esc stops); returns the steps run and
  // adds the tokens appended to *tokens.
  int mtp_steps(int n, int* tokens, const Progress& progress = {});
  const model::SpeculativeDecoder* speculative() const { return spec_.get(); }
  int mtp_start() const { return spec_start_; }  // the position the decoder started from
  int mtp_modules() const;
  void mtp_reset() {
    spec_.reset();
    drafter_.reset();
  }
  viz::Canvas mtp_canvas(int w, int h) const;

  // The FP8 panel: the linear layers (FP8 GEMMs in the paper's Fig. 6) of the selected layer
  // as the cursor token passes them, recomputed with the present weights (cached).
  const std::vector<LinearInput>& fp8_linears() const;
  fp8::LayerFp8View fp8_view() const;  // of settings().fp8_linear; throws when none
  viz::Canvas fp8_canvas(int w, int h) const;

  // Panel 9: a training run steps on its worker thread (reference/train/live_run.h) while the
  // explorer redraws from its snapshots; or a finished run read back from its folder.
  // session_train.cpp. start_training replaces (stops) a previous run.
  // Compare mode: `compare` (none | loss-free | aux | fp32 | bf16 | fp8) starts a second run from
  // the same seed and data with that one setting changed, saved in SAVE-COMPARE; panel 9 draws
  // both on shared scales and the controls steer both.
  void start_training(train::TrainOptions opt, bool paused, const std::string& compare = "");
  train::LiveRun* training() { return live_run_.get(); }
  // Every live run (the first, then the comparison): the controls act on all of them.
  std::vector<train::LiveRun*> training_runs();
  // The controls of panel 9 and `train`. With two runs they go through the Lockstep, so they
  // land after the same step in both; set_training throws TrainError on a bad KEY=VALUE.
  void pause_training();
  void resume_training();
  void step_training(int64_t n);
  void set_training(const train::OptionChange& c);
  void save_training();
  void stop_training();  // keeps the last checkpoint (of both runs)
  void open_training_log(const std::string& run_dir, const std::string& compare_dir = "");
  // The run panel 9 shows: the live run's latest snapshot, else the opened log; null if none.
  std::shared_ptr<const train::TrainSnapshot> train_snapshot() const;
  std::shared_ptr<const train::TrainSnapshot> compare_snapshot() const;  // null: no comparison
  // Panels 1-8 under the run's weights: the session's model becomes a copy of the weights after
  // the last finished step of the live run (or the last checkpoint of an opened run), named
  // "MODEL @ step N of DIR" in the header; the prompt is computed again under them. Later steps
  // leave the copy as it is. Returns N; throws std::runtime_error without a run.
  int64_t open_training_weights();
  int64_t trained_step() const { return trained_step_; }  // -1: not a run's weights
  viz::Canvas train_canvas(int w, int h) const;

  // Everything the panels need, as a view (valid while the session is not modified).
  viz::ExplorerView view() const;

 private:
  void adopt(std::unique_ptr<model::Model> m, const std::string& name);  // load()'s second half
  void reset_tokens(std::vector<int32_t> ids, int prompt_len);
  void compute_next();  // computes position computed(), sampling its token when unknown
  void after_tokens(size_t first_trace);  // balancing: observe traces [first, end), update

  std::unique_ptr<model::Model> model_;
  std::string model_name_;
  std::shared_ptr<const io::Tokenizer> tokenizer_;  // the model's
  std::string prompt_;
  std::vector<int32_t> tokens_;
  int prompt_len_ = 0;
  std::unique_ptr<model::KVCache> cache_;
  model::Trace trace_;
  std::vector<float> last_logits_;  // logits of the last computed position [V]
  int cursor_ = -1;
  int layer_ = 0;
  int expert_ = -1;
  int top_k_ = 10;
  model::AttnImpl attn_;
  model::SamplingParams sampling_;
  model::Rng rng_{0};
  uint64_t seed_ = 0;
  model::WeightMode weights_ = model::WeightMode::kF32;  // SessionOptions::weights
  Settings settings_;
  Progress progress_hook_;
  bool keys_shown_ = false;  // set_keys_shown
  mutable std::unique_ptr<model::Config> real_;
  mutable std::string pipeline_key_;
  mutable viz::Canvas pipeline_cached_;
  mutable double pipeline_makespan_ = 0;
  mutable std::string pipeline_scale_key_;
  mutable double pipeline_bubble_scale_ = 0;
  mutable int pipeline_memory_scale_ = 0;
  std::unique_ptr<balance::ModelBalancer> balancer_;
  std::vector<std::vector<float>> loaded_bias_;  // per layer, as loaded
  int64_t bias_updates_ = 0;
  bool replaying_ = false;  // recomputing known positions: no bias updates
  int64_t generation_ = 0;  // bumped whenever traces or weights change (cache keys)
  std::unique_ptr<model::MtpDrafter> drafter_;
  std::unique_ptr<model::SpeculativeDecoder> spec_;
  int spec_start_ = 0;
  int spec_depth_ = 0;
  double spec_agree_ = -1;
  std::vector<int32_t> mtp_truth_;  // committed + greedy continuation, for mtp_agree
  mutable std::string fp8_key_;
  mutable std::vector<LinearInput> fp8_linears_;
  mutable std::string fp8_view_key_;  // fp8_key_ and the linear: analyze_layer runs once per pick
  mutable fp8::LayerFp8View fp8_view_;
  std::unique_ptr<train::LiveRun> live_run_, compare_run_;
  std::shared_ptr<train::Lockstep> lockstep_;  // compare mode: the two runs step together
  std::shared_ptr<const train::TrainSnapshot> opened_run_, opened_compare_;
  int64_t trained_step_ = -1;  // open_training_weights
};

}  // namespace dsv3::app

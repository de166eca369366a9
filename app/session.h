// app::Session: the explorer's state - model, tokens, cursor, KV cache, one trace per computed
// position, selection and settings. Every front end (TUI, REPL, lessons, `dsv3 exec`) works on a
// Session through the command registry; none of them touches the model directly.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "reference/io/tokenizer.h"
#include "reference/model/model.h"
#include "reference/model/sampling.h"
#include "visualizers/explorer_view.h"

namespace dsv3::app {

inline constexpr const char* kDefaultPrompt = "DeepSeek-V3 routes each token to 8 of 256 experts.";

struct SessionOptions {
  std::string model = "tiny";  // built-in name, config.json or checkpoint folder
  std::string prompt = kDefaultPrompt;
  model::AttnImpl attn = model::AttnImpl::kAbsorbed;
  uint64_t seed = 0;  // weights of built-in models
};

// Front-end settings that commands may change (`set colour mono`).
struct Settings {
  std::string colour = "auto";  // auto | 256 | 8 | mono
  // The pipeline panel's schedule (reference/pipeline): Fig. 5 of the report is DualPipe, 8 ranks,
  // 20 micro-batches.
  std::string schedule = "dualpipe";
  int ranks = 8;
  int micro_batches = 20;
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
  void set_progress_hook(Progress p) { progress_hook_ = std::move(p); }

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
  const std::string& prompt() const { return prompt_; }
  const std::vector<int32_t>& tokens() const { return tokens_; }
  int prompt_len() const { return prompt_len_; }
  const std::vector<model::TokenTrace>& traces() const { return trace_.tokens; }
  int computed() const { return static_cast<int>(trace_.tokens.size()); }
  int cursor() const { return cursor_; }
  const model::KVCache& cache() const { return *cache_; }
  std::string piece(int32_t id) const { return tokenizer_.piece(id); }
  std::string text() const { return tokenizer_.decode(tokens_); }
  std::vector<float> bias(int layer) const;  // b_i of a MoE layer; empty for dense layers

  // The config used for "at real scale" numbers (DeepSeek-V3 671B), loaded once.
  const model::Config* real_config() const;

  // The pipeline panel: the schedule of settings() simulated and drawn (cached).
  viz::Canvas pipeline_canvas(int w, int h) const;

  // Everything the panels need, as a view (valid while the session is not modified).
  viz::ExplorerView view() const;

 private:
  void reset_tokens(std::vector<int32_t> ids, int prompt_len);
  void compute_next();  // computes position computed(), sampling its token when unknown

  std::unique_ptr<model::Model> model_;
  std::string model_name_;
  io::ByteTokenizer tokenizer_;
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
  Settings settings_;
  Progress progress_hook_;
  mutable std::unique_ptr<model::Config> real_;
  mutable std::string pipeline_key_;
  mutable viz::Canvas pipeline_cached_;
};

}  // namespace dsv3::app

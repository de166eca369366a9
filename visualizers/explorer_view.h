// ExplorerView: everything the explorer's panels may look at, gathered by the app's Session.
// Panels are pure functions of this view (and a size); they never see the model itself.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "reference/model/config.h"
#include "reference/model/trace.h"
#include "visualizers/canvas.h"

namespace dsv3::viz {

// One row of the key table; the TUI owns the table, the help overlay draws it.
struct KeyHelp {
  std::string keys;    // e.g. "→ l Space"
  std::string action;  // e.g. "step forward (compute the next token)"
};

struct ExplorerView {
  const model::Config* config = nullptr;
  std::string model_name;               // e.g. "tiny"
  std::string weights_note;             // "random weights, seed 0" (empty for a checkpoint)
  std::string attn_impl = "absorbed";   // "absorbed" | "naive"
  std::string precision = "fp32";       // weights/activations as computed
  std::vector<std::string> token_text;  // display text of every known token
  std::vector<int32_t> token_ids;       // [positions]
  int prompt_len = 0;                   // tokens [0, prompt_len) came from the prompt
  const std::vector<model::TokenTrace>* traces = nullptr;  // one per computed position
  int cursor = -1;                       // the position being looked at (-1: none yet)
  int layer = 0;                         // the selected layer
  int expert = -1;                       // the selected expert (-1: none)
  std::vector<std::vector<float>> bias;  // b_i per layer ([] for dense layers)
  int64_t kv_bytes_per_element = 4;      // the explorer's cache holds float32
  std::function<std::string(int32_t)> describe_token;  // id -> display text (the tokenizer's)
  // Live loss-free balancing (the expert-load panel's toggle): on/off, γ, updates so far.
  bool balancing = false;
  double gamma = 0;
  int64_t bias_updates = 0;
  // True in the ncurses explorer: panels name its keys ("+ - γ"). Elsewhere (REPL, `dsv3 exec`,
  // lessons) they name the commands that do the same (`balance gamma G`).
  bool keys_shown = false;
  // Panels other modules provide (pipeline timeline, MTP, FP8); empty -> a placeholder is drawn.
  std::function<Canvas(int w, int h)> pipeline_panel;
  std::function<Canvas(int w, int h)> mtp_panel;
  std::function<Canvas(int w, int h)> fp8_panel;
  std::function<Canvas(int w, int h)> train_panel;  // the `train` command's run (live or read)

  bool has_trace() const { return traces && cursor >= 0 && cursor < (int)traces->size(); }
  const model::TokenTrace& trace() const { return (*traces)[cursor]; }
  int num_layers() const { return config ? (int)config->num_hidden_layers : 0; }
  int num_experts() const { return config ? (int)config->n_routed_experts : 0; }
};

// Tokens routed to each expert over positions [0, upto], per layer: [layers][experts].
std::vector<std::vector<int64_t>> expert_counts(const ExplorerView& v, int upto);
// MaxVio of one layer's counts: (max load - mean load) / mean load (DeepSeek-V3 §4.5.2 / Wang
// et al. 2024); 0 when nothing was routed.
double max_vio(const std::vector<int64_t>& counts);
// MaxVio of one layer's running counts after each position 0..upto.
std::vector<double> max_vio_series(const ExplorerView& v, int layer, int upto);

}  // namespace dsv3::viz

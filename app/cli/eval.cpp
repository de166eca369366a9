// `dsv3 eval` and `dsv3 experts`: what a model learned, measured on a text (issue 13). eval
// reports the next-token loss and bits per byte; experts reports each routed expert's relative
// load per MoE layer (the paper's Figure 9) as a terminal heat map, JSON and SVG.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <numbers>
#include <string>
#include <vector>

#include "app/cli/cli.h"
#include "app/cli/model.h"
#include "reference/io/documents.h"
#include "reference/model/evaluate.h"
#include "visualizers/canvas.h"
#include "visualizers/expert_heatmap.h"
#include "visualizers/heatmap_svg.h"

namespace dsv3::app {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A text file's bytes and its documents (views into `bytes`).
struct TextFile {
  std::string path;
  std::string bytes;
  std::vector<std::string_view> docs;
};

// Reads a whole file; a missing, unreadable or empty file is a one-line usage error.
std::unique_ptr<TextFile> read_text(const std::string& path) {
  auto t = std::make_unique<TextFile>();
  t->path = path;
  t->bytes = read_file_arg("--text " + path, path);
  t->docs = io::split_documents(t->bytes);
  if (t->docs.empty())
    throw UsageError(fmt::format("--text {}: the text is empty (no document to run)", path));
  return t;
}

void check_context(int64_t context, int64_t min_context, const model::Model& m) {
  if (context < min_context)
    throw UsageError(
        fmt::format("--context must be at least {} tokens (got {})", min_context, context));
  const int64_t limit = m.config().max_position_embeddings;
  if (context > limit)
    throw UsageError(fmt::format(
        "--context {} exceeds model {}'s max_position_embeddings {}; use --context {} or less",
        context, m.config().name, limit, limit));
}

void check_common(int64_t context, int64_t min_context, int64_t max_tokens) {
  if (context < min_context)
    throw UsageError(
        fmt::format("--context must be at least {} tokens (got {})", min_context, context));
  if (max_tokens < 0) throw UsageError("--max-tokens must not be negative (0 = the whole text)");
}

model::TokenizedText tokenize(const model::Model& m, const TextFile& t, int64_t max_tokens) {
  const io::Tokenizer& tok = m.tokenizer();
  if (tok.vocab_size() > m.config().vocab_size)
    throw UsageError(
        fmt::format("model {}: its {} tokenizer has {} tokens but the model's vocabulary is {}",
                    m.config().name, tok.describe(), tok.vocab_size(), m.config().vocab_size));
  return model::tokenize_documents(tok, t.docs, max_tokens);
}

// "\r  eval: chunk 12/345" on a terminal's stderr once a run takes longer than a moment, at most
// five times a second; cleared when done.
class ProgressLine {
 public:
  ProgressLine(std::string what, int64_t min_chunks)
      : what_(std::move(what)), min_chunks_(min_chunks), tty_(isatty(STDERR_FILENO)) {}
  ~ProgressLine() {
    if (shown_) std::fputs("\r\033[K", stderr);
  }
  model::Progress callback() {
    if (!tty_) return {};
    return [this](int64_t done, int64_t total) {
      if (total < min_chunks_) return;
      auto now = std::chrono::steady_clock::now();
      if (!shown_ && now - start_ < std::chrono::milliseconds(300)) return;  // quick: no line
      if (shown_ && done < total && now - last_ < std::chrono::milliseconds(200)) return;
      last_ = now;
      shown_ = true;
      std::fprintf(stderr, "\r\033[K  %s: chunk %lld/%lld", what_.c_str(),
                   static_cast<long long>(done), static_cast<long long>(total));
      std::fflush(stderr);
    };
  }

 private:
  std::string what_;
  int64_t min_chunks_;
  bool tty_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_{};
};

// ---- eval ---------------------------------------------------------------------------------

struct EvalArgs {
  std::string model = "tiny";
  std::string text;
  int64_t context = 256;
  int64_t max_tokens = 0;
  uint64_t seed = 0;
  bool json = false;
};

void run_eval(const EvalArgs& a) {
  check_common(a.context, 2, a.max_tokens);
  std::unique_ptr<TextFile> text = read_text(a.text);
  model::Model m = load_model(a.model, a.seed);
  check_context(a.context, 2, m);
  model::TokenizedText tt = tokenize(m, *text, a.max_tokens);
  model::LossResult r;
  {
    ProgressLine progress("eval", 16);
    r = model::evaluate_loss(m, tt, a.context, progress.callback());
  }
  if (r.predicted == 0)
    throw UsageError(
        fmt::format("--text {}: nothing to predict (every chunk is one token)", a.text));
  if (a.json) {
    json j;
    j["model"] = m.config().name;
    j["random_weights"] = m.random_weights();
    j["tokenizer"] = m.tokenizer().describe();
    j["file"] = a.text;
    j["context"] = a.context;
    j["documents"] = r.documents;
    j["chunks"] = r.chunks;
    j["tokens"] = r.tokens;
    j["predicted"] = r.predicted;
    j["text_tokens"] = r.text_tokens;
    j["bytes"] = r.bytes;
    j["truncated"] = tt.truncated;
    j["nats"] = r.nats;
    j["loss"] = r.loss();
    j["perplexity"] = r.perplexity();
    j["bits_per_byte"] = r.bits_per_byte();
    j["bytes_per_token"] = r.bytes_per_token();
    std::fputs((j.dump() + "\n").c_str(), stdout);
    return;
  }
  fmt::print("model {} (tokenizer: {}) on {}{}\n", model_label(m, a.seed), m.tokenizer().describe(),
             a.text, tt.truncated ? fmt::format(" (first {} tokens)", a.max_tokens) : "");
  fmt::print("  documents        {}\n", r.documents);
  fmt::print("  bytes            {}  (UTF-8 text of the documents)\n", r.bytes);
  fmt::print("  tokens           {}  (BOS + text + EOS per document)\n", r.tokens);
  fmt::print("  predicted        {}  (every token after a chunk's first; {} chunk{} of <= {})\n",
             r.predicted, r.chunks, r.chunks == 1 ? "" : "s", a.context);
  fmt::print("  bytes per token  {:.3f}\n", r.bytes_per_token());
  fmt::print("  loss             {:.4f} nats per predicted token\n", r.loss());
  fmt::print("  perplexity       {:.2f}\n", r.perplexity());
  fmt::print("  bits per byte    {:.4f}  (loss x predicted / (bytes x ln 2))\n", r.bits_per_byte());
}

// ---- experts ------------------------------------------------------------------------------

struct ExpertsArgs {
  std::string model = "tiny";
  std::vector<std::string> texts;
  std::vector<std::string> labels;
  std::string svg;
  int64_t context = 256;
  int64_t max_tokens = 0;
  uint64_t seed = 0;
  double scale_max = 0;  // top of the colour scale; 0: the largest value, at least 2
  bool json = false;
  bool no_color = false;
  int width = 0;
};

struct TextLoad {
  std::string label, file;
  model::ExpertLoad load;
  std::vector<std::vector<double>> relative;  // [MoE layer][expert]
};

// The mean over MoE layers of each layer's largest relative load (the paper's Figure 9 numbers:
// 4.20 / 7.45 / 8.50 loss-free vs 2.75 / 2.88 / 3.35 aux-loss on Wikipedia / GitHub / math).
double mean_max(const TextLoad& t) {
  if (t.relative.empty()) return 0;
  double sum = 0;
  for (const auto& row : t.relative) sum += *std::max_element(row.begin(), row.end());
  return sum / static_cast<double>(t.relative.size());
}

double scale_top(const ExpertsArgs& a, const std::vector<TextLoad>& loads) {
  if (a.scale_max > 0) return a.scale_max;
  std::vector<viz::ExpertLoadPanel> panels;
  for (const TextLoad& t : loads) panels.push_back({t.label, "", t.load.moe_layers, t.relative});
  return viz::expert_load_scale(panels);
}

json layers_json(const TextLoad& t) {
  json layers = json::array();
  for (size_t i = 0; i < t.relative.size(); ++i) {
    double mx = 0;
    for (double v : t.relative[i]) mx = std::max(mx, v);
    layers.push_back({{"layer", t.load.moe_layers[i]},
                      {"relative_load", t.relative[i]},
                      {"max_relative_load", mx},
                      {"tokens_routed", t.load.counts[i]}});
  }
  return layers;
}

int terminal_width(int asked) {
  if (asked > 0) return std::max(40, asked);
  if (const char* cols = std::getenv("COLUMNS")) {
    const int w = std::atoi(cols);
    if (w >= 40) return std::min(w, 160);
  }
  return 100;
}

void print_heatmaps(const model::Model& m, const std::vector<TextLoad>& loads,
                    const ExpertsArgs& a) {
  std::vector<viz::ExpertLoadPanel> panels;
  for (const TextLoad& t : loads)
    panels.push_back({t.label, fmt::format("{} · {} tokens", t.file, t.load.tokens),
                      t.load.moe_layers, t.relative});
  const double vmax = scale_top(a, loads);
  const int width = terminal_width(a.width);
  const bool colour = !a.no_color && !viz::colour_disabled(STDOUT_FILENO);
  auto show = [&](const viz::Canvas& c) {
    std::fputs((colour ? viz::render_ansi(c) : viz::render_plain(c)).c_str(), stdout);
  };
  const model::Config& c = m.config();
  fmt::print(
      "Relative expert load, model {}: tokens routed to each expert / the mean over its {} "
      "experts (1 = balanced; top-{} of {} per token, group-limited, eq. 16)\n\n",
      model_label(m, a.seed), c.n_routed_experts, c.num_experts_per_tok, c.n_routed_experts);
  for (const viz::ExpertLoadPanel& p : panels) {
    show(viz::draw_expert_heatmap(c, p, vmax, width));
    std::fputs("\n", stdout);
  }
  show(viz::draw_expert_heatmap_legend(vmax, width));
}

std::string experts_svg(const model::Model& m, const std::vector<TextLoad>& loads,
                        const ExpertsArgs& a) {
  std::vector<viz::HeatmapPanel> panels;
  for (const TextLoad& t : loads) {
    viz::HeatmapPanel p;
    p.title = t.label;
    for (int l : t.load.moe_layers) p.row_labels.push_back(std::to_string(l));
    p.values = t.relative;
    panels.push_back(std::move(p));
  }
  const model::Config& c = m.config();
  viz::HeatmapSvgOptions o;
  o.title = fmt::format("Relative expert load, model {} (tokens routed / mean over {} experts)",
                        model_label(m, a.seed), c.n_routed_experts);
  o.x_label = "Expert";
  o.y_label = "MoE layer";
  o.scale_label = "Relative expert load";
  o.vmin = 0;
  o.vmax = scale_top(a, loads);  // the terminal map's scale
  o.scale_marks = {1.0};         // balanced
  o.column_group = c.n_group > 1 ? static_cast<int>(c.n_routed_experts / c.n_group) : 0;
  return viz::draw_heatmap_svg(panels, o);
}

void run_experts(const ExpertsArgs& a) {
  check_common(a.context, 1, a.max_tokens);
  if (a.scale_max < 0) throw UsageError("--scale-max must be positive (0 = automatic)");
  if (!a.labels.empty() && a.labels.size() != a.texts.size())
    throw UsageError(fmt::format("{} --label for {} --text; give one label per text, or none",
                                 a.labels.size(), a.texts.size()));
  std::vector<std::unique_ptr<TextFile>> texts;
  for (const std::string& path : a.texts) texts.push_back(read_text(path));
  model::Model m = load_model(a.model, a.seed);
  check_context(a.context, 1, m);
  if (m.config().n_routed_experts <= 0)
    throw UsageError(fmt::format("model {} has no routed experts", m.config().name));

  std::vector<TextLoad> loads;
  for (size_t i = 0; i < texts.size(); ++i) {
    model::TokenizedText tt = tokenize(m, *texts[i], a.max_tokens);
    ProgressLine progress(fmt::format("experts {}", texts[i]->path), 16);
    model::ExpertLoad load = model::expert_load(m, tt, a.context, progress.callback());
    std::string label = a.labels.empty() ? fs::path(a.texts[i]).stem().string() : a.labels[i];
    auto rel = load.relative_load();
    loads.push_back({label, a.texts[i], std::move(load), std::move(rel)});
  }
  if (!a.svg.empty()) {
    std::ofstream f(a.svg, std::ios::binary);
    f << experts_svg(m, loads, a);
    if (!f) throw UsageError(fmt::format("--svg {}: cannot write the file", a.svg));
  }
  if (a.json) {
    json j;
    j["model"] = m.config().name;
    j["random_weights"] = m.random_weights();
    j["experts"] = m.config().n_routed_experts;
    j["context"] = a.context;
    if (loads.size() == 1) {
      j["label"] = loads[0].label;
      j["file"] = loads[0].file;
      j["tokens"] = loads[0].load.tokens;
      j["mean_max_relative_load"] = mean_max(loads[0]);
      j["layers"] = layers_json(loads[0]);
    } else {
      json arr = json::array();
      for (const TextLoad& t : loads)
        arr.push_back({{"label", t.label},
                       {"file", t.file},
                       {"tokens", t.load.tokens},
                       {"mean_max_relative_load", mean_max(t)},
                       {"layers", layers_json(t)}});
      j["texts"] = arr;
    }
    std::fputs((j.dump() + "\n").c_str(), stdout);
    return;
  }
  print_heatmaps(m, loads, a);
  if (!a.svg.empty()) fmt::print("wrote {}\n", a.svg);
}

}  // namespace

void add_eval_commands(CLI::App& app) {
  auto ea = std::make_shared<EvalArgs>();
  CLI::App* e = app.add_subcommand(
      "eval", "Loss and bits per byte of a model on a text (documents split at 0x1E lines)");
  e->add_option("--model", ea->model,
                "Checkpoint folder, config.json, or built-in name (tiny, small, ...)")
      ->capture_default_str();
  e->add_option("--text", ea->text, "Text file; a corpus file's 0x1E lines separate documents")
      ->required();
  e->add_option(
       "--context", ea->context,
       "Tokens per chunk, each run through a fresh cache (at most max_position_embeddings)")
      ->capture_default_str();
  e->add_option("--max-tokens", ea->max_tokens, "Only the first N tokens (0 = the whole text)")
      ->capture_default_str();
  e->add_option("--seed", ea->seed, "Seed of the random weights (built-in models, bare configs)");
  e->add_flag("--json", ea->json, "Machine-readable output");
  e->callback([ea] { run_eval(*ea); });

  auto xa = std::make_shared<ExpertsArgs>();
  CLI::App* x = app.add_subcommand(
      "experts",
      "Relative load of every routed expert per MoE layer on one or more texts (Figure 9)");
  x->add_option("--model", xa->model,
                "Checkpoint folder, config.json, or built-in name (tiny, small, ...)")
      ->capture_default_str();
  x->add_option("--text", xa->texts, "Text file (repeat for several, shown side by side)")
      ->required();
  x->add_option("--label", xa->labels, "A name per --text, in order (default: the file stem)");
  x->add_option("--svg", xa->svg, "Also write the heat maps as an SVG figure to this file");
  x->add_option(
       "--context", xa->context,
       "Tokens per chunk, each run through a fresh cache (at most max_position_embeddings)")
      ->capture_default_str();
  x->add_option("--max-tokens", xa->max_tokens,
                "Only the first N tokens of each text (0 = the whole text)")
      ->capture_default_str();
  x->add_option("--seed", xa->seed, "Seed of the random weights (built-in models, bare configs)");
  x->add_option("--scale-max", xa->scale_max,
                "Top of the shared colour scale, larger loads saturate (the paper's Figure 9 "
                "uses 10; default: the largest load, at least 2)");
  x->add_flag("--json", xa->json, "Machine-readable output");
  x->add_flag("--no-color", xa->no_color, "Plain text even on a terminal");
  x->add_option("--width", xa->width, "Heat map width in columns (default: $COLUMNS, else 100)");
  x->callback([xa] { run_experts(*xa); });
}

}  // namespace dsv3::app

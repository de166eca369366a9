// Query commands: info, show (any traced tensor by name), export, pipeline.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "app/commands/registry.h"
#include "app/commands/util.h"
#include "app/explorer/session.h"
#include "reference/io/safetensors.h"
#include "visualizers/explorer_style.h"

// Command declarations are aggregates whose trailing fields keep their defaults.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace dsv3::app {

using nlohmann::json;

std::string quoted_piece(const Session& s, int position) {
  if (position < 0 || position >= static_cast<int>(s.tokens().size())) return "?";
  return "'" + s.piece(s.tokens()[position]) + "'";
}

Output kv_table(const model::Config& c, int64_t n, bool as_json) {
  auto forms = viz::kv_forms(c);
  Output o;
  if (as_json) {
    json rows = json::array();
    for (const auto& f : forms)
      rows.push_back({{"form", f.name},
                      {"elements_per_token_per_layer", f.per_token_layer},
                      {"bytes_bf16", f.per_token_layer * c.num_hidden_layers * n * 2},
                      {"bytes_fp32", f.per_token_layer * c.num_hidden_layers * n * 4}});
    o.text =
        json{{"config", c.name}, {"context", n}, {"layers", c.num_hidden_layers}, {"forms", rows}}
            .dump(2);
    return o;
  }
  o.text =
      fmt::format("KV cache of {} ({} layers) at {} tokens:\n", c.name, c.num_hidden_layers, n);
  o.text += fmt::format("  {:<6} {:<22} {:>14} {:>12} {:>12} {:>8}\n", "form", "cached per token",
                        "values/tok/layer", "BF16", "FP32", "× MLA");
  for (const auto& f : forms) {
    double v = static_cast<double>(f.per_token_layer) * c.num_hidden_layers * n;
    o.text += fmt::format("  {:<6} {:<22} {:>14} {:>12} {:>12} {:>8.1f}\n", f.name, f.detail,
                          f.per_token_layer, viz::style::human_bytes(2 * v),
                          viz::style::human_bytes(4 * v),
                          static_cast<double>(f.per_token_layer) / forms[0].per_token_layer);
  }
  return o;
}

namespace {

// A traced tensor: shape and values (row-major), and the position it was traced at.
struct Tensor {
  std::vector<int64_t> shape;
  std::vector<double> values;
  int position = -1;
};

template <typename T>
Tensor vec(const std::vector<T>& v) {
  return Tensor{{static_cast<int64_t>(v.size())}, std::vector<double>(v.begin(), v.end())};
}

std::vector<std::string> tensor_names(const Session& s) {
  std::vector<std::string> out{"tokens", "top_next.ids", "top_next.p"};
  for (int l = 0; l < s.config().num_hidden_layers; ++l) {
    std::string p = fmt::format("layer.{}.", l);
    out.push_back(p + "attn");
    out.push_back(p + "cache_bytes");
    if (!s.config().is_moe_layer(l)) continue;
    for (const char* f :
         {"logits", "scores", "biased", "group_scores", "groups_kept", "topk_idx", "topk_weight"})
      out.push_back(p + "router." + f);
    out.push_back(p + "bias");
  }
  return out;
}

Tensor lookup_at(const Session& s, std::string name, int pos);

// NAME or token.T.NAME; the result carries the position it was read at (T, else the cursor).
Tensor lookup(const Session& s, std::string name) {
  int pos = s.cursor();
  if (name.rfind("token.", 0) == 0) {
    size_t dot = name.find('.', 6);
    std::string digits = dot == std::string::npos ? "" : name.substr(6, dot - 6);
    if (digits.empty() || digits.size() > 9 ||
        !std::all_of(digits.begin(), digits.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
      throw CommandError("show: expected token.T.NAME with T a position, e.g. token.3.tokens");
    pos = std::stoi(digits);
    name = name.substr(dot + 1);
    if (pos < 0 || pos >= s.computed())
      throw CommandError(
          fmt::format("show: position {} is not computed (0..{})", pos, s.computed() - 1));
  }
  Tensor t = lookup_at(s, name, pos);
  t.position = pos;
  return t;
}

Tensor lookup_at(const Session& s, std::string name, int pos) {
  if (name == "tokens") return vec(s.tokens());
  if (pos < 0) throw CommandError("show: nothing computed yet");
  const model::TokenTrace& tt = s.traces()[pos];
  if (name == "top_next.ids" || name == "top_next.p") {
    std::vector<double> v;
    for (auto [id, p] : tt.top_next) v.push_back(name == "top_next.ids" ? id : p);
    return vec(v);
  }
  int l = -1;
  char field[64] = {0};
  if (std::sscanf(name.c_str(), "layer.%d.%63s", &l, field) == 2 && l >= 0 &&
      l < (int)tt.layers.size()) {
    const model::LayerTrace& lt = tt.layers[l];
    std::string f = field;
    if (f == "attn") {
      Tensor t{{static_cast<int64_t>(lt.attn.size()),
                lt.attn.empty() ? 0 : static_cast<int64_t>(lt.attn[0].size())},
               {}};
      for (const auto& row : lt.attn) t.values.insert(t.values.end(), row.begin(), row.end());
      return t;
    }
    if (f == "cache_bytes") return Tensor{{}, {static_cast<double>(lt.cache_bytes)}};
    // A dense layer (the first first_k_dense_replace) has no router: say so, never print zeros.
    if ((f == "bias" || f.rfind("router.", 0) == 0) && !lt.moe)
      throw CommandError(
          fmt::format("show: layer {} is dense (first_k_dense_replace = {}): it has "
                      "no router, so no {}",
                      l, s.config().first_k_dense_replace, f));
    // b_i in force when this position was routed (eq. 16); `bias` shows today's.
    if (f == "bias") return vec(lt.bias);
    const model::RouteResult& r = lt.router;
    if (f == "router.logits") return vec(r.logits);
    if (f == "router.scores") return vec(r.scores);
    if (f == "router.biased") return vec(r.biased);
    if (f == "router.group_scores") return vec(r.group_scores);
    if (f == "router.groups_kept") return vec(r.groups_kept);
    if (f == "router.topk_idx") return vec(r.topk_idx);
    if (f == "router.topk_weight") return vec(r.topk_weight);
  }
  throw CommandError(fmt::format(
      "show: no traced tensor '{}' (Tab lists them, e.g. layer.1.router.scores)", name));
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

Output show(Session& s, const Args& a, const Context&) {
  std::string name = a.str("NAME");
  Tensor t = lookup(s, name);
  const auto& v = t.values;
  double mn = v.empty() ? 0 : *std::min_element(v.begin(), v.end());
  double mx = v.empty() ? 0 : *std::max_element(v.begin(), v.end());
  double mean = v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / v.size();
  double var = 0;
  for (double x : v) var += (x - mean) * (x - mean);
  double sd = v.empty() ? 0 : std::sqrt(var / v.size());
  Output o;
  if (a.flag("json")) {
    o.text =
        json{{"name", name}, {"position", t.position}, {"shape", t.shape}, {"values", v}}.dump(2);
    return o;
  }
  o.text = fmt::format(
      "{}  shape {}  at position {}\n  min {:.6g}  max {:.6g}  mean {:.6g}  std {:.6g}\n", name,
      shape_str(t.shape), t.position, mn, mx, mean, sd);
  int64_t cols = t.shape.size() == 2 ? t.shape[1] : static_cast<int64_t>(v.size());
  int64_t rows = t.shape.size() == 2 ? t.shape[0] : 1;
  for (int64_t r = 0; r < std::min<int64_t>(rows, 8); ++r) {
    o.text += "  [";
    for (int64_t c = 0; c < std::min<int64_t>(cols, 16); ++c)
      o.text += fmt::format("{}{:.4g}", c ? ", " : "", v[r * cols + c]);
    o.text += cols > 16 ? fmt::format(", … {} more]\n", cols - 16) : "]\n";
  }
  if (rows > 8) o.text += fmt::format("  … {} more rows\n", rows - 8);
  return o;
}

json trace_json(const Session& s) {
  json tokens = json::array();
  for (size_t t = 0; t < s.traces().size(); ++t) {
    const model::TokenTrace& tt = s.traces()[t];
    json layers = json::array();
    for (const model::LayerTrace& lt : tt.layers) {
      json l = {
          {"layer", lt.layer}, {"moe", lt.moe}, {"cache_bytes", lt.cache_bytes}, {"attn", lt.attn}};
      if (lt.moe)
        l["router"] = {
            {"logits", lt.router.logits},           {"scores", lt.router.scores},
            {"biased", lt.router.biased},           {"group_scores", lt.router.group_scores},
            {"groups_kept", lt.router.groups_kept}, {"topk_idx", lt.router.topk_idx},
            {"topk_weight", lt.router.topk_weight}, {"bias", lt.bias}};
      layers.push_back(std::move(l));
    }
    json top = json::array();
    for (auto [id, p] : tt.top_next) top.push_back({{"id", id}, {"p", p}});
    tokens.push_back({{"position", tt.position},
                      {"token", tt.token},
                      {"piece", s.piece(tt.token)},
                      {"layers", layers},
                      {"top_next", top}});
  }
  return json{{"model", s.model_name()},
              {"config", model::to_json(s.config())},
              {"attn", model::to_string(s.attn())},
              {"ids", s.tokens()},
              {"prompt_len", s.prompt_len()},
              {"text", s.text()},
              {"traces", tokens}};
}

// Stacks per-position vectors into [T, n] (rows of dense layers or missing data stay zero).
void add_stacked(io::SafetensorsWriter& w, const std::string& name, const Session& s,
                 const std::function<std::vector<float>(const model::TokenTrace&)>& get) {
  size_t T = s.traces().size(), n = 0;
  for (const auto& tt : s.traces()) n = std::max(n, get(tt).size());
  if (n == 0) return;
  Mat m = Mat::Zero(static_cast<Eigen::Index>(T), static_cast<Eigen::Index>(n));
  for (size_t t = 0; t < T; ++t) {
    auto v = get(s.traces()[t]);
    for (size_t i = 0; i < v.size(); ++i) m(t, i) = v[i];
  }
  w.add(name, m);
}

void write_safetensors(const Session& s, const std::string& path) {
  io::SafetensorsWriter w;
  std::vector<int64_t> ids(s.tokens().begin(), s.tokens().end());
  w.add_i64("ids", {static_cast<int64_t>(ids.size())}, ids);
  size_t T = s.traces().size();
  int L = static_cast<int>(s.config().num_hidden_layers);
  int64_t H = s.config().num_attention_heads;
  for (int l = 0; l < L; ++l) {
    auto field = [&](auto member) {
      return [l, member](const model::TokenTrace& tt) {
        const auto& src = tt.layers[l].router.*member;
        return std::vector<float>(src.begin(), src.end());
      };
    };
    std::string p = fmt::format("layer.{}.", l);
    if (s.config().is_moe_layer(l)) {
      add_stacked(w, p + "router.logits", s, field(&model::RouteResult::logits));
      add_stacked(w, p + "router.scores", s, field(&model::RouteResult::scores));
      add_stacked(w, p + "router.biased", s, field(&model::RouteResult::biased));
      add_stacked(w, p + "router.group_scores", s, field(&model::RouteResult::group_scores));
      add_stacked(w, p + "router.topk_weight", s, field(&model::RouteResult::topk_weight));
      // b_i in force at each position (eq. 16): biased = scores + bias row by row.
      add_stacked(w, p + "bias", s, [l](const model::TokenTrace& tt) { return tt.layers[l].bias; });
      std::vector<int64_t> idx;
      int64_t k = s.config().num_experts_per_tok;
      for (const auto& tt : s.traces())
        for (int64_t j = 0; j < k; ++j)
          idx.push_back(j < (int64_t)tt.layers[l].router.topk_idx.size()
                            ? tt.layers[l].router.topk_idx[j]
                            : -1);
      w.add_i64(p + "router.topk_idx", {static_cast<int64_t>(T), k}, idx);
    }
    // Attention [T, H, T]: row t holds positions 0..t, zeros after (causal).
    std::vector<float> attn(T * H * T, 0.f);
    for (size_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H && h < (int64_t)s.traces()[t].layers[l].attn.size(); ++h) {
        const auto& row = s.traces()[t].layers[l].attn[h];
        std::copy(row.begin(), row.begin() + std::min(row.size(), T),
                  attn.begin() + (t * H + h) * T);
      }
    w.add(p + "attn", io::DType::kF32, {static_cast<int64_t>(T), H, static_cast<int64_t>(T)},
          attn.data(), attn.size() * sizeof(float));
  }
  w.set_metadata("model", s.model_name());
  w.set_metadata("attn", model::to_string(s.attn()));
  w.set_metadata("config", model::to_json(s.config()).dump());
  w.write(path);
}

Output export_traces(Session& s, const Args& a, const Context&) {
  const std::string& path = a.str("FILE");
  auto ends = [&](const char* ext) {
    std::string e = ext;
    return path.size() >= e.size() && path.compare(path.size() - e.size(), e.size(), e) == 0;
  };
  if (ends(".json")) {
    std::ofstream f(path);
    if (!f) throw CommandError(fmt::format("export: cannot write {}", path));
    // The decoded text of byte tokens (0x80..0xFF alone) is no valid UTF-8: U+FFFD, not a throw.
    f << trace_json(s).dump(1, ' ', false, json::error_handler_t::replace) << "\n";
    if (!f) throw CommandError(fmt::format("export: writing {} failed", path));
  } else if (ends(".safetensors")) {
    write_safetensors(s, path);
  } else {
    throw CommandError("export: FILE must end in .json or .safetensors");
  }
  Output o;
  o.text = fmt::format("wrote {} positions of traces to {}", s.computed(), path);
  return o;
}

Output info(Session& s, const Args& a, const Context&) {
  model::Config c = a.has("CONFIG") ? model::resolve_config(a.str("CONFIG")) : s.config();
  if (c.name.empty()) c.name = a.has("CONFIG") ? a.str("CONFIG") : s.model_name();
  Output o;
  if (a.flag("json")) {
    o.text = model::to_json(c).dump(2);
    return o;
  }
  auto kv = viz::kv_forms(c);
  o.text = fmt::format(
      "{} ({})\n"
      "  layers {} ({} dense, {} MoE), hidden d = {}, vocab {}\n"
      "  MLA: {} heads, d_h = {}, d^R_h = {}, d_v = {}, d_c = {}, d'_c = {}\n"
      "  MoE: {} routed + {} shared experts, top-{} within {} of {} groups, expert width {}\n"
      "  gate: {}{}, routed_scaling_factor {}\n"
      "  KV cache: {} values per token per layer (MHA with these heads: {})\n"
      "  MTP depth {}, max positions {}\n",
      c.name, c.source, c.num_hidden_layers, c.num_hidden_layers - c.num_moe_layers(),
      c.num_moe_layers(), c.hidden_size, c.vocab_size, c.num_attention_heads, c.qk_nope_head_dim,
      c.qk_rope_head_dim, c.v_head_dim, c.kv_lora_rank, c.q_lora_rank, c.n_routed_experts,
      c.n_shared_experts, c.num_experts_per_tok, c.topk_group, c.n_group, c.moe_intermediate_size,
      c.scoring_func == model::ScoringFunc::kSigmoid ? "sigmoid" : "softmax",
      c.has_correction_bias() ? " + correction bias (aux-loss-free)" : "", c.routed_scaling_factor,
      kv.front().per_token_layer,
      std::find_if(kv.begin(), kv.end(), [](const auto& f) { return f.name == "MHA"; })
          ->per_token_layer,
      c.num_nextn_predict_layers, c.max_position_embeddings);
  return o;
}

}  // namespace

void add_query_commands(Registry& r) {
  r.add({"info",
         {},
         "a model config's shape: layers, MLA and MoE sizes, KV per token",
         "Without CONFIG: the loaded model. `dsv3 info` on the command line gives the full "
         "accounting.",
         {{"CONFIG",
           ArgKind::kPath,
           "built-in name or config.json",
           "",
           false,
           {},
           INT64_MIN,
           INT64_MAX,
           [](const Session&) {
             return std::vector<std::string>{"tiny",    "tiny-random", "small",
                                             "v3-671b", "v2-236b",     "v2-lite-16b"};
           }}},
         {json_flag()},
         info});

  r.add(
      {"show",
       {"tensor"},
       "any traced tensor by name, with shape, statistics and a slice",
       "Names: tokens, top_next.ids, top_next.p, layer.L.attn, layer.L.cache_bytes, layer.L.bias,\n"
       "layer.L.router.{logits,scores,biased,group_scores,groups_kept,topk_idx,topk_weight};\n"
       "prefix token.T. for another position than the cursor. layer.L.bias is b_i as it was when\n"
       "that position was routed (`bias` shows today's); dense layers have no router.",
       {{"NAME", ArgKind::kWord, "tensor name", "", true, {}, INT64_MIN, INT64_MAX, tensor_names}},
       {json_flag()},
       show});

  r.add({"export",
         {},
         "write the session's traces to FILE.json or FILE.safetensors",
         "safetensors holds ids, and per layer router.* and bias stacked over positions [T, n] and "
         "attn [T, H, T].",
         {{"FILE", ArgKind::kPath, "output file (.json or .safetensors)", "", true}},
         {},
         export_traces});

  r.add(
      {"pipeline",
       {"pp"},
       "the pipeline panel: a schedule's timeline on RANKS devices with MICRO micro-batches",
       "Simulates the schedule with F = 1, B = 2, W = 1 (the report's Fig. 5 units) and draws "
       "one row\n"
       "per rank. The lessons' `pp-sim` and `pp-table` and `dsv3 pipeline` go further.",
       {{"SCHEDULE",
         ArgKind::kChoice,
         "schedule",
         "",
         false,
         {"gpipe", "1f1b", "zb1p", "dualpipe", "dualpipev"}},
        {"RANKS", ArgKind::kInt, "pipeline ranks", "", false, {}, 1, 64},
        {"MICRO", ArgKind::kInt, "micro-batches", "", false, {}, 1, 512}},
       {{"time", ArgKind::kFloat, true,
         "put the time cursor at T (F units; shows each rank's op and memory then); -1 hides it"}},
       [](Session& s, const Args& a, const Context& ctx) {
         Settings next = s.settings();
         if (a.has("SCHEDULE")) next.schedule = a.str("SCHEDULE");
         if (a.has("RANKS")) next.ranks = static_cast<int>(a.integer("RANKS"));
         if (a.has("MICRO")) next.micro_batches = static_cast<int>(a.integer("MICRO"));
         if (a.has("time")) next.pipeline_time = a.real("time") < 0 ? -1 : a.real("time");
         Settings saved = s.settings();
         s.settings() = next;
         Output o;
         try {
           if (s.settings().pipeline_time >= 0) s.move_pipeline_time(0);  // clamp to makespan
           o.canvas = viz::panel_canvas(s.view(), viz::Panel::kPipeline, nullptr, ctx.width, 0);
         } catch (const std::exception& e) {
           s.settings() = saved;
           throw CommandError(fmt::format("pipeline: {}", e.what()));
         }
         o.panel = viz::Panel::kPipeline;
         o.text = fmt::format("{} on {} ranks, {} micro-batches", next.schedule, next.ranks,
                              next.micro_batches);
         return o;
       }});
}

}  // namespace dsv3::app

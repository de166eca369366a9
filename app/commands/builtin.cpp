// The built-in commands of the explorer's command language.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "app/commands/registry.h"
#include "app/commands/util.h"
#include "app/explorer/session.h"
#include "reference/io/safetensors.h"
#include "reference/io/tokenizer.h"
#include "visualizers/explorer_screen.h"
#include "visualizers/explorer_style.h"

// Command declarations are aggregates whose trailing fields keep their defaults.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace dsv3::app {

namespace {

using nlohmann::json;
using viz::Panel;

const std::vector<std::string> kModelNames = {"tiny",    "tiny-random", "small",      "tiny-yarn",
                                              "v3-671b", "v2-236b",     "v2-lite-16b"};
const std::vector<std::string> kPanelNames = {"routing",  "load",   "kv",  "attention",
                                              "pipeline", "logits", "mtp", "fp8"};

Output text(std::string t) {
  Output o;
  o.text = std::move(t);
  return o;
}

Output picture(viz::Canvas c, std::optional<Panel> p = std::nullopt, std::string t = {}) {
  Output o;
  o.canvas = std::move(c);
  o.panel = p;
  o.text = std::move(t);
  return o;
}

Output json_out(const json& j) {
  return text(j.dump(2));
}

std::string where(const Session& s) {
  if (s.cursor() < 0) return "no position computed";
  return fmt::format("position {} {} (computed 0..{})", s.cursor(), quoted_piece(s, s.cursor()),
                     s.computed() - 1);
}

json route_json(const Session& s, int pos, int layer) {
  const model::LayerTrace& lt = s.traces()[pos].layers[layer];
  const model::RouteResult& r = lt.router;
  return json{{"position", pos},
              {"token", s.tokens()[pos]},
              {"layer", layer},
              {"moe", lt.moe},
              {"logits", r.logits},
              {"scores", r.scores},
              // b_i in force when this position was routed (eq. 16), not today's: with live
              // balancing the biases move on, and bias + scores must stay equal to biased.
              {"bias", lt.bias},
              {"biased", r.biased},
              {"group_scores", r.group_scores},
              {"groups_kept", r.groups_kept},
              {"topk_idx", r.topk_idx},
              {"topk_weight", r.topk_weight}};
}

void require_trace(const Session& s) {
  if (s.cursor() < 0) throw CommandError("nothing computed yet: `prompt TEXT` or `step` first");
}

// ---- the commands ---------------------------------------------------------------------------

void add_session_commands(Registry& r) {
  r.add({"help",
         {"?"},
         "list the commands, or explain one",
         "",
         {{"COMMAND",
           ArgKind::kWord,
           "a command name",
           "",
           false,
           {},
           INT64_MIN,
           INT64_MAX,
           [](const Session&) {
             std::vector<std::string> names;
             for (const Command& c : registry().commands()) names.push_back(c.name);
             return names;
           }}},
         {},
         [](Session&, const Args& a, const Context&) {
           return text(registry().help(a.has("COMMAND") ? a.str("COMMAND") : ""));
         }});

  r.add({"load",
         {},
         "load a model: a built-in name, a config.json, or a checkpoint folder",
         "Built-in names get deterministic random weights (seed 0). The prompt is kept and "
         "recomputed.",
         {{"MODEL",
           ArgKind::kPath,
           "tiny | small | v3-671b ... or a path",
           "",
           true,
           {},
           INT64_MIN,
           INT64_MAX,
           [](const Session&) { return kModelNames; }}},
         {},
         [](Session& s, const Args& a, const Context&) {
           s.load(a.str("MODEL"));
           return text(fmt::format("loaded {}: {} layers, {} experts (top-{}), vocab {}; {}",
                                   s.model_name(), s.config().num_hidden_layers,
                                   s.config().n_routed_experts, s.config().num_experts_per_tok,
                                   s.config().vocab_size, where(s)));
         }});

  r.add({"prompt",
         {},
         "set the prompt text (byte tokens after <BOS>) and prefill it",
         "",
         {{"TEXT", ArgKind::kText, "the prompt; quotes optional", "", true}},
         {},
         [](Session& s, const Args& a, const Context&) {
           s.set_prompt(a.str("TEXT"));
           return text(fmt::format("prompt: {} tokens; {}", s.prompt_len(), where(s)));
         }});

  r.add({"ids",
         {},
         "set the input as token ids (comma separated) and prefill them",
         "",
         {{"LIST", ArgKind::kText, "e.g. 0,75,107", "", true}},
         {},
         [](Session& s, const Args& a, const Context&) {
           std::vector<int32_t> ids;
           try {
             ids = io::parse_ids(a.str("LIST"));
           } catch (const std::invalid_argument& e) {
             throw CommandError(fmt::format("ids: {}", e.what()));
           }
           s.set_ids(std::move(ids));
           return text(fmt::format("{} tokens; {}", s.prompt_len(), where(s)));
         }});

  r.add({"step",
         {"s", "next"},
         "move forward N positions, computing new tokens past the end",
         "",
         {{"N", ArgKind::kInt, "positions", "1", false, {}, 1, 100000}},
         {},
         [](Session& s, const Args& a, const Context&) {
           int moved = s.step(static_cast<int>(a.integer("N")));
           return text(fmt::format("stepped {}; {}", moved, where(s)));
         }});

  r.add({"back",
         {"b", "prev"},
         "move back N positions (earlier traces are kept, nothing is recomputed)",
         "",
         {{"N", ArgKind::kInt, "positions", "1", false, {}, 1, 100000}},
         {},
         [](Session& s, const Args& a, const Context&) {
           int moved = s.back(static_cast<int>(a.integer("N")));
           return text(fmt::format("back {}; {}", moved, where(s)));
         }});

  r.add({"goto",
         {"go"},
         "look at computed position T",
         "",
         {{"T", ArgKind::kPosition, "a position", "", true}},
         {},
         [](Session& s, const Args& a, const Context&) {
           s.go_to(static_cast<int>(a.integer("T")));
           return text(where(s));
         }});

  r.add(
      {"generate",
       {"gen", "g"},
       "append N new tokens (greedy, or sampled with --temperature)",
       "",
       {{"N", ArgKind::kInt, "tokens", "16", false, {}, 1, 100000}},
       {{"temperature", ArgKind::kFloat, true, "sampling temperature for this call (0 = greedy)"}},
       [](Session& s, const Args& a, const Context&) {
         double saved = s.sampling().temperature;
         if (a.has("temperature")) s.sampling().temperature = a.real("temperature");
         int n = 0;
         try {
           n = s.generate(static_cast<int>(a.integer("N")));
         } catch (...) {
           s.sampling().temperature = saved;
           throw;
         }
         s.sampling().temperature = saved;
         std::vector<int32_t> gen(s.tokens().end() - n, s.tokens().end());
         std::string pieces;
         for (int32_t id : gen) pieces += s.piece(id);
         return text(fmt::format("generated {}: {}\n{}", n, pieces, where(s)));
       }});

  r.add({"tokens",
         {},
         "list the tokens with their ids (cursor marked)",
         "",
         {},
         {json_flag()},
         [](Session& s, const Args& a, const Context&) {
           if (a.flag("json")) {
             json j = json::array();
             for (size_t i = 0; i < s.tokens().size(); ++i)
               j.push_back({{"position", i},
                            {"id", s.tokens()[i]},
                            {"piece", s.piece(s.tokens()[i])},
                            {"prompt", static_cast<int>(i) < s.prompt_len()}});
             return json_out(j);
           }
           std::string out;
           for (size_t i = 0; i < s.tokens().size(); ++i)
             out += fmt::format("{}{:>4}  {:>5}  {}{}\n",
                                static_cast<int>(i) == s.cursor() ? "▶" : " ", i, s.tokens()[i],
                                s.piece(s.tokens()[i]),
                                static_cast<int>(i) < s.prompt_len() ? "" : "  (generated)");
           out += fmt::format("text: {}", s.text());
           return text(out);
         }});

  r.add({"set",
         {},
         "change a setting: attn, temperature, top_p, seed, topk, colour",
         "",
         {{"KEY",
           ArgKind::kChoice,
           "the setting",
           "",
           true,
           {"attn", "temperature", "top_p", "seed", "topk", "colour", "color"}},
          {"VALUE",
           ArgKind::kWord,
           "its new value",
           "",
           true,
           {},
           INT64_MIN,
           INT64_MAX,
           [](const Session&) {
             return std::vector<std::string>{"absorbed", "naive", "auto", "256", "8",
                                             "mono",     "0",     "0.7",  "1"};
           }}},
         {},
         [](Session& s, const Args& a, const Context&) {
           const std::string& k = a.str("KEY");
           const std::string& v = a.str("VALUE");
           auto number = [&](const char* what) {
             try {
               size_t used = 0;
               double x = std::stod(v, &used);
               if (used != v.size()) throw std::invalid_argument(v);
               return x;
             } catch (const std::exception&) {
               throw CommandError(fmt::format("set {}: '{}' is not {}", k, v, what));
             }
           };
           if (k == "attn") {
             try {
               s.set_attn(model::parse_attn_impl(v));
             } catch (const std::invalid_argument& e) {
               throw CommandError(fmt::format("set attn: {}", e.what()));
             }
           } else if (k == "temperature") {
             double t = number("a number");
             if (t < 0) throw CommandError("set temperature: must be >= 0 (0 = greedy)");
             s.sampling().temperature = t;
           } else if (k == "top_p") {
             double p = number("a number");
             if (p <= 0 || p > 1) throw CommandError("set top_p: must be in (0, 1]");
             s.sampling().top_p = p;
           } else if (k == "seed") {
             s.sampling().seed = static_cast<uint64_t>(number("an integer"));
           } else if (k == "topk") {
             s.set_top_k(static_cast<int>(number("an integer")));
           } else if (k == "colour" || k == "color") {  // either spelling
             if (v != "auto" && v != "256" && v != "8" && v != "mono")
               throw CommandError("set colour: must be auto, 256, 8 or mono");
             s.settings().colour = v;
           }
           return text(fmt::format("{} = {}", k, v));
         }});

  r.add({"quit",
         {"exit", "q"},
         "leave the explorer or the REPL",
         "",
         {},
         {},
         [](Session&, const Args&, const Context&) {
           Output o;
           o.quit = true;
           return o;
         }});
}

void add_panel_commands(Registry& r) {
  r.add({"route",
         {"r", "routing"},
         "the routing of a token: experts per layer, and one layer's gate step by step",
         "Selects LAYER (and moves to position TOKEN) then shows the routing panel: scores s_i "
         "(eq. 15),\n"
         "biased scores s_i + b_i used only for selection (eq. 16), the groups kept by "
         "group-limited\n"
         "routing, the top-K experts and their gate weights g_i (eq. 13). b_i are the biases in\n"
         "force when the token was computed (live balancing moves them later; `bias` shows now's).",
         {{"LAYER", ArgKind::kLayer, "layer to explain"},
          {"TOKEN", ArgKind::kPosition, "position (default: cursor)"}},
         {json_flag()},
         [](Session& s, const Args& a, const Context& ctx) {
           require_trace(s);
           if (a.has("LAYER")) s.set_layer(static_cast<int>(a.integer("LAYER")));
           if (a.has("TOKEN")) s.go_to(static_cast<int>(a.integer("TOKEN")));
           if (a.flag("json")) return json_out(route_json(s, s.cursor(), s.layer()));
           return picture(viz::routing_panel(s.view(), ctx.width, 0), Panel::kRouting);
         }});

  r.add({"experts",
         {"load"},
         "tokens routed to each expert so far, biases and MaxVio",
         "",
         {{"LAYER", ArgKind::kLayer, "layer in detail"}},
         {json_flag()},
         [](Session& s, const Args& a, const Context& ctx) {
           require_trace(s);
           if (a.has("LAYER")) s.set_layer(static_cast<int>(a.integer("LAYER")));
           viz::ExplorerView v = s.view();
           if (a.flag("json")) {
             auto counts = viz::expert_counts(v, s.cursor());
             json layers = json::array();
             for (size_t l = 0; l < counts.size(); ++l)
               layers.push_back({{"layer", l},
                                 {"moe", s.config().is_moe_layer(l)},
                                 {"counts", counts[l]},
                                 {"max_vio", viz::max_vio(counts[l])},
                                 {"bias", s.bias(static_cast<int>(l))}});
             return json_out({{"tokens_seen", s.cursor() + 1}, {"layers", layers}});
           }
           return picture(viz::load_panel(v, ctx.width, 0), Panel::kLoad);
         }});

  r.add({"bias",
         {},
         "the correction biases b_i of a layer's experts (eq. 16)",
         "",
         {{"LAYER", ArgKind::kLayer, "layer (default: selected)"}},
         {json_flag()},
         [](Session& s, const Args& a, const Context&) {
           int l = a.has("LAYER") ? static_cast<int>(a.integer("LAYER")) : s.layer();
           auto b = s.bias(l);
           if (a.flag("json")) return json_out({{"layer", l}, {"bias", b}});
           if (b.empty())
             return text(fmt::format(
                 "layer {} has no correction bias (dense layer or a model without one)", l));
           std::string out =
               fmt::format("layer {} biases b_i (added to s_i for selection only):\n", l);
           for (size_t e = 0; e < b.size(); ++e)
             out += fmt::format("  e{:<3} {:+.5f}{}", e, b[e], e % 4 == 3 ? "\n" : "");
           if (b.size() % 4) out += "\n";
           return text(out);
         }});

  r.add({"kv",
         {"cache"},
         "KV-cache bytes: MLA against MHA/GQA/MQA, now and at real scale",
         "With --context N: the cache of --config (default v3-671b) at N tokens, BF16 and FP32.",
         {},
         {json_flag(),
          {"context", ArgKind::kInt, true, "context length in tokens"},
          {"config", ArgKind::kPath, true, "a built-in name or config.json", kModelNames}},
         [](Session& s, const Args& a, const Context& ctx) {
           if (!a.has("context") && !a.has("config")) {
             if (a.flag("json")) {
               json layers = json::array();
               if (s.cursor() >= 0)
                 for (const auto& lt : s.traces()[s.cursor()].layers)
                   layers.push_back(lt.cache_bytes);
               return json_out(
                   {{"attn", model::to_string(s.attn())},
                    {"tokens", s.cursor() + 1},
                    {"elements_per_token_per_layer", s.cache().elements_per_token_per_layer()},
                    {"bytes_per_layer", layers}});
             }
             return picture(viz::kv_panel(s.view(), s.real_config(), ctx.width, 0), Panel::kKv);
           }
           model::Config c = model::resolve_config(a.has("config") ? a.str("config") : "v3-671b");
           int64_t n = a.has("context") ? a.integer("context") : 4096;
           if (n < 0) throw CommandError("kv: --context must be >= 0");
           return kv_table(c, n, a.flag("json"));
         }});

  r.add({"attn",
         {"attention"},
         "attention weights of a layer's heads over past positions",
         "",
         {{"LAYER", ArgKind::kLayer, "layer (default: selected)"},
          {"HEAD", ArgKind::kHead, "one head's weights as numbers"}},
         {json_flag()},
         [](Session& s, const Args& a, const Context& ctx) {
           require_trace(s);
           if (a.has("LAYER")) s.set_layer(static_cast<int>(a.integer("LAYER")));
           const auto& attn = s.traces()[s.cursor()].layers[s.layer()].attn;
           if (a.flag("json"))
             return json_out({{"layer", s.layer()}, {"position", s.cursor()}, {"weights", attn}});
           if (a.has("HEAD")) {
             int h = static_cast<int>(a.integer("HEAD"));
             std::string out = fmt::format("layer {} head {}: {} attends to\n", s.layer(), h,
                                           quoted_piece(s, s.cursor()));
             for (size_t p = 0; p < attn[h].size(); ++p)
               out +=
                   fmt::format("  {:>4} {:<8} {:.4f} {}\n", p, quoted_piece(s, static_cast<int>(p)),
                               attn[h][p], viz::style::hbar(attn[h][p], 20));
             return text(out);
           }
           return picture(viz::attention_panel(s.view(), ctx.width, 0), Panel::kAttention);
         }});

  r.add({"logits",
         {"next"},
         "the most probable next tokens at the cursor",
         "",
         {{"K", ArgKind::kInt, "how many (up to `set topk`)", "", false, {}, 1, 100000}},
         {json_flag()},
         [](Session& s, const Args& a, const Context& ctx) {
           require_trace(s);
           const auto& top = s.traces()[s.cursor()].top_next;
           size_t k = a.has("K") ? std::min<size_t>(top.size(), a.integer("K")) : top.size();
           if (a.flag("json")) {
             json j = json::array();
             for (size_t i = 0; i < k; ++i)
               j.push_back(
                   {{"id", top[i].first}, {"piece", s.piece(top[i].first)}, {"p", top[i].second}});
             return json_out({{"position", s.cursor()}, {"top", j}});
           }
           viz::ExplorerView v = s.view();
           viz::Canvas c = viz::logits_panel(v, ctx.width, 0);
           // Title, the random-weights line if any, column header, then the K best rows.
           int rows = static_cast<int>(k) + 2 + (v.weights_note.empty() ? 0 : 1);
           return picture(viz::style::crop_rows(c, rows), Panel::kLogits);
         }});

  r.add({"panel",
         {"view"},
         "show one of the explorer's panels",
         "",
         {{"NAME", ArgKind::kChoice, "the panel", "", true, kPanelNames}},
         {},
         [](Session& s, const Args& a, const Context& ctx) {
           auto it = std::find(kPanelNames.begin(), kPanelNames.end(), a.str("NAME"));
           auto p = static_cast<Panel>(it - kPanelNames.begin());
           return picture(viz::panel_canvas(s.view(), p, s.real_config(), ctx.width, 0), p);
         }});
}

}  // namespace

void add_query_commands(Registry& r);     // info, show, export, pipeline (query.cpp)
void add_lab_commands(Registry& r);       // lessons' lab commands and `lesson` (lab.cpp)
void add_explorer_commands(Registry& r);  // balance, mtp, fp8 (explorer.cpp)
void add_training_commands(Registry& r);  // train: a run watched in panel 9 (train.cpp)

const Registry& registry() {
  static const Registry r = [] {
    Registry reg;
    add_session_commands(reg);
    add_panel_commands(reg);
    add_query_commands(reg);
    add_lab_commands(reg);
    add_explorer_commands(reg);
    add_training_commands(reg);
    return reg;
  }();
  return r;
}

}  // namespace dsv3::app

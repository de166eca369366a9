// `dsv3 forward | generate | demo`: the reference model's command line.
#include "app/cli/model.h"

#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "app/cli/cli.h"
#include "app/cli/mtp.h"
#include "reference/fp8/linear.h"
#include "reference/io/mapped_file.h"
#include "reference/io/safetensors.h"
#include "reference/io/tokenizer.h"
#include "reference/model/generate.h"
#include "reference/model/model.h"
#include "reference/model/mtp.h"
#include "reference/model/speculative.h"

namespace dsv3::app {

model::Model load_model(const std::string& name, uint64_t seed, const std::string& weights) {
  try {
    return model::Model::load(name, seed, model::parse_weight_mode(weights));
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  } catch (const model::ConfigError& e) {
    throw UsageError(e.what());
  } catch (const io::FormatError& e) {
    throw UsageError(e.what());
  }
}

std::string read_file_arg(const std::string& what, const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw UsageError(fmt::format("{}: no such file", what));
  if (std::filesystem::is_directory(path, ec))
    throw UsageError(fmt::format("{}: is a directory, give a file", what));
  std::ifstream f(path, std::ios::binary);
  if (!f) throw UsageError(fmt::format("{}: cannot read the file", what));
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

std::string weights_note(const model::Model& m) {
  if (!m.native()) return "";
  const io::ProcessMemory mem = io::process_memory();
  return fmt::format(
      "weights: native (as stored, mapped): {:.1f} MB of matrices, {:.1f} MB read since load; "
      "resident {:.1f} MB anonymous + {:.1f} MB of mapped files\n",
      m.native()->bytes() / 1e6, m.native()->bytes_read() / 1e6, mem.rss_anon / 1e6,
      mem.rss_file / 1e6);
}

std::string model_label(const model::Model& m, uint64_t seed) {
  if (!m.random_weights()) return m.config().name;
  return fmt::format("{} (random weights, seed {})", m.config().name, seed);
}

std::vector<int32_t> prompt_ids(const model::Model& m, const std::string& prompt,
                                const std::string& ids) {
  if (!prompt.empty() && !ids.empty()) throw UsageError("give either --prompt or --ids, not both");
  std::vector<int32_t> out;
  if (!ids.empty()) {
    try {
      out = io::parse_ids(ids);
    } catch (const std::invalid_argument& e) {
      throw UsageError(fmt::format("--ids: {}", e.what()));
    }
  } else {
    const io::Tokenizer& tok = m.tokenizer();
    if (tok.vocab_size() > m.config().vocab_size)
      throw UsageError(fmt::format(
          "--prompt: the model's tokenizer ({}) has ids up to {}, beyond its vocab_size {}; "
          "use --ids",
          tok.describe(), tok.vocab_size() - 1, m.config().vocab_size));
    try {
      out = tok.encode(prompt);
    } catch (const std::runtime_error& e) {  // a tokenizer.json this code cannot encode with
      throw UsageError(e.what());
    }
  }
  if (out.empty()) throw UsageError("the prompt is empty: give --prompt TEXT or --ids LIST");
  for (int32_t id : out)
    if (id >= m.config().vocab_size)
      throw UsageError(fmt::format("--ids: token {} is outside the vocabulary [0, {})", id,
                                   m.config().vocab_size));
  return out;
}

namespace {

struct ForwardArgs {
  std::string model = "tiny";
  std::string ids;
  std::string dump;
  std::string attn;  // "" = absorbed in fp32, naive in fp8
  uint64_t seed = 0;
  std::string precision = "fp32";
  std::string accum = "h100";
  int promote = 128;
  std::string weights = "f32";
};

struct GenerateArgs {
  std::string model = "tiny";
  std::string prompt;
  std::string ids;
  int n = 16;
  double temperature = 0.0;
  double top_p = 1.0;
  uint64_t seed = 0;
  std::string attn = "absorbed";
  bool json = false;
  bool routes = false;
  bool mtp = false;                // speculative decoding with the MTP drafts
  int draft_depth = 1;             // D drafts per verification step
  bool draft_depth_given = false;  // --draft-depth on the command line (needs --mtp)
  double agree = -1;               // --agree P (needs --mtp): stand-in drafts; -1 = MTP module
  std::string weights = "f32";     // --weights f32 | native
};

void run_forward(const ForwardArgs& a) {
  model::Model m = load_model(a.model, a.seed, a.weights);
  std::vector<int32_t> ids = prompt_ids(m, "", a.ids);
  const bool fp8 = a.precision == "fp8";
  // FP8 mode: the naive form runs kv_b_proj as an FP8 GEMM like every other projection; the
  // absorbed form folds it into the attention products, so there it is used dequantized from
  // its FP8 blocks, as DeepSeek's absorb path does (model_spec §5.4). Default: naive.
  model::AttnImpl impl =
      model::parse_attn_impl(a.attn.empty() ? (fp8 ? "naive" : "absorbed") : a.attn);
  auto cache = m.new_cache(impl);
  model::Trace trace;
  std::vector<Mat> hidden;
  model::ForwardOptions opt;
  opt.trace = &trace;
  opt.hidden = &hidden;
  if (fp8) {
    try {
      opt.linear = fp8::make_forward_hook(a.accum, a.promote, a.model);
      opt.absorbed_weight = fp8::make_absorbed_weight_hook(a.accum, a.promote, a.model);
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
  }
  Mat logits = m.forward(ids, cache, opt);

  const int64_t T = static_cast<int64_t>(ids.size());
  if (!a.dump.empty()) {
    io::SafetensorsWriter w;
    w.add("logits", logits);
    for (size_t i = 0; i < hidden.size(); ++i) w.add(fmt::format("hidden.{}", i), hidden[i]);
    // mtp.{k}.logits [T-k, V]: row i predicts token i+k+1 (reference/model/mtp.h).
    model::MtpOutput mo = model::mtp_forward(m, ids, hidden.back(), impl);
    for (size_t k = 0; k < mo.logits.size(); ++k)
      w.add(fmt::format("mtp.{}.logits", k + 1), mo.logits[k]);
    const model::Config& c = m.config();
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      if (!c.is_moe_layer(l)) continue;
      const int64_t E = c.n_routed_experts, K = c.num_experts_per_tok;
      Mat rl(T, E), tw(T, K);
      std::vector<int64_t> ti(T * K);
      for (int64_t t = 0; t < T; ++t) {
        const model::RouteResult& r = trace.tokens[t].layers[l].router;
        for (int64_t e = 0; e < E; ++e) rl(t, e) = r.logits[e];
        for (int64_t k = 0; k < K; ++k) {
          ti[t * K + k] = r.topk_idx[k];
          tw(t, k) = r.topk_weight[k];
        }
      }
      w.add(fmt::format("router.{}.logits", l), rl);
      w.add_i64(fmt::format("router.{}.topk_idx", l), {T, K}, ti);
      w.add(fmt::format("router.{}.topk_weight", l), tw);
    }
    w.set_metadata("format", "pt");
    w.set_metadata("producer", "dsv3 forward");
    w.write(a.dump);
  }
  fmt::print("model {} ({} attention, {}), {} tokens\n", model_label(m, a.seed),
             model::to_string(impl),
             fp8 ? fmt::format("fp8, {} accumulation, promote {}", a.accum, a.promote) : "fp32", T);
  for (int64_t t = 0; t < T; ++t) {
    Eigen::Index best;
    float v = logits.row(t).maxCoeff(&best);
    fmt::print("  pos {:>3}  token {:>6}  ->  argmax {:>6}  (logit {:.4f})\n", t, ids[t], best, v);
  }
  if (!a.dump.empty()) fmt::print("wrote {}\n", a.dump);
}

// One line per MoE layer: chosen experts with their gate weights.
void print_routes(const model::Config& c, const model::TokenTrace& tt) {
  for (const model::LayerTrace& lt : tt.layers) {
    if (!lt.moe) continue;
    std::string experts;
    for (size_t j = 0; j < lt.router.topk_idx.size(); ++j)
      experts += fmt::format(" {:>3}:{:.3f}", lt.router.topk_idx[j], lt.router.topk_weight[j]);
    std::string groups;
    for (int g : lt.router.groups_kept) groups += fmt::format("{}{}", groups.empty() ? "" : ",", g);
    fmt::print("    layer {:>2}  groups [{}]  experts{}\n", lt.layer,
               groups.empty() ? "all" : groups, experts);
  }
  (void)c;
}

void run_generate(const GenerateArgs& a) {
  if (a.draft_depth_given && !a.mtp) throw UsageError("--draft-depth needs --mtp");
  if (a.agree >= 0 && !a.mtp) throw UsageError("--agree needs --mtp");
  check_agree_is_greedy(a.agree, a.temperature);
  if (a.n < 0) throw UsageError("-n must not be negative");
  if (a.temperature < 0) throw UsageError("--temperature must not be negative");
  if (a.top_p <= 0 || a.top_p > 1) throw UsageError("--top-p must be in (0, 1]");
  model::Model m = load_model(a.model, a.seed, a.weights);
  std::vector<int32_t> prompt = prompt_ids(m, a.prompt, a.ids);
  model::GenerateOptions g;
  g.max_new_tokens = a.n;
  g.sampling = {a.temperature, a.top_p, a.seed};
  g.attn = model::parse_attn_impl(a.attn);
  model::Trace trace;
  if (a.routes) g.trace = &trace;
  std::optional<model::SpeculativeResult> spec;
  std::optional<double> plain_seconds;
  if (a.mtp) {
    if (a.routes) throw UsageError("--routes is not available with --mtp");
    if (a.draft_depth < 1) throw UsageError("--draft-depth must be at least 1");
    if (model::mtp_modules(m) == 0)
      throw UsageError(fmt::format(
          "--mtp: model {} has no MTP module (num_nextn_predict_layers = 0)", m.config().name));
    model::SpeculativeOptions so;
    so.max_new_tokens = a.n;
    so.draft_depth = a.draft_depth;
    so.sampling = g.sampling;
    so.attn = g.attn;
    model::MtpDrafter drafter(m, so.attn);
    if (a.agree >= 0) {
      // The truth comes from an untimed greedy run, so the timed plain run below stays
      // comparable.
      std::vector<int32_t> truth = prompt;
      if (a.n > 0) {
        std::vector<int32_t> more = model::generate(m, prompt, g);
        truth.insert(truth.end(), more.begin(), more.end());
      }
      use_stand_in_drafts(drafter, std::move(truth), a.agree);
    }
    spec = model::speculative_generate(m, prompt, so, &drafter);
    // Plain decoding of the same tokens with the same model, timed the way SpecStats::seconds
    // is (prefill and decode steps), for the wall-clock speed-up.
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int32_t> plain = a.n > 0 ? model::generate(m, prompt, g) : std::vector<int32_t>{};
    plain_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // Lossless: greedy speculative decoding must emit exactly plain greedy decoding's tokens.
    // (Sampled decoding matches in distribution only, not in the random stream.)
    if (a.temperature <= 0) check_lossless(plain, spec->ids, "--mtp");
  }
  std::vector<int32_t> out = spec      ? spec->ids
                             : a.n > 0 ? model::generate(m, prompt, g)
                                       : std::vector<int32_t>{};
  // Text when the tokenizer fits the model (ids past the tokenizer print as <id>).
  const io::Tokenizer& tok = m.tokenizer();
  const bool text = tok.vocab_size() <= m.config().vocab_size;
  if (a.json) {
    nlohmann::json j;
    j["model"] = m.config().name;
    j["random_weights"] = m.random_weights();
    j["prompt_ids"] = prompt;
    j["ids"] = out;
    if (text) j["text"] = tok.decode(out);
    if (spec) {
      j["mtp"] = mtp_stats_json(spec->stats, a.draft_depth, plain_seconds);
      j["mtp"]["agree"] = a.agree >= 0 ? nlohmann::json(a.agree) : nlohmann::json(nullptr);
      if (a.temperature <= 0) j["mtp"]["plain_ids_match"] = true;  // checked above
    }
    fmt::print("{}\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return;
  }
  if (a.routes) {
    for (size_t t = 0; t < trace.tokens.size(); ++t) {
      const model::TokenTrace& tt = trace.tokens[t];
      size_t gen_index = t + 1 >= prompt.size() ? t + 1 - prompt.size() : SIZE_MAX;
      std::string next = gen_index < out.size()
                             ? (text ? tok.piece(out[gen_index]) : std::to_string(out[gen_index]))
                             : "";
      fmt::print("step {:>3}  token {:>8}{}\n", tt.position,
                 text ? tok.piece(tt.token) : std::to_string(tt.token),
                 next.empty() ? "" : fmt::format("  ->  next {}", next));
      print_routes(m.config(), tt);
    }
  }
  if (m.random_weights())
    fmt::print("model: {}: the text is noise; the trained model is `tiny`\n",
               model_label(m, a.seed));
  fmt::print("ids: {}\n", fmt::join(out, ","));
  if (text) fmt::print("text: {}\n", tok.decode(out));
  if (spec) {
    if (a.agree >= 0) fmt::print("{}", stand_in_line(a.agree));
    fmt::print("{}", mtp_stats_text(spec->stats, a.draft_depth, static_cast<int64_t>(out.size()),
                                    plain_seconds));
    if (a.temperature <= 0) fmt::print("  ids identical to plain greedy decoding (checked)\n");
  }
  fmt::print("{}", weights_note(m));
}

}  // namespace

void add_model_commands(CLI::App& app) {
  auto fa = std::make_shared<ForwardArgs>();
  CLI::App* f = app.add_subcommand(
      "forward", "Run the model on token ids and dump logits, hidden states and routing");
  f->add_option("--model", fa->model,
                "Checkpoint folder, config.json, or built-in name (tiny, small, ...)");
  f->add_option("--ids", fa->ids, "Comma-separated token ids, e.g. 3,17,5")->required();
  f->add_option("--dump", fa->dump, "Write float32 tensors to this .safetensors file");
  f->add_option("--attn", fa->attn, "Attention form")->check(CLI::IsMember({"naive", "absorbed"}));
  f->add_option("--seed", fa->seed,
                "Seed of the random weights (built-in models and bare configs)");
  f->add_option("--precision", fa->precision,
                "fp8 runs every linear layer DeepSeek-V3 runs in FP8 through the emulated GEMM")
      ->check(CLI::IsMember({"fp32", "fp8"}));
  f->add_option("--accum", fa->accum, "FP8 accumulation: h100 (tensor-core model), fp32, exact")
      ->check(CLI::IsMember({"h100", "fp32", "exact"}));
  f->add_option("--promote", fa->promote, "FP8: promote to FP32 every NC elements (0 = never)");
  f->add_option("--weights", fa->weights,
                "f32: every weight in float32 (default); native: a checkpoint's matrices as "
                "stored (FP8/BF16, mapped, dequantized inside the products)")
      ->check(CLI::IsMember({"f32", "native"}));
  f->callback([fa] { run_forward(*fa); });

  auto ga = std::make_shared<GenerateArgs>();
  CLI::App* g = app.add_subcommand("generate", "Generate tokens from a prompt");
  g->add_option("--model", ga->model,
                "Checkpoint folder, config.json, or built-in name (tiny, small, ...)");
  g->add_option("--prompt", ga->prompt, "Prompt text (the model's tokenizer)");
  g->add_option("--ids", ga->ids, "Prompt as comma-separated token ids");
  g->add_option("-n", ga->n, "Tokens to generate");
  g->add_option("--temperature", ga->temperature, "0 = greedy");
  g->add_option("--top-p", ga->top_p, "Nucleus sampling mass in (0, 1]");
  g->add_option("--seed", ga->seed, "Sampling and random-weight seed");
  g->add_option("--attn", ga->attn, "Attention form")->check(CLI::IsMember({"naive", "absorbed"}));
  g->add_flag("--routes", ga->routes, "Print each step's routing decisions");
  g->add_option("--weights", ga->weights,
                "f32: every weight in float32 (default); native: a checkpoint's matrices as "
                "stored (FP8/BF16, mapped, dequantized inside the products)")
      ->check(CLI::IsMember({"f32", "native"}));
  g->add_flag("--json", ga->json, "Machine-readable output");
  g->add_flag("--mtp", ga->mtp,
              "Speculative decoding with the MTP modules' drafts (same tokens when greedy)");
  CLI::Option* depth =
      g->add_option("--draft-depth", ga->draft_depth, "With --mtp: drafts per step D (default 1)");
  g->add_option("--agree", ga->agree,
                "With --mtp: stand-in drafter, each draft is the main model's own token with "
                "probability P (greedy only; like the explorer's `mtp agree P`)")
      ->check(CLI::Range(0.0, 1.0));
  g->callback([ga, depth] {
    ga->draft_depth_given = depth->count() > 0;  // given at all, whatever its value
    run_generate(*ga);
  });

  auto da = std::make_shared<GenerateArgs>();
  da->prompt = "DeepSeek-V3 routes";
  da->n = 8;
  da->routes = true;
  CLI::App* d = app.add_subcommand(
      "demo", "A short generation on the tiny model, printing every step's routing");
  d->add_option("--model", da->model, "Model to run");
  d->add_option("--prompt", da->prompt, "Prompt text");
  d->add_option("-n", da->n, "Tokens to generate");
  d->callback([da] { run_generate(*da); });
}

int run_default(int argc, char** argv) {
  (void)argc;
  (void)argv;
  return run_explorer_default();  // the explorer on the tiny model (explore.cpp)
}

}  // namespace dsv3::app

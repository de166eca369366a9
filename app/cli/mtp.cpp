// `dsv3 mtp-loss` and `dsv3 mtp-demo`: the multi-token prediction objective (eq. 24-25) and
// speculative decoding with the MTP drafts, drawn as the explorer's MTP panel.
#include "app/cli/mtp.h"

#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <memory>

#include "app/cli/cli.h"
#include "app/cli/model.h"
#include "reference/io/safetensors.h"
#include "reference/io/tokenizer.h"
#include "reference/model/generate.h"
#include "reference/model/mtp.h"
#include "reference/model/speculative.h"
#include "visualizers/mtp_panel.h"

namespace dsv3::app {

nlohmann::json mtp_stats_json(const model::SpecStats& s, int draft_depth,
                              std::optional<double> plain_seconds) {
  nlohmann::json j;
  j["draft_depth"] = draft_depth;
  j["steps"] = s.steps;
  j["proposed"] = s.proposed_total();
  j["accepted"] = s.accepted_total();
  j["acceptance_rate"] = s.acceptance_rate();
  j["tokens_per_step"] = s.tokens_per_step();
  j["seconds"] = s.seconds;
  nlohmann::json by = nlohmann::json::array();
  for (size_t k = 0; k < s.proposed.size(); ++k)
    by.push_back({{"depth", k + 1},
                  {"proposed", s.proposed[k]},
                  {"accepted", s.accepted[k]},
                  {"acceptance_rate", s.acceptance_rate(static_cast<int>(k) + 1)}});
  j["by_depth"] = by;
  if (plain_seconds) {
    j["plain_seconds"] = *plain_seconds;
    j["speedup"] = *plain_seconds > 0 && s.seconds > 0 ? nlohmann::json(*plain_seconds / s.seconds)
                                                       : nlohmann::json(nullptr);
  }
  return j;
}

std::string mtp_stats_text(const model::SpecStats& s, int draft_depth, int64_t tokens,
                           std::optional<double> plain_seconds) {
  std::string out = fmt::format(
      "mtp: draft depth {}, {} verification steps, {} drafts proposed, {} accepted ({:.1f}%), "
      "{:.2f} tokens per step\n",
      draft_depth, s.steps, s.proposed_total(), s.accepted_total(), 100 * s.acceptance_rate(),
      s.tokens_per_step());
  for (size_t k = 0; k < s.proposed.size(); ++k)
    out += fmt::format("  depth {}: {}/{} accepted ({:.1f}%)\n", k + 1, s.accepted[k],
                       s.proposed[k], 100 * s.acceptance_rate(static_cast<int>(k) + 1));
  const double tps = s.seconds > 0 ? static_cast<double>(tokens) / s.seconds : 0.0;
  out += fmt::format("  {:.1f} tokens/s speculative", tps);
  if (plain_seconds && *plain_seconds > 0 && s.seconds > 0) {
    const double plain_tps = static_cast<double>(tokens) / *plain_seconds;
    out += fmt::format(", {:.1f} tokens/s plain: speed-up {:.2f}x", plain_tps,
                       *plain_seconds / s.seconds);
  }
  out += "\n";
  return out;
}

void check_agree_is_greedy(double agree, double temperature) {
  if (agree >= 0 && temperature > 0)
    throw UsageError(
        "--agree needs greedy decoding (--temperature 0): the stand-in drafts the main model's "
        "greedy tokens");
}

void use_stand_in_drafts(model::MtpDrafter& drafter, std::vector<int32_t> truth, double agree) {
  drafter.override_token = [truth = std::move(truth), agree](int k, int64_t index,
                                                             int32_t drafted) {
    return model::stand_in_draft(k, index, drafted, truth, agree);
  };
}

std::string stand_in_line(double agree) {
  return fmt::format(
      "drafts: a stand-in that proposes the main model's own token with probability {} "
      "(--agree), else the MTP module's draft\n",
      agree);
}

void check_lossless(const std::vector<int32_t>& plain, const std::vector<int32_t>& speculative,
                    const std::string& who) {
  if (plain == speculative) return;
  size_t i = 0;
  while (i < plain.size() && i < speculative.size() && plain[i] == speculative[i]) ++i;
  throw std::runtime_error(fmt::format(
      "{}: bug: greedy speculative decoding differs from plain greedy decoding at generated "
      "token {} ({} vs {}), the lossless property is broken",
      who, i, i < speculative.size() ? std::to_string(speculative[i]) : "end",
      i < plain.size() ? std::to_string(plain[i]) : "end"));
}

namespace {

struct LossArgs {
  std::string model = "tiny";
  std::string ids;
  std::string attn = "absorbed";
  double lambda = 0.3;
  uint64_t seed = 0;
  bool json = false;
};

struct DemoArgs {
  std::string model = "tiny";
  std::string prompt = "DeepSeek-V3 drafts";
  std::string ids;
  int n = 24;
  int depth = 1;
  double temperature = 0.0;
  double top_p = 1.0;
  uint64_t seed = 0;
  std::string attn = "absorbed";
  int width = 100;
  bool no_color = false;
  double agree = -1;  // --agree P: stand-in drafts (model::stand_in_draft); -1: the MTP module
};

void run_loss(const LossArgs& a) {
  model::Model m = load_model(a.model, a.seed);
  std::vector<int32_t> ids = prompt_ids(m, "", a.ids);
  if (ids.size() < 2) throw UsageError("--ids: the loss needs at least two tokens");
  if (model::mtp_modules(m) == 0)
    fmt::print(stderr, "dsv3: note: model {} has no MTP module; only the main loss is reported\n",
               m.config().name);
  model::MtpLoss L = model::mtp_loss(m, ids, a.lambda, model::parse_attn_impl(a.attn));
  if (a.json) {
    nlohmann::json j;
    j["model"] = m.config().name;
    j["tokens"] = ids.size();
    j["main"] = L.main;
    j["main_targets"] = L.main_targets;
    j["mtp"] = L.per_token;
    j["mtp_targets"] = L.targets;
    j["mtp_paper"] = L.paper;
    j["lambda"] = L.lambda;
    j["mtp_total_paper"] = L.total_paper;
    j["mtp_total_per_token"] = L.total_per_token;
    fmt::print("{}\n", j.dump());
    return;
  }
  const int64_t T = L.main_targets;
  fmt::print("model {}, {} tokens: T = {} next-token targets\n", model_label(m, a.seed), ids.size(),
             T);
  fmt::print("  main   L_main  = {:.6f}   (mean over {} targets)\n", L.main, T);
  for (size_t k = 0; k < L.per_token.size(); ++k)
    fmt::print(
        "  depth {}  L^{}_MTP = {:.6f}   per valid token ({} = T-{} targets); eq. (24) with 1/T: "
        "{:.6f}\n",
        k + 1, k + 1, L.per_token[k], L.targets[k], k + 1, L.paper[k]);
  if (!L.per_token.empty()) {
    fmt::print(
        "  eq. (25) L_MTP = (lambda/D) sum_k L^k = {:.6f}  (lambda {}, D {}; per-token form "
        "{:.6f})\n",
        L.total_paper, L.lambda, L.per_token.size(), L.total_per_token);
    fmt::print("  training loss L_main + L_MTP = {:.6f}\n", L.main + L.total_paper);
  }
}

void run_demo(const DemoArgs& a) {
  if (a.n <= 0) throw UsageError("-n must be positive");
  if (a.depth < 1) throw UsageError("--draft-depth must be at least 1");
  if (a.temperature < 0) throw UsageError("--temperature must not be negative");
  if (a.top_p <= 0 || a.top_p > 1) throw UsageError("--top-p must be in (0, 1]");
  if (a.width < 40) throw UsageError("--width must be at least 40");
  model::Model m = load_model(a.model, a.seed);
  if (model::mtp_modules(m) == 0)
    throw UsageError(
        fmt::format("model {} has no MTP module (num_nextn_predict_layers = 0)", m.config().name));
  std::vector<int32_t> prompt = prompt_ids(m, a.ids.empty() ? a.prompt : "", a.ids);
  if (prompt.empty()) throw UsageError("the prompt is empty: give --prompt TEXT or --ids LIST");
  check_agree_is_greedy(a.agree, a.temperature);
  model::SpeculativeOptions o;
  o.max_new_tokens = a.n;
  o.draft_depth = a.depth;
  o.sampling = {a.temperature, a.top_p, a.seed};
  o.attn = model::parse_attn_impl(a.attn);
  // Greedy: plain decoding of the same prompt, for the lossless check (and the stand-in's truth).
  std::vector<int32_t> plain;
  if (a.temperature <= 0) {
    model::GenerateOptions go;
    go.max_new_tokens = a.n;
    go.attn = o.attn;
    plain = model::generate(m, prompt, go);
  }
  model::MtpDrafter drafter(m, o.attn);
  if (a.agree >= 0) {
    std::vector<int32_t> truth = prompt;
    truth.insert(truth.end(), plain.begin(), plain.end());
    use_stand_in_drafts(drafter, std::move(truth), a.agree);
  }
  model::SpeculativeResult r = model::speculative_generate(m, prompt, o, &drafter);
  // Lossless whatever the drafts were.
  if (a.temperature <= 0) check_lossless(plain, r.ids, "mtp-demo");
  viz::MtpPanelOptions po;
  po.draft_depth = a.depth;
  po.greedy = a.temperature <= 0;
  // Text when the tokenizer fits the model (ids past the tokenizer print as <id>).
  std::shared_ptr<const io::Tokenizer> tok = m.shared_tokenizer();
  const bool text = tok->vocab_size() <= m.config().vocab_size;
  if (text) po.token_text = [tok](int32_t t) { return "'" + tok->piece(t) + "'"; };
  const int height = static_cast<int>(r.steps.size()) + a.depth + 3;
  viz::Canvas c = viz::mtp_panel(r.steps, r.stats, po, a.width, height);
  const bool colour = !a.no_color && !viz::colour_disabled(STDOUT_FILENO);
  std::fputs((colour ? viz::render_ansi(c) : viz::render_plain(c)).c_str(), stdout);
  if (a.agree >= 0)
    fmt::print("{}", stand_in_line(a.agree));
  else if (m.random_weights())
    fmt::print("model: {}: its MTP drafts are noise; the trained model is `tiny`\n",
               model_label(m, a.seed));
  fmt::print("ids: {}\n", fmt::join(r.ids, ","));
  if (text) fmt::print("text: {}\n", tok->decode(r.ids));
  fmt::print("{}", mtp_stats_text(r.stats, a.depth, static_cast<int64_t>(r.ids.size())));
  if (a.temperature <= 0) fmt::print("  ids identical to plain greedy decoding (checked)\n");
}

}  // namespace

void add_mtp_commands(CLI::App& app) {
  auto la = std::make_shared<LossArgs>();
  CLI::App* l =
      app.add_subcommand("mtp-loss", "Main next-token loss and each MTP depth's loss (eq. 24-25)");
  l->add_option("--model", la->model,
                "Checkpoint folder, config.json, or built-in name (tiny, small, ...)");
  l->add_option("--ids", la->ids, "Comma-separated token ids (at least two)")->required();
  l->add_option("--attn", la->attn, "Attention form")->check(CLI::IsMember({"naive", "absorbed"}));
  l->add_option("--lambda", la->lambda, "MTP loss weight lambda (V3: 0.3, later 0.1)");
  l->add_option("--seed", la->seed,
                "Seed of the random weights (built-in models and bare configs)");
  l->add_flag("--json", la->json, "Machine-readable output: main, mtp (per depth, depth 1 first)");
  l->callback([la] { run_loss(*la); });

  auto da = std::make_shared<DemoArgs>();
  CLI::App* d =
      app.add_subcommand("mtp-demo", "Speculative decoding with MTP drafts, drawn step by step");
  d->add_option("--model", da->model, "Checkpoint folder, config.json, or built-in name");
  d->add_option("--prompt", da->prompt, "Prompt text (the model's tokenizer)");
  d->add_option("--ids", da->ids, "Prompt as comma-separated token ids");
  d->add_option("-n", da->n, "Tokens to generate");
  d->add_option("--draft-depth", da->depth,
                "Drafts per step D (depths beyond the trained modules reuse them)");
  d->add_option("--temperature", da->temperature, "0 = greedy");
  d->add_option("--top-p", da->top_p, "Nucleus sampling mass in (0, 1]");
  d->add_option("--seed", da->seed, "Sampling and random-weight seed");
  d->add_option("--attn", da->attn, "Attention form")->check(CLI::IsMember({"naive", "absorbed"}));
  d->add_option("--width", da->width, "Picture width in columns");
  d->add_option("--agree", da->agree,
                "Stand-in drafter: each draft is the main model's own token with probability P "
                "(greedy only; like the explorer's `mtp agree P`)")
      ->check(CLI::Range(0.0, 1.0));
  d->add_flag("--no-color", da->no_color, "Plain text even on a terminal");
  d->callback([da] { run_demo(*da); });
}

}  // namespace dsv3::app

// dsv3 export: a checkpoint in another storage format (the released checkpoint's FP8 mix, BF16,
// or float32), e.g. to ship a trained model the way real checkpoints are stored; and
// dsv3 export synthetic-v3: a reduced DeepSeek-V3 with random weights in the released layout.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <memory>

#include "app/cli/cli.h"
#include "app/cli/model.h"
#include "reference/fp8/checkpoint.h"
#include "reference/io/safetensors.h"
#include "reference/model/synthetic_checkpoint.h"

namespace dsv3::app {

namespace {

namespace fs = std::filesystem;

struct ExportArgs {
  std::string model;
  std::string format = "fp8";
  std::string out;
};

void run_export(const ExportArgs& a) {
  if (a.model.empty()) throw UsageError("export: --model is required (or: export synthetic-v3)");
  if (a.out.empty()) throw UsageError("export: --out is required");
  fp8::StoreFormat f;
  try {
    f = fp8::parse_store_format(a.format);
  } catch (const std::invalid_argument& e) {
    throw UsageError(fmt::format("--format: {}", e.what()));
  }
  const fs::path src = model::resolve_model_path(a.model);
  if (fs::exists(a.out) && fs::exists(src) && fs::equivalent(a.out, src))
    throw UsageError("--out must differ from --model (the source would be overwritten)");
  model::Model m = load_model(a.model, 0);
  try {
    fp8::save_checkpoint(m.config(), m.weights(), f, a.out);
  } catch (const io::FormatError& e) {
    throw UsageError(e.what());
  }
  const fs::path tok = src / "tokenizer.json";
  if (fs::is_directory(src) && fs::exists(tok)) {
    std::error_code ec;
    fs::copy_file(tok, fs::path(a.out) / "tokenizer.json", fs::copy_options::overwrite_existing,
                  ec);
    if (ec) throw UsageError(fmt::format("{}: cannot copy: {}", tok.string(), ec.message()));
  }
  const auto bytes = fs::file_size(fs::path(a.out) / "model.safetensors");
  fmt::print("wrote {}/model.safetensors ({}, {:.2f} MiB){}\n", a.out, fp8::to_string(f),
             static_cast<double>(bytes) / (1 << 20),
             fs::exists(fs::path(a.out) / "tokenizer.json") ? " + tokenizer.json" : "");
}

struct SyntheticArgs {
  std::string out;
  model::SyntheticSizes sizes = model::synthetic_small();
};

void run_export_synthetic(const SyntheticArgs& a) {
  if (fs::exists(fs::path(a.out) / "model.safetensors.index.json") ||
      fs::exists(fs::path(a.out) / "model.safetensors"))
    throw UsageError(fmt::format("{} already holds a checkpoint; choose another --out", a.out));
  uint64_t bytes = 0;
  try {
    bytes = model::write_synthetic_v3(a.out, a.sizes);
  } catch (const std::exception& e) {  // io::FormatError, model::ConfigError
    throw UsageError(e.what());
  }
  const model::SyntheticSizes& s = a.sizes;
  fmt::print(
      "wrote {}: config.json, model.safetensors.index.json and {} shards ({:.1f} MB, FP8 E4M3 "
      "projections with 128x128 weight_scale_inv, BF16 embedding/head/router/eh_proj)\n"
      "  hidden {}, {} layers + MTP at layer {}, {} routed experts of width {}, vocab {}, seed {}\n"
      "  run it as stored: dsv3 generate --model {} --weights native\n",
      a.out, s.shards, static_cast<double>(bytes) / 1e6, s.hidden_size, s.num_hidden_layers,
      s.num_hidden_layers, s.n_routed_experts, s.moe_intermediate_size, s.vocab_size, s.seed,
      a.out);
}

void add_synthetic_command(CLI::App& e) {
  auto a = std::make_shared<SyntheticArgs>();
  CLI::App* c = e.add_subcommand(
      "synthetic-v3",
      "Write a reduced DeepSeek-V3 with random weights in the released checkpoint's exact layout "
      "(tensor names, FP8 E4M3 + 128x128 weight_scale_inv, sharded index, MTP layer at index "
      "num_hidden_layers); defaults: the checkpoint docs/performance.md measures");
  model::SyntheticSizes& s = a->sizes;
  c->add_option("--out", a->out, "Output folder (created)")->required();
  c->add_option("--layers", s.num_hidden_layers, "num_hidden_layers (the first 3 dense, as V3)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  c->add_option("--experts", s.n_routed_experts,
                "n_routed_experts (a multiple of n_group 8; 8 routed per token)")
      ->check(CLI::Range(8, 4096))
      ->capture_default_str();
  c->add_option("--hidden", s.hidden_size, "hidden_size")
      ->check(CLI::Range(16, 16384))
      ->capture_default_str();
  c->add_option("--intermediate", s.intermediate_size, "intermediate_size (dense MLPs)")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  c->add_option("--moe-intermediate", s.moe_intermediate_size, "moe_intermediate_size")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  c->add_option("--heads", s.num_attention_heads, "num_attention_heads")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  c->add_option("--q-lora-rank", s.q_lora_rank, "q_lora_rank")
      ->check(CLI::Range(1, 16384))
      ->capture_default_str();
  c->add_option("--kv-lora-rank", s.kv_lora_rank, "kv_lora_rank")
      ->check(CLI::Range(1, 16384))
      ->capture_default_str();
  c->add_option("--vocab", s.vocab_size, "vocab_size")
      ->check(CLI::Range(2, 1 << 20))
      ->capture_default_str();
  c->add_option("--shards", s.shards, "Number of model-0000k-of-0000n.safetensors files")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  c->add_option("--seed", s.seed, "Seed of the random weights")->capture_default_str();
  c->callback([a] { run_export_synthetic(*a); });
}

}  // namespace

void add_export_commands(CLI::App& app) {
  auto a = std::make_shared<ExportArgs>();
  CLI::App* e =
      app.add_subcommand("export",
                         "Write a checkpoint in a storage format: fp8 (as DeepSeek-V3 ships: E4M3 "
                         "projections with 128x128 weight_scale_inv, BF16 rest), bf16 or f32");
  e->add_option("--model", a->model, "Checkpoint folder, config.json or built-in name");
  e->add_option("--format", a->format, "fp8 | bf16 | f32")
      ->check(CLI::IsMember({"fp8", "bf16", "f32"}))
      ->capture_default_str();
  e->add_option("--out", a->out, "Output folder (config.json, model.safetensors, tokenizer.json)");
  add_synthetic_command(*e);
  e->require_subcommand(0, 1);
  e->callback([a, e] {
    if (e->get_subcommands().empty()) run_export(*a);
  });
}

}  // namespace dsv3::app

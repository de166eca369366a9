// dsv3 export: a checkpoint in another storage format (the released checkpoint's FP8 mix, BF16,
// or float32), e.g. to ship a trained model the way real checkpoints are stored.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <memory>

#include "app/cli/cli.h"
#include "app/cli/model.h"
#include "reference/fp8/checkpoint.h"
#include "reference/io/safetensors.h"

namespace dsv3::app {

namespace {

namespace fs = std::filesystem;

struct ExportArgs {
  std::string model;
  std::string format = "fp8";
  std::string out;
};

void run_export(const ExportArgs& a) {
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

}  // namespace

void add_export_commands(CLI::App& app) {
  auto a = std::make_shared<ExportArgs>();
  CLI::App* e =
      app.add_subcommand("export",
                         "Write a checkpoint in a storage format: fp8 (as DeepSeek-V3 ships: E4M3 "
                         "projections with 128x128 weight_scale_inv, BF16 rest), bf16 or f32");
  e->add_option("--model", a->model, "Checkpoint folder, config.json or built-in name")->required();
  e->add_option("--format", a->format, "fp8 | bf16 | f32")
      ->check(CLI::IsMember({"fp8", "bf16", "f32"}))
      ->capture_default_str();
  e->add_option("--out", a->out, "Output folder (config.json, model.safetensors, tokenizer.json)")
      ->required();
  e->callback([a] { run_export(*a); });
}

}  // namespace dsv3::app

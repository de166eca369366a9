// `dsv3 fp8 ...` subcommands: FP8 codes by hand, the accumulation-error experiment, and single
// tensor-core dot products for checking the emulation against real hardware.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "app/cli/cli.h"
#include "app/cli/model.h"
#include "reference/fp8/analysis.h"
#include "reference/fp8/format.h"
#include "reference/fp8/gemm.h"
#include "reference/fp8/linear.h"
#include "reference/model/model.h"
#include "visualizers/balance_plot.h"

namespace dsv3::app {
namespace {

using fp8::Format;

Format format_arg(const std::string& s) {
  try {
    return fp8::parse_format(s);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
}

uint8_t parse_code(const std::string& s) {
  const bool hex = s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
  const std::string digits = hex ? s.substr(2) : s;
  if (digits.empty() || digits.find_first_not_of(hex ? "0123456789abcdefABCDEF" : "0123456789") !=
                            std::string::npos) {
    throw UsageError(fmt::format("'{}' is not an FP8 code (0..255, decimal or 0x hex)", s));
  }
  const unsigned long v = std::strtoul(digits.c_str(), nullptr, hex ? 16 : 10);
  if (v > 255 || digits.size() > 4)
    throw UsageError(fmt::format("FP8 code '{}' is out of range 0..255", s));
  return static_cast<uint8_t>(v);
}

// Parsed straight to binary32 (strtof rounds correctly once), so the encode sees the same float
// a float32 tensor would hold.
float parse_float(const std::string& s) {
  errno = 0;
  char* end = nullptr;
  const float v = std::strtof(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size())
    throw UsageError(fmt::format("'{}' is not a number", s));
  return v;
}

std::vector<uint8_t> parse_hex_codes(const std::string& s, const char* what) {
  std::string h = s;
  if (h.size() >= 2 && h[0] == '0' && (h[1] == 'x' || h[1] == 'X')) h = h.substr(2);
  if (h.empty() || h.size() % 2 != 0 ||
      h.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
    throw UsageError(fmt::format("{} must be hex digits, two per FP8 code", what));
  }
  std::vector<uint8_t> out(h.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = static_cast<uint8_t>(std::stoul(h.substr(2 * i, 2), nullptr, 16));
  }
  return out;
}

std::string hex_bits(float v) {
  return fmt::format("0x{:08x}", std::bit_cast<uint32_t>(v));
}

// The exact decimal expansion of a binary32 value. Every finite float is m * 2^e with integer m,
// so it is finite: m * 2^e for e >= 0, and m * 5^-e / 10^-e for e < 0. Every FP8 value is a
// float, e.g. E5M2 code 1 = 2^-16 = 0.0000152587890625.
std::string exact_decimal(float x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  if (x == 0.0f) return std::signbit(x) ? "-0" : "0";
  int exp2 = 0;
  const float frac = std::frexp(std::fabs(x), &exp2);  // |x| = frac * 2^exp2, frac in [0.5, 1)
  uint64_t m = static_cast<uint64_t>(std::ldexp(frac, 24));
  int e = exp2 - 24;
  while (m % 2 == 0) {
    m /= 2;
    ++e;
  }
  std::vector<int> digits;  // decimal digits of the integer m * 2^e or m * 5^-e, least first
  for (; m > 0; m /= 10) digits.push_back(static_cast<int>(m % 10));
  auto times = [&digits](int f) {
    int carry = 0;
    for (int& d : digits) {
      const int v = d * f + carry;
      d = v % 10;
      carry = v / 10;
    }
    for (; carry > 0; carry /= 10) digits.push_back(carry % 10);
  };
  const int frac_digits = e < 0 ? -e : 0;
  for (int i = 0; i < (e < 0 ? -e : e); ++i) times(e < 0 ? 5 : 2);
  while (static_cast<int>(digits.size()) <= frac_digits) digits.push_back(0);
  std::string out = std::signbit(x) ? "-" : "";
  for (int i = static_cast<int>(digits.size()) - 1; i >= 0; --i) {
    out += static_cast<char>('0' + digits[static_cast<size_t>(i)]);
    if (i == frac_digits && i > 0) out += '.';
  }
  return out;  // m is odd, so a fractional expansion never ends in 0
}

// C99 hex float ("0x1p-16", "0x1.cp+8"): the value as the bits hold it.
std::string hex_float(float x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  return fmt::format("{:a}", static_cast<double>(x));
}

void add_decode(CLI::App& fp8) {
  struct Args {
    std::string format = "e4m3";
    std::vector<std::string> codes;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = fp8.add_subcommand(
      "decode", "Print the value of each FP8 code, exactly (the full decimal expansion)");
  cmd->add_option("--format", a->format, "e4m3 (OCP E4M3FN) or e5m2")->capture_default_str();
  cmd->add_option("codes", a->codes, "codes, decimal or 0x hex")->required();
  cmd->add_flag("--json", a->json,
                "machine-readable output: value (exact decimal), hex (hex float), bits (binary32)");
  cmd->callback([a] {
    const Format f = format_arg(a->format);
    nlohmann::json out = nlohmann::json::array();
    for (const std::string& s : a->codes) {
      const uint8_t code = parse_code(s);
      const float v = fp8::decode(code, f);
      if (a->json) {
        out.push_back({{"code", fmt::format("0x{:02x}", code)},
                       {"value", exact_decimal(v)},
                       {"hex", hex_float(v)},
                       {"bits", hex_bits(v)}});
      } else {
        fmt::print("{}\n", exact_decimal(v));
      }
    }
    if (a->json) fmt::print("{}\n", out.dump());
  });
}

// What each overflow policy is, for the labels of `fp8 encode`.
struct PolicyText {
  const char* key;     // JSON key
  const char* column;  // text column heading
  const char* legend;  // one line under the table
};
PolicyText policy_text(fp8::Overflow p, Format f) {
  if (f == Format::kE4M3) {
    if (p == fp8::Overflow::kSaturate)
      return {"saturating", "saturating: clamp to ±448",
              "saturating: rounded |x| > 448 becomes ±448 (CUDA satfinite, ONNX "
              "saturate).\n  DeepSeek's casts divide by s = amax/448 first, so x/s never "
              "exceeds 448."};
    return {"nonsaturating", "plain cast: overflow to NaN",
            "plain cast: rounded |x| > 448 becomes NaN; E4M3 has no Inf (PyTorch <= 2.11\n"
            "  x.to(torch.float8_e4m3fn), ml_dtypes)."};
  }
  if (p == fp8::Overflow::kSaturate)
    return {"saturating", "saturating: clamp to ±57344",
            "saturating: rounded |x| > 57344 becomes ±57344 (CUDA satfinite, ONNX "
            "saturate)."};
  return {"nonsaturating", "plain cast: overflow to ±Inf",
          "plain cast: rounded |x| > 57344 becomes ±Inf (PyTorch <= 2.11, ml_dtypes)."};
}

void add_encode(CLI::App& fp8) {
  struct Args {
    std::string format = "e4m3";
    std::vector<std::string> values;
    std::string policy = "both";
    bool saturate = false;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = fp8.add_subcommand(
      "encode", "Round float32 values to FP8 codes (nearest even), under both overflow policies");
  cmd->add_option("--format", a->format, "e4m3 (OCP E4M3FN) or e5m2")->capture_default_str();
  cmd->add_option("--policy", a->policy,
                  "both (a labelled table), sat (clamp to +-max) or nonsat (NaN for e4m3, Inf "
                  "for e5m2, a plain PyTorch <= 2.11 cast); with one policy: one code per line")
      ->capture_default_str();
  cmd->add_flag("--saturate", a->saturate, "the same as --policy sat");
  cmd->add_flag("--json", a->json, "machine-readable output");
  cmd->add_option("values", a->values, "values (use -- before negative ones)")->required();
  cmd->callback([a] {
    const Format f = format_arg(a->format);
    std::string policy = a->policy;
    if (a->saturate) {
      if (policy != "both" && policy != "sat")
        throw UsageError(fmt::format("--saturate contradicts --policy {}", policy));
      policy = "sat";
    }
    std::vector<fp8::Overflow> policies;
    if (policy == "both" || policy == "sat") policies.push_back(fp8::Overflow::kSaturate);
    if (policy == "both" || policy == "nonsat") policies.push_back(fp8::Overflow::kNonSaturate);
    if (policies.empty())
      throw UsageError(fmt::format("unknown --policy '{}' (both, sat or nonsat)", policy));
    std::vector<float> xs;
    for (const std::string& s : a->values) xs.push_back(parse_float(s));

    if (a->json) {
      nlohmann::json out = nlohmann::json::array();
      for (const float x : xs) {
        nlohmann::json j = {{"input", fp8::format_value(x)},
                            {"input_exact", exact_decimal(x)},
                            {"format", fp8::info(f).name}};
        for (const fp8::Overflow p : policies) {
          const uint8_t code = fp8::encode(x, f, p);
          const float v = fp8::decode(code, f);
          j[policy_text(p, f).key] = {{"code", fmt::format("0x{:02x}", code)},
                                      {"value", exact_decimal(v)},
                                      {"hex", hex_float(v)}};
        }
        out.push_back(std::move(j));
      }
      fmt::print("{}\n", out.dump());
      return;
    }
    if (policies.size() == 1) {  // one code per line, for scripts
      for (const float x : xs) fmt::print("0x{:02x}\n", fp8::encode(x, f, policies[0]));
      return;
    }
    const PolicyText sat = policy_text(fp8::Overflow::kSaturate, f),
                     nonsat = policy_text(fp8::Overflow::kNonSaturate, f);
    auto cell = [&](float x, fp8::Overflow p) {
      const uint8_t code = fp8::encode(x, f, p);
      return fmt::format("0x{:02x} = {}", code, exact_decimal(fp8::decode(code, f)));
    };
    size_t w_in = std::string_view("input").size(), w_sat = std::string_view(sat.column).size();
    for (const float x : xs) {
      w_in = std::max(w_in, fp8::format_value(x).size());
      w_sat = std::max(w_sat, cell(x, fp8::Overflow::kSaturate).size());
    }
    // "±" is one column but two bytes: pad by display width.
    auto pad = [](const std::string& s, size_t w) {
      size_t cols = 0;
      for (unsigned char ch : s) cols += (ch & 0xC0) != 0x80;
      return s + std::string(w > cols ? w - cols : 0, ' ');
    };
    fmt::print("{} {}  {}  {}\n", fp8::info(f).name, pad("input", w_in), pad(sat.column, w_sat),
               nonsat.column);
    for (const float x : xs) {
      const bool differ = fp8::encode(x, f, fp8::Overflow::kSaturate) !=
                          fp8::encode(x, f, fp8::Overflow::kNonSaturate);
      fmt::print("{} {}  {}  {}{}\n", std::string(std::strlen(fp8::info(f).name), ' '),
                 pad(fp8::format_value(x), w_in), pad(cell(x, fp8::Overflow::kSaturate), w_sat),
                 cell(x, fp8::Overflow::kNonSaturate), differ ? "   <- the policies differ" : "");
    }
    fmt::print("{}\n{}\n", sat.legend, nonsat.legend);
  });
}

void add_gemm_error(CLI::App& fp8) {
  struct Args {
    fp8::GemmErrorConfig cfg;
    std::string dist = "randn", accum = "h100", scaling = "tensor", format = "e4m3";
    std::optional<int> promote;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = fp8.add_subcommand(
      "gemm-error",
      "Accumulation error of an FP8 GEMM against the exact sum of its quantized products");
  cmd->add_option("--m", a->cfg.m, "rows of A")->capture_default_str();
  cmd->add_option("--n", a->cfg.n, "rows of B (outputs per row)")->capture_default_str();
  cmd->add_option("--k", a->cfg.k, "inner dimension")->capture_default_str();
  cmd->add_option("--dist", a->dist, "randn | uniform | randn+0.5")->capture_default_str();
  cmd->add_option("--accum", a->accum, "exact | fp32 | h100")->capture_default_str();
  cmd->add_option("--promote", a->promote,
                  "N_C: promote to FP32 every NC elements, 0 = never (default: 0 with tensor "
                  "scaling, 128 with tile scaling)");
  cmd->add_option("--scaling", a->scaling, "tensor (one scale each) | tile (1x128 / 128x128)")
      ->capture_default_str();
  cmd->add_option("--format", a->format, "e4m3 | e5m2")->capture_default_str();
  cmd->add_option("--seed", a->cfg.seed, "random seed")->capture_default_str();
  cmd->add_flag("--json", a->json, "machine-readable output");
  cmd->callback([a] {
    fp8::GemmErrorConfig cfg = a->cfg;
    try {
      cfg.dist = fp8::parse_dist(a->dist);
      cfg.gemm.accum = fp8::parse_accum(a->accum);
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
    cfg.format = format_arg(a->format);
    if (a->scaling != "tensor" && a->scaling != "tile") {
      throw UsageError(fmt::format("unknown scaling '{}' (expected tensor or tile)", a->scaling));
    }
    cfg.tile_scaling = a->scaling == "tile";
    cfg.gemm.promote = a->promote.value_or(cfg.tile_scaling ? fp8::kTile : 0);
    if (cfg.m < 1 || cfg.n < 1 || cfg.k < 1)
      throw UsageError("--m, --n and --k must be at least 1");
    if (cfg.m * cfg.n * cfg.k > (int64_t{1} << 34))
      throw UsageError("m*n*k is too large for the emulator");
    fp8::ErrorStats st;
    try {
      st = fp8::gemm_error(cfg);
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
    if (a->json) {
      nlohmann::json j = {{"m", cfg.m},
                          {"n", cfg.n},
                          {"k", cfg.k},
                          {"dist", fp8::to_string(cfg.dist)},
                          {"format", fp8::info(cfg.format).name},
                          {"accum", fp8::to_string(cfg.gemm.accum)},
                          {"promote", cfg.gemm.promote},
                          {"scaling", a->scaling},
                          {"seed", cfg.seed},
                          {"rel_fro", st.rel_fro},
                          {"max_rel", st.max_rel},
                          {"p99_rel", st.p99_rel},
                          {"median_rel", st.median_rel},
                          {"mean_signed_rel", st.mean_signed_rel},
                          {"count", st.count}};
      fmt::print("{}\n", j.dump());
      return;
    }
    fmt::print("{}x{}x{} {} {}, {} scaling, accumulation {}{}\n", cfg.m, cfg.n, cfg.k,
               fp8::to_string(cfg.dist), fp8::info(cfg.format).name, a->scaling,
               fp8::to_string(cfg.gemm.accum),
               cfg.gemm.accum != fp8::Accum::kH100 ? ""
               : cfg.gemm.promote == 0
                   ? " (no promotion)"
                   : fmt::format(" (promotion every N_C = {})", cfg.gemm.promote));
    fmt::print("error against the exact sum of the quantized products:\n");
    fmt::print("  rel_fro          {:.4e}   ||C - R|| / ||R||\n", st.rel_fro);
    fmt::print("  max_rel          {:.4e}\n", st.max_rel);
    fmt::print("  p99_rel          {:.4e}\n", st.p99_rel);
    fmt::print("  median_rel       {:.4e}\n", st.median_rel);
    fmt::print("  mean_signed_rel  {:+.4e}   (negative: results shrink toward zero)\n",
               st.mean_signed_rel);
  });
}

void add_dot(CLI::App& fp8) {
  struct Args {
    std::string fa = "e4m3", fb = "e4m3", a, b, c = "0";
    int promote = 0;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = fp8.add_subcommand("dot", "One emulated H100 tensor-core FP8 dot product");
  cmd->add_option("--format-a", a->fa, "e4m3 | e5m2")->capture_default_str();
  cmd->add_option("--format-b", a->fb, "e4m3 | e5m2")->capture_default_str();
  cmd->add_option("--a", a->a, "codes of a, two hex digits each, k = 0 first")->required();
  cmd->add_option("--b", a->b, "codes of b, as --a")->required();
  cmd->add_option("--c", a->c, "incoming FP32 accumulator")->capture_default_str();
  cmd->add_option("--promote", a->promote, "N_C (multiple of 32); 0 = one tensor-core chain")
      ->capture_default_str();
  cmd->callback([a] {
    const auto va = parse_hex_codes(a->a, "--a");
    const auto vb = parse_hex_codes(a->b, "--b");
    if (va.size() != vb.size()) {
      throw UsageError(fmt::format("--a has {} codes but --b has {}", va.size(), vb.size()));
    }
    if (a->promote < 0 || a->promote % 32 != 0)
      throw UsageError("--promote must be 0 or a multiple of 32");
    const float r =
        fp8::tc_dot(va, format_arg(a->fa), vb, format_arg(a->fb), parse_float(a->c), a->promote);
    fmt::print("{} {}\n", hex_bits(r), fp8::format_value(r));
  });
}

void add_model_error(CLI::App& fp8) {
  struct Args {
    std::string model = "tiny";
    int tokens = 256;
    std::vector<int32_t> ids;
    std::string prompt, text;
    uint64_t seed = 0;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = fp8.add_subcommand(
      "model-error",
      "How far the logits move from float32 when the model's linear layers run in FP8");
  cmd->add_option("--model", a->model, "built-in config name, config.json, or checkpoint folder")
      ->capture_default_str();
  auto* tokens_opt =
      cmd->add_option("--tokens", a->tokens,
                      "number of pseudo-random token ids; with --prompt or --text, the most "
                      "tokens of it to run")
          ->capture_default_str();
  cmd->add_option("--ids", a->ids, "token ids, comma separated")->delimiter(',');
  cmd->add_option("--prompt", a->prompt, "run this text (the model's tokenizer) instead");
  cmd->add_option("--text", a->text, "run the text of this file instead");
  cmd->add_option("--seed", a->seed, "seed for random weights and token ids")
      ->capture_default_str();
  cmd->add_flag("--json", a->json, "machine-readable output");
  cmd->callback([a, tokens_opt] {
    const model::Model m = model::Model::load(a->model, a->seed);
    if (a->tokens < 1) throw UsageError("--tokens must be at least 1");
    if (!a->ids.empty() + !a->prompt.empty() + !a->text.empty() > 1)
      throw UsageError("give at most one of --ids, --prompt and --text");
    std::vector<int32_t> ids = a->ids;
    std::string source = "given ids";
    if (!a->prompt.empty() || !a->text.empty()) {
      std::string body = a->prompt;
      if (!a->text.empty()) {
        body = read_file_arg("--text " + a->text, a->text);
        source = fmt::format("text of {}", a->text);
      } else {
        source = "the prompt";
      }
      ids = m.tokenizer().encode(body);
      const int64_t cap = std::min<int64_t>(tokens_opt->count() > 0 ? a->tokens : int64_t{1} << 30,
                                            m.config().max_position_embeddings);
      if (static_cast<int64_t>(ids.size()) > cap) ids.resize(static_cast<size_t>(cap));
    } else if (ids.empty()) {
      source = "pseudo-random ids";
      uint64_t s = a->seed * 0x9E3779B97F4A7C15ull + 12345;
      for (int i = 0; i < a->tokens; ++i) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        ids.push_back(
            static_cast<int32_t>((s >> 33) % static_cast<uint64_t>(m.config().vocab_size)));
      }
    }
    for (const int32_t id : ids) {
      if (id < 0 || id >= m.config().vocab_size)
        throw UsageError(
            fmt::format("token id {} is out of range 0..{}", id, m.config().vocab_size - 1));
    }
    if (static_cast<int64_t>(ids.size()) > m.config().max_position_embeddings)
      throw UsageError(fmt::format("{} tokens is more than the model's {} positions", ids.size(),
                                   m.config().max_position_embeddings));
    const std::shared_ptr<const io::Checkpoint> ckpt = fp8::checkpoint_of(a->model);
    const bool stored_fp8 = ckpt && m.config().quantization.fp8;
    const auto rows = fp8::compare_precisions(m, ids, fp8::default_precision_modes(), ckpt);
    // Rows differ by less than this at random: two standard errors of a difference.
    double se_max = 0;
    for (const auto& r : rows) se_max = std::max(se_max, r.rel_error_se);
    const double noise = 2.0 * std::sqrt(2.0) * se_max;
    const std::string reference =
        stored_fp8 ? "float32 forward of the same weights (stored in FP8, dequantized on load)"
                   : "float32 forward of the same weights";
    if (a->json) {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& r : rows) {
        j.push_back({{"mode", r.label},
                     {"rel_error", r.rel_error},
                     {"rel_error_se", r.rel_error_se},
                     {"rel_error_same_routing", r.rel_error_same_routing},
                     {"route_flips", r.route_flips},
                     {"accum_rel_error", r.accum_rel_error},
                     {"top1_agreement", r.top1_agreement},
                     {"kl_mean", r.kl_mean},
                     {"kl_max", r.kl_max},
                     {"positions", r.positions}});
      }
      fmt::print("{}\n", nlohmann::json{{"model", a->model},
                                        {"tokens", ids.size()},
                                        {"source", source},
                                        {"reference", reference},
                                        {"noise", noise},
                                        {"rows", j}}
                             .dump());
      return;
    }
    fmt::print("'{}', {} tokens ({}): attention projections and FFNs in FP8 (E4M3)\n", a->model,
               ids.size(), source);
    fmt::print("reference: the {}\n", reference);
    fmt::print("{:<34} {:>10} {:>8} {:>9} {:>6} {:>10} {:>6} {:>8}\n", "accumulation", "rel. error",
               "± s.e.", "same rt.", "flips", "acc. only", "top-1", "KL mean");
    for (const auto& r : rows) {
      fmt::print("{:<34} {:>10.2e} {:>8.1e} {:>9.2e} {:>5.1f}% {:>10.2e} {:>5.1f}% {:>8.1e}\n",
                 r.label, r.rel_error, r.rel_error_se, r.rel_error_same_routing,
                 100.0 * r.route_flips, r.accum_rel_error, 100.0 * r.top1_agreement, r.kl_mean);
    }
    fmt::print(
        "rel. error: ||L - L_fp32|| / ||L_fp32|| over the {} positions, ± one standard error "
        "(bootstrap);\n"
        "same rt.: the same over positions whose experts all match float32; flips: routing "
        "decisions\n"
        "(position, MoE layer) that picked other experts. A flip moves a position's logits far "
        "more than\n"
        "rounding does, so acc. only (against FP8 with exact accumulation) measures flips more "
        "than\n"
        "accumulation error; `dsv3 fp8 gemm-error` shows the accumulation alone.\n",
        ids.size());
    fmt::print(
        "At {} tokens, rel. errors that differ by less than {:.1e} (2 s.e. of a difference) are "
        "noise:\n"
        "no row is better than another unless it beats that{}.\n",
        ids.size(), noise, ids.size() < 256 ? "; use --tokens or --text for more positions" : "");
  });
}

}  // namespace

void add_fp8_commands(CLI::App& app) {
  auto* fp8 = app.add_subcommand("fp8", "FP8 formats, quantization and tensor-core accumulation");
  fp8->require_subcommand(1);
  add_decode(*fp8);
  add_encode(*fp8);
  add_gemm_error(*fp8);
  add_dot(*fp8);
  add_model_error(*fp8);
  add_fp8_train_compare(*fp8);
}

}  // namespace dsv3::app

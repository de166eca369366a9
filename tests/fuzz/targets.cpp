// The fuzz targets of targets.h. Every parser's documented error (FormatError, ConfigError,
// LessonError, CommandError, UsageError, std::invalid_argument ...) is an expected answer to bad
// input and is caught; anything else escapes to the fuzzer as a failure.
#include "tests/fuzz/targets.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

#include "app/cli/cli.h"
#include "app/commands/registry.h"
#include "app/explorer/session.h"
#include "app/lesson/lesson.h"
#include "reference/accounting/accounting.h"
#include "reference/io/bpe.h"
#include "reference/io/safetensors.h"
#include "reference/model/config.h"
#include "reference/model/memory.h"

namespace dsv3::fuzz {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A scratch folder for this process, removed at exit.
const fs::path& scratch_dir() {
  static const fs::path dir = [] {
    // In memory where there is a tmpfs: the file targets write their input once per run.
    std::error_code ec;
    const fs::path base =
        fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : fs::temp_directory_path();
    std::string tmpl = (base / "dsv3-fuzz-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) std::abort();
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(scratch_dir(), ec);
    });
    return fs::path(tmpl);
  }();
  return dir;
}

void write_file(const fs::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Every float tensor of a checkpoint through the loader's conversions (matrix() applies an FP8
// block scale where one is present).
void read_every_tensor(const io::Checkpoint& ck) {
  for (const std::string& name : ck.names()) {
    const io::TensorView& t = ck.get(name);
    try {
      if (t.shape.size() == 2)
        (void)ck.matrix(name);
      else if (t.shape.size() == 1)
        (void)ck.vector(name);
      else
        (void)io::to_f32(t);
    } catch (const io::FormatError&) {
    }
  }
}

}  // namespace

int safetensors_file(const uint8_t* data, size_t size) {
  const fs::path path = scratch_dir() / "fuzz.safetensors";
  write_file(path, as_text(data, size));
  try {
    io::Checkpoint ck(path.string());
    read_every_tensor(ck);
  } catch (const io::FormatError&) {
  }
  return 0;
}

int safetensors_index(const uint8_t* data, size_t size) {
  // Two shards written once: a.safetensors holds x [2, 3] F32 and x_scale_inv, b.safetensors
  // holds y [4] BF16.
  static const fs::path dir = [] {
    const fs::path d = scratch_dir() / "sharded";
    fs::create_directories(d);
    io::SafetensorsWriter a, b;
    const float x[6] = {1, 2, 3, 4, 5, 6};
    a.add("x.weight", io::DType::kF32, {2, 3}, x, sizeof x);
    const uint16_t y[4] = {0x3f80, 0x4000, 0xc040, 0x0000};
    b.add("y", io::DType::kBF16, {4}, y, sizeof y);
    a.write((d / "a.safetensors").string());
    b.write((d / "b.safetensors").string());
    return d;
  }();
  write_file(dir / "model.safetensors.index.json", as_text(data, size));
  try {
    io::Checkpoint ck(dir.string());
    read_every_tensor(ck);
  } catch (const io::FormatError&) {
  }
  return 0;
}

int config_json(const uint8_t* data, size_t size) {
  const fs::path path = scratch_dir() / "config.json";
  write_file(path, as_text(data, size));
  model::Config c;
  try {
    c = model::load_config_file(path.string());
  } catch (const model::ConfigError&) {
    return 0;
  }
  // What `dsv3 info` and the explorer compute from a config before any weight exists.
  (void)model::weight_floats(c, c.num_nextn_predict_layers);
  try {
    model::check_weights_fit(c, c.num_nextn_predict_layers, int64_t{1} << 30);
  } catch (const model::InsufficientMemory&) {
  }
  (void)accounting::count_params(c);
  (void)accounting::count_mtp_params(c);
  (void)accounting::kv_cache(c, c.max_position_embeddings);
  (void)accounting::flops_per_token(c, c.max_position_embeddings);
  (void)accounting::checkpoint_census(c);
  (void)c.softmax_scale();
  (void)model::to_json(c).dump();
  return 0;
}

int tokenizer_json(const uint8_t* data, size_t size) {
  try {
    const io::BpeTokenizer t = io::BpeTokenizer::from_json(as_text(data, size), "fuzz.json");
    std::vector<int32_t> ids;
    for (int32_t id = -1; id <= t.vocab_size(); ++id) {
      (void)t.piece(id);
      (void)t.bytes(id);
      ids.push_back(id);
    }
    (void)t.decode(ids);
    (void)t.describe();
    if (t.encode_unsupported().empty()) {
      const std::vector<int32_t> enc =
          t.encode("DeepSeek-V3 routes each token to 8 of 256 experts. 深度求索 \xff\xfe 's 123");
      (void)t.decode(enc);
    }
    (void)t.to_json();
  } catch (const io::FormatError&) {
  }
  return 0;
}

namespace {

// The variables a lesson's checks and interpolations see: command results of every JSON kind.
const app::lesson::Env& lesson_env() {
  static const app::lesson::Env env = json::parse(R"({
    "kv": {"forms": [{"name": "MLA", "bytes_bf16": 70272}, {"name": "MHA", "bytes_bf16": 4194304}]},
    "x": 3, "y": -2.5, "z": 0, "big": 1e308, "tiny": 5e-324, "max": 9223372036854775807,
    "min": -9223372036854775808, "u": 18446744073709551615, "s": "text", "t": true,
    "a": [1, 2, 3], "e": [], "o": {}, "n": null})");
  return env;
}

constexpr const char* kFormats[] = {"",    "int", "bytes", "x",   "B",   "M",    "K",
                                    ".2f", ".3g", ".1e",   ".1%", ".0f", ".99f", "?"};

void evaluate(const std::string& text, const std::string& format) {
  try {
    const app::lesson::ExprPtr e = app::lesson::parse_expr(text);
    const json v = app::lesson::eval(*e, lesson_env());
    (void)app::lesson::explain(*e, lesson_env());
    try {
      (void)app::lesson::is_true(v);
    } catch (const std::runtime_error&) {
    }
    (void)app::lesson::format_value(v, format);
  } catch (const std::invalid_argument&) {
  } catch (const std::runtime_error&) {
  }
}

}  // namespace

int lesson_file(const uint8_t* data, size_t size) {
  app::lesson::Lesson l;
  try {
    l = app::lesson::parse_lesson(as_text(data, size), "fuzz.md");
  } catch (const app::lesson::LessonError&) {
    return 0;
  }
  for (const app::lesson::Step& s : l.steps) {
    for (const app::lesson::Check& c : s.checks) evaluate(c.text, "");
    for (const std::string& line : s.prose)
      for (size_t p = line.find("{{"); p != std::string::npos; p = line.find("{{", p + 2)) {
        const size_t e = line.find("}}", p);
        if (e == std::string::npos) break;
        const auto [expr, format] = app::lesson::split_interpolation(line.substr(p + 2, e - p - 2));
        evaluate(expr, format);
      }
  }
  return 0;
}

int lesson_expr(const uint8_t* data, size_t size) {
  const std::string text(as_text(data, size));
  evaluate(text, "");
  const auto [expr, format] = app::lesson::split_interpolation(text);
  evaluate(expr, format);
  for (const char* f : kFormats) {
    try {
      (void)app::lesson::format_value(lesson_env(), f);
      (void)app::lesson::format_value(json::parse("[1e308, -1e308, 5e-324, -0.0]")[size % 4], f);
    } catch (const std::exception&) {
    }
  }
  return 0;
}

int command_line(const uint8_t* data, size_t size) {
  // The session is the fuzzer's set-up, not its input: if it cannot open (no tiny-configs/ found
  // beside the binary or in DSV3_DATA_DIR), say so once and stop, rather than let libFuzzer
  // report the same exception as a crash of every input.
  static app::Session* session = [] {
    try {
      app::SessionOptions o;
      o.prompt = "Hi.";
      return new app::Session(o);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "fuzz_command_line: cannot open the tiny-model session: %s\n", e.what());
      std::_Exit(2);  // not exit(): libFuzzer reports an exit from a target as a crash
    }
  }();
  const app::Registry& reg = app::registry();
  const std::string_view text = as_text(data, size);
  for (const std::string& stmt : app::split_statements(text)) {
    const std::vector<app::Word> words = app::split_words(stmt);
    if (words.empty()) continue;
    const app::Command* c = reg.find(words[0].text);
    if (!c) {
      (void)reg.suggestions(words[0].text);
      continue;
    }
    try {
      (void)reg.parse(*c, *session, std::string_view(stmt).substr(words[0].end));
    } catch (const app::CommandError&) {
    }
    (void)reg.help(c->name);
  }
  (void)reg.complete(*session, text, text.size());
  if (size > 0) (void)reg.complete(*session, text, data[0] % (size + 1));
  return 0;
}

int fp8_cli(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static constexpr const char* kSub[] = {"decode", "encode", "dot"};
  std::vector<std::string> args = {"dsv3", "fp8", kSub[data[0] % 3]};
  std::string cur;
  for (size_t i = 1; i < size; ++i) {
    if (data[i] == 0 || data[i] == '\n') {
      args.push_back(cur);
      cur.clear();
    } else {
      cur += static_cast<char>(data[i]);
    }
  }
  if (!cur.empty()) args.push_back(cur);
  if (args.size() > 64) return 0;  // the argument count is not what is being tested
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  CLI::App app{"dsv3", "dsv3"};
  app::add_fp8_commands(app);
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::Error&) {
  } catch (const app::UsageError&) {
  } catch (const std::invalid_argument&) {
  }
  return 0;
}

const std::vector<NamedTarget>& all_targets() {
  static const std::vector<NamedTarget> targets = {
      {"safetensors_file", safetensors_file}, {"safetensors_index", safetensors_index},
      {"config_json", config_json},           {"tokenizer_json", tokenizer_json},
      {"lesson_file", lesson_file},           {"lesson_expr", lesson_expr},
      {"command_line", command_line},         {"fp8_cli", fp8_cli},
  };
  return targets;
}

}  // namespace dsv3::fuzz

// `dsv3 tokenizer train|encode|decode|stats` (byte-level BPE, reference/io/bpe.h) and
// `dsv3 tokenize` (text or a corpus folder -> a 'tokens' stream for `dsv3 train --data`).
// docs/tokenizer.md describes the tokenizer, its file and these commands.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "app/cli/cli.h"
#include "app/cli/model.h"
#include "reference/io/bpe.h"
#include "reference/io/documents.h"
#include "reference/io/safetensors.h"
#include "reference/io/tokenizer.h"
#include "reference/model/config.h"

namespace dsv3::app {
namespace {
namespace fs = std::filesystem;

std::string read_text(const std::string& path) {
  return read_file_arg(path, path);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The files with this suffix in a folder, in sorted name order.
std::vector<fs::path> files_ending(const fs::path& dir, const std::string& suffix) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A tokenizer.json file, a model folder holding one, or a built-in model name ("tiny").
std::shared_ptr<const io::BpeTokenizer> open_tokenizer(const std::string& arg) {
  const std::string path = model::resolve_model_path(arg);
  const fs::path file = fs::is_directory(path) ? fs::path(path) / "tokenizer.json" : fs::path(path);
  if (!fs::exists(file)) throw UsageError(fmt::format("{}: no such tokenizer file", file.string()));
  try {
    return std::make_shared<io::BpeTokenizer>(io::BpeTokenizer::load(file.string()));
  } catch (const io::FormatError& e) {
    throw UsageError(e.what());
  }
}

// A text file's documents (split at 0x1E separator lines), kept with the text they view.
struct TextFile {
  std::string name;  // the file name without folders
  std::string text;
  std::vector<std::string_view> documents;
};

TextFile read_documents(const fs::path& path) {
  TextFile f{path.filename().string(), read_text(path.string()), {}};
  f.documents = io::split_documents(f.text);
  return f;
}

// ---- dsv3 tokenizer train ----

struct TrainArgs {
  std::vector<std::string> corpus;
  int64_t vocab = 0;
  std::string out;
  int64_t max_bytes = 0;
  int64_t min_frequency = 2;
};

void run_train(const TrainArgs& a) {
  // Folders contribute their *.train.txt files (never *.heldout.txt), files themselves.
  std::vector<TextFile> files;
  for (const std::string& c : a.corpus) {
    if (fs::is_directory(c)) {
      auto list = files_ending(c, ".train.txt");
      if (list.empty()) throw UsageError(fmt::format("{}: no *.train.txt files in the folder", c));
      for (const fs::path& p : list) files.push_back(read_documents(p));
    } else {
      files.push_back(read_documents(c));
    }
  }
  int64_t total = 0;
  for (const TextFile& f : files)
    for (std::string_view d : f.documents) total += static_cast<int64_t>(d.size());
  if (total == 0) throw UsageError("the corpus holds no text");
  // --max-bytes keeps the same share of every file (the first documents of each), so the
  // domains stay in proportion.
  const double share = a.max_bytes > 0 ? std::min(1.0, double(a.max_bytes) / double(total)) : 1.0;
  std::vector<std::string_view> docs;
  int64_t bytes = 0;
  for (const TextFile& f : files) {
    int64_t file_bytes = 0, budget = 0;
    for (std::string_view d : f.documents) budget += static_cast<int64_t>(d.size());
    budget = static_cast<int64_t>(share * double(budget));
    for (std::string_view d : f.documents) {
      if (file_bytes >= budget && share < 1.0) break;
      docs.push_back(d);
      file_bytes += static_cast<int64_t>(d.size());
    }
    bytes += file_bytes;
  }
  std::printf("training a byte-level BPE of %lld tokens on %zu documents, %.1f MB from %zu files\n",
              static_cast<long long>(a.vocab), docs.size(), double(bytes) / 1e6, files.size());
  std::fflush(stdout);

  const auto t0 = std::chrono::steady_clock::now();
  const bool tty = isatty(STDERR_FILENO);
  io::BpeTrainOptions opt;
  opt.vocab_size = a.vocab;
  opt.min_frequency = a.min_frequency;
  if (tty)
    opt.progress = [&](int64_t done, int64_t wanted) {
      const double s = seconds_since(t0);
      std::fprintf(stderr, "\r  merges %lld/%lld  %.0f merges/s  %.1f s ",
                   static_cast<long long>(done), static_cast<long long>(wanted),
                   s > 0 ? double(done) / s : 0.0, s);
    };
  io::BpeTrainResult r = [&] {
    try {
      return io::train_bpe(docs, opt);
    } catch (const std::invalid_argument& e) {
      throw UsageError(e.what());
    }
  }();
  const double train_s = seconds_since(t0);
  if (tty) std::fprintf(stderr, "\n");
  r.tokenizer.save(a.out);
  std::printf("%lld tokens (%zu merges) from %lld words (%lld distinct) in %.1f s; written to %s\n",
              static_cast<long long>(r.tokenizer.vocab_size()), r.tokenizer.merges().size(),
              static_cast<long long>(r.words), static_cast<long long>(r.unique_words), train_s,
              a.out.c_str());
  if (r.tokenizer.vocab_size() < a.vocab)
    std::printf("(stopped early: no pair occurs %lld times or more)\n",
                static_cast<long long>(std::max<int64_t>(a.min_frequency, 1)));
  const auto t1 = std::chrono::steady_clock::now();
  int64_t tokens = 0;
  for (std::string_view d : docs)
    tokens += static_cast<int64_t>(r.tokenizer.encode(d, false).size());
  std::printf(
      "compression on the training text: %.3f bytes per token (%lld tokens, encoded in "
      "%.1f s)\n",
      double(bytes) / double(std::max<int64_t>(tokens, 1)), static_cast<long long>(tokens),
      seconds_since(t1));
}

// ---- dsv3 tokenizer encode / decode / stats ----

void run_encode(const std::string& tok_path, const std::string& text, bool bos) {
  auto tok = open_tokenizer(tok_path);
  std::vector<int32_t> ids;
  try {
    ids = tok->encode(text, bos);
  } catch (const std::runtime_error& e) {
    throw UsageError(e.what());
  }
  std::string list, pieces;
  for (size_t i = 0; i < ids.size(); ++i) {
    list += fmt::format("{}{}", i ? "," : "", ids[i]);
    pieces += fmt::format("{}[{}]", i ? " " : "", tok->piece(ids[i]));
  }
  std::printf("%s\n%s\n%zu tokens, %zu bytes\n", list.c_str(), pieces.c_str(), ids.size(),
              text.size());
}

void run_decode(const std::string& tok_path, const std::string& list) {
  auto tok = open_tokenizer(tok_path);
  std::vector<int32_t> ids;
  try {
    ids = io::parse_ids(list);
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
  for (int32_t id : ids)
    if (id >= tok->vocab_size())
      throw UsageError(
          fmt::format("token {} is outside the vocabulary [0, {})", id, tok->vocab_size()));
  const std::string text = tok->decode(ids);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::printf("\n");
}

void run_stats(const std::string& tok_path, const std::vector<std::string>& paths) {
  auto tok = open_tokenizer(tok_path);
  std::vector<fs::path> files;
  for (const std::string& p : paths) {
    if (fs::is_directory(p)) {
      auto list = files_ending(p, ".txt");
      files.insert(files.end(), list.begin(), list.end());
    } else {
      files.push_back(p);
    }
  }
  std::printf("%s\n%-22s %9s %12s %12s %11s\n", tok->describe().c_str(), "file", "documents",
              "bytes", "tokens", "bytes/token");
  int64_t all_bytes = 0, all_tokens = 0;
  for (const fs::path& p : files) {
    TextFile f = read_documents(p);
    int64_t bytes = 0, tokens = 0;
    try {
      for (std::string_view d : f.documents) {
        bytes += static_cast<int64_t>(d.size());
        tokens += static_cast<int64_t>(tok->encode(d, false).size());
      }
    } catch (const std::runtime_error& e) {
      throw UsageError(e.what());
    }
    std::printf("%-22s %9zu %12lld %12lld %11.3f\n", f.name.c_str(), f.documents.size(),
                static_cast<long long>(bytes), static_cast<long long>(tokens),
                double(bytes) / double(std::max<int64_t>(tokens, 1)));
    all_bytes += bytes;
    all_tokens += tokens;
  }
  std::printf("%-22s %9s %12lld %12lld %11.3f\n", "total", "", static_cast<long long>(all_bytes),
              static_cast<long long>(all_tokens),
              double(all_bytes) / double(std::max<int64_t>(all_tokens, 1)));
}

// ---- dsv3 tokenize ----

struct TokenizeArgs {
  std::string text;
  std::string corpus;
  std::string tokenizer;
  std::string out;
};

// Token ids as U16 when every id fits (half the bytes), else I32.
void add_tokens(io::SafetensorsWriter& w, const std::vector<int32_t>& ids, int64_t vocab) {
  const int64_t n = static_cast<int64_t>(ids.size());
  if (vocab <= 65536) {
    std::vector<uint16_t> small(ids.begin(), ids.end());
    w.add("tokens", io::DType::kU16, {n}, small.data(), small.size() * sizeof(uint16_t));
  } else {
    w.add("tokens", io::DType::kI32, {n}, ids.data(), ids.size() * sizeof(int32_t));
  }
}

// One split of a corpus folder ("train" or "heldout"): every domain's documents as
// BOS, tokens, EOS, domains concatenated in name order, with their start offsets.
void tokenize_split(const io::Tokenizer& tok, const std::string& tok_name,
                    const std::vector<fs::path>& files, const std::string& split,
                    const std::string& out) {
  std::vector<int32_t> ids;
  std::vector<int64_t> offsets{0};
  std::string names;
  std::printf("%s -> %s\n%-10s %9s %12s %12s %11s\n", split.c_str(), out.c_str(), "domain",
              "documents", "bytes", "tokens", "bytes/token");
  for (const fs::path& p : files) {
    TextFile f = read_documents(p);
    const std::string domain = f.name.substr(0, f.name.size() - split.size() - 5);  // ".txt"
    int64_t bytes = 0;
    const size_t start = ids.size();
    for (std::string_view d : f.documents) {
      std::vector<int32_t> doc = tok.encode(d, true);
      ids.insert(ids.end(), doc.begin(), doc.end());
      ids.push_back(tok.eos());
      bytes += static_cast<int64_t>(d.size());
    }
    offsets.push_back(static_cast<int64_t>(ids.size()));
    names += (names.empty() ? "" : ",") + domain;
    std::printf("%-10s %9zu %12lld %12zu %11.3f\n", domain.c_str(), f.documents.size(),
                static_cast<long long>(bytes), ids.size() - start,
                double(bytes) / double(std::max<size_t>(ids.size() - start, 1)));
  }
  io::SafetensorsWriter w;
  add_tokens(w, ids, tok.vocab_size());
  w.add_i64("domain_offsets", {static_cast<int64_t>(offsets.size())}, offsets);
  w.set_metadata("domains", names);
  w.set_metadata("tokenizer", tok_name);
  w.write(out);
}

void run_tokenize(const TokenizeArgs& a) {
  if (a.text.empty() == a.corpus.empty())
    throw UsageError("give either a TEXT file or --corpus DIR");
  std::shared_ptr<const io::Tokenizer> tok = std::make_shared<io::ByteTokenizer>();
  std::string tok_name = "byte";
  if (!a.tokenizer.empty()) {
    tok = open_tokenizer(a.tokenizer);
    tok_name = fs::path(a.tokenizer).filename().string();
  }
  try {
    if (!a.corpus.empty()) {
      if (!fs::is_directory(a.corpus))
        throw UsageError(fmt::format("{}: --corpus needs a folder of *.train.txt files", a.corpus));
      for (std::string split : {"train", "heldout"}) {
        auto files = files_ending(a.corpus, "." + split + ".txt");
        if (files.empty())
          throw UsageError(fmt::format("{}: no *.{}.txt files in the folder", a.corpus, split));
        tokenize_split(*tok, tok_name, files, split, a.out + "." + split + ".safetensors");
      }
      return;
    }
    // One text file: BOS, then its tokens, as I32 (the byte tokenizer's historical format).
    const std::string text = read_text(a.text);
    if (text.empty()) throw UsageError(fmt::format("{}: the file is empty", a.text));
    std::vector<int32_t> ids = tok->encode(text);
    io::SafetensorsWriter w;
    w.add("tokens", io::DType::kI32, {static_cast<int64_t>(ids.size())}, ids.data(),
          ids.size() * sizeof(int32_t));
    w.set_metadata("tokenizer", tok_name);
    w.set_metadata("source", fs::path(a.text).filename().string());
    w.write(a.out);
    std::printf("%zu tokens (%s, vocabulary >= %lld) written to %s\n", ids.size(),
                tok->describe().c_str(), static_cast<long long>(tok->vocab_size()), a.out.c_str());
  } catch (const io::FormatError& e) {
    throw UsageError(e.what());
  } catch (const std::runtime_error& e) {  // an encoding the tokenizer.json does not support
    if (dynamic_cast<const UsageError*>(&e)) throw;
    throw UsageError(e.what());
  }
}

}  // namespace

void add_tokenizer_commands(CLI::App& app) {
  CLI::App* root = app.add_subcommand("tokenizer", "Byte-level BPE: train, encode, decode, stats");
  root->require_subcommand(1);

  auto ta = std::make_shared<TrainArgs>();
  CLI::App* t = root->add_subcommand("train", "Train a byte-level BPE; writes a tokenizer.json");
  t->add_option("--corpus", ta->corpus,
                "Corpus folders (their *.train.txt) or text files; documents end with a line "
                "holding only 0x1E")
      ->required();
  t->add_option("--vocab", ta->vocab, "Vocabulary size (3 specials + 256 bytes + merges)")
      ->required()
      ->check(CLI::Range(int64_t{259}, int64_t{1} << 24));
  t->add_option("--out", ta->out, "Output tokenizer.json")->required();
  t->option_defaults()->always_capture_default();
  t->add_option("--max-bytes", ta->max_bytes,
                "Train on about this many bytes, the same share of every file (0 = all)");
  t->add_option("--min-frequency", ta->min_frequency, "Stop when no pair occurs this often");
  t->callback([ta] { run_train(*ta); });

  auto tok = std::make_shared<std::string>();
  auto text = std::make_shared<std::string>();
  auto no_bos = std::make_shared<bool>(false);
  CLI::App* e = root->add_subcommand("encode", "Text to token ids and pieces");
  e->add_option("--tokenizer", *tok, "tokenizer.json, a model folder or a built-in name (tiny)")
      ->required();
  e->add_option("TEXT", *text, "Text to encode")->required();
  e->add_flag("--no-bos", *no_bos, "Do not start with BOS");
  e->callback([tok, text, no_bos] { run_encode(*tok, *text, !*no_bos); });

  CLI::App* d = root->add_subcommand("decode", "Token ids to text");
  d->add_option("--tokenizer", *tok, "tokenizer.json, a model folder or a built-in name (tiny)")
      ->required();
  d->add_option("IDS", *text, "Comma-separated ids, e.g. 0,300,17")->required();
  d->callback([tok, text] { run_decode(*tok, *text); });

  auto files = std::make_shared<std::vector<std::string>>();
  CLI::App* s = root->add_subcommand("stats", "Bytes per token on text files, per file");
  s->add_option("--tokenizer", *tok, "tokenizer.json, a model folder or a built-in name (tiny)")
      ->required();
  s->add_option("--text", *files, "Text files or folders (their *.txt)")->required();
  s->callback([tok, files] { run_stats(*tok, *files); });

  auto ka = std::make_shared<TokenizeArgs>();
  CLI::App* k = app.add_subcommand(
      "tokenize", "A text file or a corpus folder as a 'tokens' stream for dsv3 train --data");
  k->add_option("TEXT", ka->text, "Text file (tokens I32 [n]: BOS, then the text)");
  k->add_option("--corpus", ka->corpus,
                "Corpus folder: writes OUT.train.safetensors and OUT.heldout.safetensors from "
                "<domain>.train.txt / <domain>.heldout.txt (tokens U16 or I32, domain_offsets)");
  k->add_option("--tokenizer", ka->tokenizer,
                "tokenizer.json, a model folder or a built-in name (default: the byte tokenizer)");
  k->add_option("--out", ka->out, "Output .safetensors (with --corpus: the prefix)")->required();
  k->callback([ka] { run_tokenize(*ka); });
}

}  // namespace dsv3::app

// The fuzz targets: one function per parser that takes arbitrary bytes. Each must return
// normally for every input (a parser's own error is caught here); a crash, a sanitizer report,
// a hang or an unbounded allocation is a bug. libFuzzer drives them (tests/fuzz/libfuzzer/,
// built by the `fuzz` preset), and test_fuzz replays the seeds and every input that once failed
// (tests/fuzz/regressions/) in the ordinary test suite.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dsv3::fuzz {

using Target = int (*)(const uint8_t* data, size_t size);

// A .safetensors file: header, validation, every tensor converted to float32.
int safetensors_file(const uint8_t* data, size_t size);
// model.safetensors.index.json beside two fixed shards: the index and its consistency with them.
int safetensors_index(const uint8_t* data, size_t size);
// config.json in the Hugging Face or the official form; a valid one goes through the memory
// accounting and the fit check.
int config_json(const uint8_t* data, size_t size);
// tokenizer.json; a valid one encodes and decodes a fixed text and its own vocabulary.
int tokenizer_json(const uint8_t* data, size_t size);
// A lesson file: Markdown steps, ```dsv3 and ```check blocks, {{expr:format}} in the prose; the
// checks and interpolations are evaluated against a fixed set of bound variables.
int lesson_file(const uint8_t* data, size_t size);
// One expression of the lesson language, evaluated and formatted every way prose may.
int lesson_expr(const uint8_t* data, size_t size);
// A line of the command language (REPL, ':' prompt, dsv3 exec): statements, words, argument
// checking of the named command and tab completion, on a session of the tiny model.
int command_line(const uint8_t* data, size_t size);
// `dsv3 fp8 decode|encode|dot ARGS...`: the CLI's FP8 code and number parsing (NUL- or
// newline-separated arguments; the first byte picks the subcommand).
int fp8_cli(const uint8_t* data, size_t size);

struct NamedTarget {
  const char* name;
  Target run;
};
// Every target by name (the folder names under tests/fuzz/seeds and tests/fuzz/regressions).
const std::vector<NamedTarget>& all_targets();

}  // namespace dsv3::fuzz

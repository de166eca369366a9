// Helpers shared by the model's subcommands (model.cpp, mtp.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "reference/model/model.h"

namespace dsv3::app {

// Model::load with config and file errors turned into one-line UsageErrors. `weights` is the
// --weights option: "f32" (default) or "native" (a checkpoint's matrices as stored, mapped).
model::Model load_model(const std::string& name, uint64_t seed, const std::string& weights = "f32");
// With native weights, one line: bytes of matrices mapped, bytes read since load, resident
// memory (anonymous and mapped-file pages). Empty for float32 weights.
std::string weights_note(const model::Model& m);
// The model's name as output shows it: "tiny", or "tiny-random (random weights, seed 0)" for a
// config without a checkpoint (its routing, load and MTP drafts are noise and must say so).
std::string model_label(const model::Model& m, uint64_t seed);
// A whole file's bytes for a command-line argument; a missing file, a directory or a read
// error is a one-line UsageError starting with `what` ("--text notes.txt: no such file").
std::string read_file_arg(const std::string& what, const std::string& path);
// The prompt as token ids from --prompt TEXT (byte tokenizer) or --ids LIST, checked against
// the vocabulary; exactly one of the two must be given.
std::vector<int32_t> prompt_ids(const model::Model& m, const std::string& prompt,
                                const std::string& ids);

}  // namespace dsv3::app

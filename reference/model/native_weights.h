// A checkpoint's matrices as it stores them (`--weights native`, issue 18).
//
// The float32 path (load_weights) turns every tensor into float32 at load time. The native path
// maps the safetensors files (io::Checkpoint mmaps them and parses only their headers) and keeps
// each matrix as a CompactMatrix pointing into the mapping: no copy, and a page is read from
// disk only when a product first touches it. The norm weights and correction biases (vectors,
// a few thousand numbers per layer) are still read into float32 ModelWeights, whose matrices
// stay empty (0 x 0); the model looks matrices up here by checkpoint name.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "reference/model/compact_linear.h"
#include "reference/model/config.h"
#include "reference/model/weights.h"

namespace dsv3::io {
class Checkpoint;
}

namespace dsv3::model {

// "f32": every weight in float32 (the default, the parity path); "native": as stored.
enum class WeightMode { kF32, kNative };
WeightMode parse_weight_mode(const std::string& s);  // "f32" | "native"; invalid_argument
const char* to_string(WeightMode m);

struct NativeWeights {
  std::shared_ptr<const io::Checkpoint> checkpoint;         // the mapped files (owner of the bytes)
  std::unordered_map<std::string, CompactMatrix> matrices;  // checkpoint name -> matrix

  const CompactMatrix* find(const std::string& name) const;
  const CompactMatrix& at(const std::string& name) const;  // throws std::out_of_range
  uint64_t bytes() const;                                  // all matrices, scales included
  uint64_t bytes_read() const;  // sum of the matrices' read counters (CompactMatrix::reads)
  void reset_reads() const;     // and f32_bytes_read()

  // The float32 copy of a matrix the model multiplies whole in float32 with Eigen: the router's
  // gate (eq. 15), the absorbed form's kv_b_proj (W^{UK}, W^{UV} folded into the query and the
  // output) and MTP's eh_proj (eq. 21). It is made from the stored bytes on first use (that pass
  // counts in the matrix's reads) and kept, so that a decoded token reads it instead of
  // dequantizing the whole matrix again: before, every token decoded each layer's kv_b_proj and
  // wrote and re-read it in float32, four times the stored bytes' traffic plus the decoding.
  // The copies cost 4 bytes per element of those matrices only (V3-671B: the 61 kv_b_proj
  // [32768, 512] 4.1 GB, the 58 gates [256, 7168] 0.43 GB, against 689 GB of shards). Each call
  // counts the copy's bytes in f32_bytes_read(): what a product reading it reads.
  const Mat& f32(const std::string& name) const;  // throws std::out_of_range
  // Whether f32() keeps its copies (the default) or dequantizes the matrix again on every call,
  // as before (kept so that bench_weights times both in one run). Process-wide.
  static void set_keep_f32_copies(bool keep);
  uint64_t f32_bytes_read() const { return f32_reads.load(std::memory_order_relaxed); }
  uint64_t f32_bytes() const;  // the copies made so far

 private:
  mutable std::mutex f32_mutex;
  mutable std::unordered_map<std::string, std::unique_ptr<const Mat>> f32_copies;
  mutable std::atomic<uint64_t> f32_reads{0};
};

// Opens `dir` (model.safetensors or a sharded index) for config c. Returns the float32 vectors
// (norms, correction biases; every matrix of the ModelWeights left empty) and the matrices as
// views. FP8 E4M3 tensors need their weight_scale_inv; FP8 E5M2 and the fused expert layout of
// transformers v5 are refused with a message that names the tensor. Throws io::FormatError.
std::pair<ModelWeights, std::shared_ptr<const NativeWeights>> load_native(const Config& c,
                                                                          const std::string& dir);

// Every matrix of config c in checkpoint naming with its shape [rows, cols] (mtp_depth MTP
// modules at layer index num_hidden_layers + k), and the names alone.
struct MatrixShape {
  std::string name;
  int64_t rows, cols;
};
std::vector<MatrixShape> matrix_shapes(const Config& c, int64_t mtp_depth);
std::vector<std::string> matrix_names(const Config& c, int64_t mtp_depth);

}  // namespace dsv3::model

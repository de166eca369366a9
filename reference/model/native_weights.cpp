#include "reference/model/native_weights.h"

#include <fmt/format.h>

#include <stdexcept>

#include "reference/io/safetensors.h"

namespace dsv3::model {

WeightMode parse_weight_mode(const std::string& s) {
  if (s == "f32") return WeightMode::kF32;
  if (s == "native") return WeightMode::kNative;
  throw std::invalid_argument(
      fmt::format("unknown weight mode '{}': use f32 (float32, the default) or native (as the "
                  "checkpoint stores them)",
                  s));
}

const char* to_string(WeightMode m) {
  return m == WeightMode::kNative ? "native" : "f32";
}

const CompactMatrix* NativeWeights::find(const std::string& name) const {
  auto it = matrices.find(name);
  return it == matrices.end() ? nullptr : &it->second;
}

const CompactMatrix& NativeWeights::at(const std::string& name) const {
  const CompactMatrix* m = find(name);
  if (!m) throw std::out_of_range(fmt::format("native weights have no matrix '{}'", name));
  return *m;
}

uint64_t NativeWeights::bytes() const {
  uint64_t n = 0;
  for (const auto& [name, m] : matrices) n += m.nbytes();
  return n;
}

uint64_t NativeWeights::bytes_read() const {
  uint64_t n = 0;
  for (const auto& [name, m] : matrices) n += m.bytes_read();
  return n;
}

void NativeWeights::reset_reads() const {
  for (const auto& [name, m] : matrices) m.reads->store(0);
  f32_reads.store(0);
}

namespace {
std::atomic<bool> g_keep_f32_copies{true};
}  // namespace

void NativeWeights::set_keep_f32_copies(bool keep) {
  g_keep_f32_copies = keep;
}

const Mat& NativeWeights::f32(const std::string& name) const {
  const CompactMatrix& m = at(name);
  std::lock_guard<std::mutex> lock(f32_mutex);
  auto& copy = f32_copies[name];
  if (!copy || !g_keep_f32_copies) {
    copy = std::make_unique<const Mat>(m.to_f32());  // one counted pass over the stored bytes
    return *copy;
  }
  f32_reads.fetch_add(static_cast<uint64_t>(copy->size()) * 4, std::memory_order_relaxed);
  return *copy;
}

uint64_t NativeWeights::f32_bytes() const {
  std::lock_guard<std::mutex> lock(f32_mutex);
  uint64_t n = 0;
  for (const auto& [name, m] : f32_copies) n += static_cast<uint64_t>(m->size()) * 4;
  return n;
}

namespace {

// The matrices of one block, as alloc_layer and visit_layer lay them out (the test
// NativeWeights.MatrixNamesMatchTheLayout holds the three together).
void layer_shapes(const Config& c, const std::string& p, bool moe, std::vector<MatrixShape>& out) {
  const int64_t d = c.hidden_size, h = c.num_attention_heads;
  const std::string s = p + "self_attn.";
  if (c.q_lora_rank > 0) {
    out.push_back({s + "q_a_proj.weight", c.q_lora_rank, d});
    out.push_back({s + "q_b_proj.weight", h * c.qk_head_dim(), c.q_lora_rank});
  } else {
    out.push_back({s + "q_proj.weight", h * c.qk_head_dim(), d});
  }
  out.push_back({s + "kv_a_proj_with_mqa.weight", c.kv_lora_rank + c.qk_rope_head_dim, d});
  out.push_back({s + "kv_b_proj.weight", h * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank});
  out.push_back({s + "o_proj.weight", d, h * c.v_head_dim});
  auto ffn = [&](const std::string& f, int64_t inter) {
    out.push_back({f + "gate_proj.weight", inter, d});
    out.push_back({f + "up_proj.weight", inter, d});
    out.push_back({f + "down_proj.weight", d, inter});
  };
  if (moe) {
    out.push_back({p + "mlp.gate.weight", c.n_routed_experts, d});
    for (int64_t e = 0; e < c.n_routed_experts; ++e)
      ffn(fmt::format("{}mlp.experts.{}.", p, e), c.moe_intermediate_size);
    if (c.n_shared_experts > 0)
      ffn(p + "mlp.shared_experts.", c.moe_intermediate_size * c.n_shared_experts);
  } else {
    ffn(p + "mlp.", c.intermediate_size);
  }
}

}  // namespace

std::vector<MatrixShape> matrix_shapes(const Config& c, int64_t mtp_depth) {
  std::vector<MatrixShape> out;
  out.push_back({"model.embed_tokens.weight", c.vocab_size, c.hidden_size});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    layer_shapes(c, fmt::format("model.layers.{}.", l), c.is_moe_layer(l), out);
  out.push_back({"lm_head.weight", c.vocab_size, c.hidden_size});
  for (int64_t k = 0; k < mtp_depth; ++k) {
    const std::string p = fmt::format("model.layers.{}.", c.num_hidden_layers + k);
    out.push_back({p + "eh_proj.weight", c.hidden_size, 2 * c.hidden_size});
    layer_shapes(c, p, c.n_routed_experts > 0, out);
  }
  return out;
}

namespace {

// The float32 vectors of a layer (norms, correction bias); every matrix stays empty.
void vector_skeleton(const Config& c, LayerWeights& w, bool moe) {
  w.input_layernorm = Vec::Ones(c.hidden_size);
  w.post_attention_layernorm = Vec::Ones(c.hidden_size);
  if (c.q_lora_rank > 0) w.attn.q_a_layernorm = Vec::Ones(c.q_lora_rank);
  w.attn.kv_a_layernorm = Vec::Ones(c.kv_lora_rank);
  if (moe) {
    MoeWeights m;
    if (c.has_correction_bias()) m.e_score_correction_bias = Vec::Zero(c.n_routed_experts);
    m.experts.resize(c.n_routed_experts);
    if (c.n_shared_experts > 0) m.shared.emplace();
    w.moe = std::move(m);
  } else {
    w.dense.emplace();
  }
}

// One matrix as a view into the mapped file, its dtype and shape checked.
CompactMatrix view_matrix(const io::Checkpoint& ckpt, const MatrixShape& s) {
  const io::TensorView& t = ckpt.get(s.name);
  if (t.shape != std::vector<int64_t>{s.rows, s.cols})
    throw io::FormatError(
        fmt::format("{}: tensor '{}' has the wrong shape, the config needs [{}, {}]", t.file,
                    s.name, s.rows, s.cols));
  CompactMatrix m;
  m.rows = s.rows;
  m.cols = s.cols;
  m.data = t.data;
  switch (t.dtype) {
    case io::DType::kF32:
      m.format = WeightFormat::kF32;
      break;
    case io::DType::kBF16:
      m.format = WeightFormat::kBF16;
      break;
    case io::DType::kF16:
      m.format = WeightFormat::kF16;
      break;
    case io::DType::kF8E4M3:
      m.format = WeightFormat::kFP8;
      break;
    default:
      throw io::FormatError(fmt::format(
          "{}: tensor '{}' is {}; --weights native reads F32, BF16, F16 and F8_E4M3 (use "
          "--weights f32)",
          t.file, s.name, io::to_string(t.dtype)));
  }
  const std::string base = s.name.substr(0, s.name.size() - std::string(".weight").size());
  const io::TensorView* scale = ckpt.find(base + ".weight_scale_inv");
  if (m.format == WeightFormat::kFP8) {
    if (!scale)
      throw io::FormatError(
          fmt::format("{}: FP8 tensor '{}' has no '{}.weight_scale_inv'", t.file, s.name, base));
    const std::vector<int64_t> want{(s.rows + 127) / 128, (s.cols + 127) / 128};
    if (scale->shape != want || scale->dtype != io::DType::kF32)
      throw io::FormatError(fmt::format("{}: '{}' must be F32 [{}, {}] for {} in 128x128 blocks",
                                        scale->file, scale->name, want[0], want[1], s.name));
    m.scale_inv = io::to_f32(*scale);
  } else if (scale) {
    throw io::FormatError(fmt::format("{}: '{}' has a weight_scale_inv but dtype {}", t.file,
                                      s.name, io::to_string(t.dtype)));
  }
  return m;
}

}  // namespace

std::vector<std::string> matrix_names(const Config& c, int64_t mtp_depth) {
  std::vector<std::string> names;
  for (const MatrixShape& s : matrix_shapes(c, mtp_depth)) names.push_back(s.name);
  return names;
}

std::pair<ModelWeights, std::shared_ptr<const NativeWeights>> load_native(const Config& c,
                                                                          const std::string& dir) {
  auto ckpt = std::make_shared<const io::Checkpoint>(dir);
  int64_t depth = 0;  // MTP modules present (layer index num_hidden_layers + k)
  while (depth < c.num_nextn_predict_layers &&
         ckpt->find(fmt::format("model.layers.{}.eh_proj.weight", c.num_hidden_layers + depth)))
    ++depth;

  auto native = std::make_shared<NativeWeights>();
  native->checkpoint = ckpt;
  std::vector<std::string> missing;
  for (const MatrixShape& s : matrix_shapes(c, depth)) {
    if (!ckpt->find(s.name)) {
      missing.push_back(s.name);
      continue;
    }
    CompactMatrix m = view_matrix(*ckpt, s);
    m.owner = ckpt;
    native->matrices.emplace(s.name, std::move(m));
  }

  ModelWeights w;
  w.norm = Vec::Ones(c.hidden_size);
  w.layers.resize(c.num_hidden_layers);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    vector_skeleton(c, w.layers[l], c.is_moe_layer(l));
  w.mtp.resize(depth);
  for (MtpWeights& m : w.mtp) {
    m.enorm = Vec::Ones(c.hidden_size);
    m.hnorm = Vec::Ones(c.hidden_size);
    m.shared_head_norm = Vec::Ones(c.hidden_size);
    vector_skeleton(c, m.block, c.n_routed_experts > 0);
  }
  // visit_layer takes the plain q_proj branch when q_proj is non-empty: a 1x1 marker while the
  // vectors are read (the matrix callback below ignores it).
  auto mark = [&](bool on) {
    if (c.q_lora_rank > 0) return;
    for (LayerWeights& l : w.layers) l.attn.q_proj = on ? Mat::Zero(1, 1) : Mat();
    for (MtpWeights& m : w.mtp) m.block.attn.q_proj = on ? Mat::Zero(1, 1) : Mat();
  };
  mark(true);
  struct Reader {
    const io::Checkpoint& ckpt;
    std::vector<std::string>& missing;
    void operator()(const std::string&, Mat&) const {}
    void operator()(const std::string& name, Vec& x) const {
      if (!ckpt.find(name)) {
        missing.push_back(name);
        return;
      }
      x = ckpt.vector(name, x.size());
    }
  };
  visit_model(c, w, Reader{*ckpt, missing});
  mark(false);
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 8; ++i) list += (i ? ", " : "") + missing[i];
    if (missing.size() > 8) list += fmt::format(", ... ({} in all)", missing.size());
    if (ckpt->find(
            fmt::format("model.layers.{}.mlp.experts.gate_up_proj", c.first_k_dense_replace)))
      list += " (fused transformers-v5 experts: use --weights f32)";
    throw io::FormatError(fmt::format("{}: missing tensors: {}", dir, list));
  }
  return {std::move(w), std::move(native)};
}

}  // namespace dsv3::model

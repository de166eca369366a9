#include "reference/model/weights.h"

#include <fmt/format.h>

#include <cmath>
#include <functional>
#include <map>
#include <string>

#include "reference/io/safetensors.h"
#include "reference/model/memory.h"
#include "reference/model/normal.h"

namespace dsv3::model {

namespace {

// One visitor from a matrix lambda and a vector lambda.
template <class... F>
struct Overload : F... {
  using F::operator()...;
};
template <class... F>
Overload(F...) -> Overload<F...>;

// A tensor's seed is splitmix64(seed ^ name_hash(name)): from the model seed and the tensor
// name, so the weights do not depend on visiting order.
uint64_t name_hash(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

// transformers v5 saves the routed experts of a layer fused: "mlp.experts.gate_up_proj"
// [E, 2*inter, d] (gate rows, then up rows) and "mlp.experts.down_proj" [E, d, inter].
// Reads expert e's slice for a per-expert checkpoint name; false when there is none.
bool read_fused_expert(const io::Checkpoint& ckpt, const std::string& name, Mat& m,
                       std::map<std::string, std::vector<float>>& decoded) {
  const std::string key = "mlp.experts.";
  size_t at = name.find(key);
  if (at == std::string::npos) return false;
  size_t dot = name.find('.', at + key.size());
  if (dot == std::string::npos) return false;
  const int64_t e = std::stoll(name.substr(at + key.size(), dot - at - key.size()));
  const std::string part =
      name.substr(dot + 1);  // gate_proj.weight | up_proj.weight | down_proj.weight
  const std::string base = name.substr(0, at + key.size());
  const bool down = part == "down_proj.weight";
  const io::TensorView* t = ckpt.find(base + (down ? "down_proj" : "gate_up_proj"));
  if (!t) return false;
  const int64_t rows = m.rows(), cols = m.cols();
  const std::vector<int64_t> want =
      down ? std::vector<int64_t>{t->shape.empty() ? 0 : t->shape[0], rows, cols}
           : std::vector<int64_t>{t->shape.empty() ? 0 : t->shape[0], 2 * rows, cols};
  if (t->shape != want || e >= t->shape[0])
    throw io::FormatError(fmt::format(
        "{}: fused expert tensor '{}' has the wrong shape for expert {}", t->file, t->name, e));
  std::vector<float>& all = decoded[t->name];  // decode each fused tensor once
  if (all.empty()) all = io::to_f32(*t);
  const int64_t per_expert = want[1] * want[2];
  const int64_t row0 = part == "up_proj.weight" ? rows : 0;
  m = Eigen::Map<Mat>(all.data() + e * per_expert + row0 * cols, rows, cols);
  return true;
}

}  // namespace

ModelWeights random_weights(const Config& c, uint64_t seed) {
  check_weights_fit(c, c.num_nextn_predict_layers);  // refuse before allocating (memory.h)
  ModelWeights w;
  alloc_model(c, w, c.num_nextn_predict_layers, /*zero=*/false);  // every matrix drawn below
  std::vector<NormalFill> fills;  // drawn in one parallel loop (normal.h)
  std::vector<Vec*> norms;
  auto mat = [&](const std::string& name, Mat& m) {
    // Embedding rows N(0, 1); projections N(0, 1/in) so activations keep their scale.
    float stddev = name.find("embed_tokens") != std::string::npos
                       ? 1.0f
                       : 1.0f / std::sqrt(static_cast<float>(m.cols()));
    fills.push_back({m.data(), m.size(), splitmix64(seed ^ name_hash(name)), stddev});
  };
  auto vec = [&](const std::string& name, Vec& x) {
    const uint64_t s = splitmix64(seed ^ name_hash(name));
    if (name.find("e_score_correction_bias") != std::string::npos) {
      // Small biases, as a trained model's would be relative to sigmoid scores.
      fills.push_back({x.data(), x.size(), s, 0.02f});
    } else {
      // Norm weights near 1: 1 + N(0, 0.1^2).
      fills.push_back({x.data(), x.size(), s, 0.1f});
      norms.push_back(&x);
    }
  };
  visit_model(c, w, Overload{mat, vec});
  fill_normal(fills);
  for (Vec* x : norms) x->array() += 1.0f;
  return w;
}

ModelWeights init_weights(const Config& c, uint64_t seed, double stddev) {
  ModelWeights w;
  // Norms 1, biases 0; every matrix is drawn below.
  alloc_model(c, w, c.num_nextn_predict_layers, /*zero=*/false);
  std::vector<NormalFill> fills;
  visit_model(c, w,
              Overload{[&](const std::string& name, Mat& m) {
                         fills.push_back({m.data(), m.size(), splitmix64(seed ^ name_hash(name)),
                                          static_cast<float>(stddev)});
                       },
                       [](const std::string&, Vec&) {}});
  fill_normal(fills);
  return w;
}

ModelWeights load_weights(const Config& c, const std::string& dir) {
  io::Checkpoint ckpt(dir);
  // The MTP modules are loaded when the checkpoint has them (layer index num_hidden_layers + k).
  int64_t depth = 0;
  while (depth < c.num_nextn_predict_layers &&
         ckpt.find(fmt::format("model.layers.{}.eh_proj.weight", c.num_hidden_layers + depth)))
    ++depth;
  check_weights_fit(c, depth);  // refuse before allocating (memory.h)
  ModelWeights w;
  alloc_model(c, w, depth);
  std::vector<std::string> missing;
  std::map<std::string, std::vector<float>> fused;
  auto mat = [&](const std::string& name, Mat& m) {
    if (ckpt.find(name)) {
      m = ckpt.matrix(name, {m.rows(), m.cols()});
    } else if (!read_fused_expert(ckpt, name, m, fused)) {
      missing.push_back(name);
    }
  };
  auto vec = [&](const std::string& name, Vec& x) {
    if (!ckpt.find(name)) {
      missing.push_back(name);
      return;
    }
    x = ckpt.vector(name, x.size());
  };
  visit_model(c, w, Overload{mat, vec});
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 8; ++i) list += (i ? ", " : "") + missing[i];
    if (missing.size() > 8) list += fmt::format(", ... ({} in all)", missing.size());
    throw io::FormatError(fmt::format("{}: missing tensors: {}", dir, list));
  }
  return w;
}

void save_weights(const Config& c, const ModelWeights& w, const std::string& path) {
  io::SafetensorsWriter out;
  visit_model(c, w, [&](const std::string& name, const auto& t) { out.add(name, t); });
  out.set_metadata("format", "pt");
  out.write(path);
}

}  // namespace dsv3::model

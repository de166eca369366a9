#include "reference/model/evaluate.h"

#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <numbers>
#include <stdexcept>

namespace dsv3::model {

int64_t TokenizedText::tokens() const {
  int64_t n = 0;
  for (const auto& d : docs) n += static_cast<int64_t>(d.size());
  return n;
}

TokenizedText tokenize_documents(const io::Tokenizer& tok, std::span<const std::string_view> docs,
                                 int64_t max_tokens) {
  TokenizedText out;
  int64_t left = max_tokens > 0 ? max_tokens : INT64_MAX;
  for (std::string_view text : docs) {
    if (left <= 0) {
      out.truncated = true;
      break;
    }
    std::vector<int32_t> ids = tok.encode(text, /*add_bos=*/true);
    ids.push_back(tok.eos());  // BOS + tokens + EOS, as training sequences are laid out
    if (static_cast<int64_t>(ids.size()) > left) {
      ids.resize(left);
      out.truncated = true;
      out.bytes += static_cast<int64_t>(tok.decode(ids).size());
    } else {
      out.bytes += static_cast<int64_t>(text.size());
    }
    for (int32_t id : ids) out.text_tokens += id != tok.bos() && id != tok.eos();
    left -= static_cast<int64_t>(ids.size());
    out.docs.push_back(std::move(ids));
  }
  return out;
}

std::vector<Chunk> make_chunks(const TokenizedText& text, int64_t context) {
  std::vector<Chunk> chunks;
  for (size_t d = 0; d < text.docs.size(); ++d) {
    const int64_t n = static_cast<int64_t>(text.docs[d].size());
    for (int64_t b = 0; b < n; b += context) chunks.push_back({d, b, std::min(n, b + context)});
  }
  return chunks;
}

double LossResult::loss() const {
  return predicted > 0 ? nats / static_cast<double>(predicted) : 0.0;
}
double LossResult::perplexity() const {
  return std::exp(loss());
}
double LossResult::bits_per_byte() const {
  return bytes > 0 ? nats / std::numbers::ln2 / static_cast<double>(bytes) : 0.0;
}
double LossResult::bytes_per_token() const {
  return text_tokens > 0 ? static_cast<double>(bytes) / static_cast<double>(text_tokens) : 0.0;
}

double next_token_nats(const Mat& logits, std::span<const int32_t> ids) {
  double nats = 0;
  for (Eigen::Index t = 0; t + 1 < logits.rows(); ++t) {
    // -ln p(x_{t+1}) = logsumexp(z_t) - z_t[x_{t+1}], with the maximum taken out for range.
    const auto row = logits.row(t);
    const double mx = row.maxCoeff();
    double sum = 0;
    for (Eigen::Index v = 0; v < row.size(); ++v) sum += std::exp(row[v] - mx);
    nats += mx + std::log(sum) - row[ids[t + 1]];
  }
  return nats;
}

namespace {

void check_text(const Model& m, const TokenizedText& text, int64_t context, int64_t min_context) {
  const Config& c = m.config();
  if (context < min_context)
    throw std::invalid_argument(fmt::format("the context must be at least {} tokens", min_context));
  if (context > c.max_position_embeddings)
    throw std::invalid_argument(
        fmt::format("the context {} exceeds the model's max_position_embeddings {}", context,
                    c.max_position_embeddings));
  for (const auto& d : text.docs)
    for (int32_t id : d)
      if (id < 0 || id >= c.vocab_size)
        throw std::invalid_argument(
            fmt::format("the tokenizer produced id {}, outside the model's vocabulary [0, {})", id,
                        c.vocab_size));
}

// Runs fn(chunk index, ids) for every chunk, in parallel over chunks when there are several.
// Inside the parallel loop the model's own OpenMP regions and Eigen run single-threaded, so a
// chunk computes the same numbers whatever the thread count.
template <typename Fn>
void for_each_chunk(const TokenizedText& text, const std::vector<Chunk>& chunks,
                    const Progress& progress, Fn&& fn) {
  const int64_t n = static_cast<int64_t>(chunks.size());
  int64_t done = 0;
  std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 1) if (n > 1)
  for (int64_t i = 0; i < n; ++i) {
    try {
      const Chunk& ch = chunks[i];
      std::span<const int32_t> ids(text.docs[ch.doc].data() + ch.begin, ch.end - ch.begin);
      fn(i, ids);
    } catch (...) {
#pragma omp critical(dsv3_eval_error)
      if (!error) error = std::current_exception();
    }
#pragma omp critical(dsv3_eval_progress)
    {
      ++done;
      if (progress) progress(done, n);
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace

LossResult evaluate_loss(const Model& m, const TokenizedText& text, int64_t context,
                         const Progress& progress) {
  check_text(m, text, context, 2);
  const std::vector<Chunk> chunks = make_chunks(text, context);
  std::vector<double> nats(chunks.size(), 0.0);
  for_each_chunk(text, chunks, progress, [&](int64_t i, std::span<const int32_t> ids) {
    if (ids.size() < 2) return;  // a lone id predicts nothing
    KVCache cache = m.new_cache(AttnImpl::kAbsorbed);
    nats[i] = next_token_nats(m.forward(ids, cache), ids);
  });
  LossResult r;
  for (double x : nats) r.nats += x;  // chunk order: independent of the thread count
  for (const Chunk& ch : chunks) r.predicted += ch.end - ch.begin - 1;
  r.tokens = text.tokens();
  r.text_tokens = text.text_tokens;
  r.bytes = text.bytes;
  r.documents = static_cast<int64_t>(text.docs.size());
  r.chunks = static_cast<int64_t>(chunks.size());
  return r;
}

ExpertLoad::ExpertLoad(const Config& c) : experts(c.n_routed_experts) {
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    if (c.is_moe_layer(l)) moe_layers.push_back(static_cast<int>(l));
  counts.assign(moe_layers.size(), std::vector<int64_t>(experts, 0));
}

void ExpertLoad::add(const Trace& trace) {
  for (const TokenTrace& t : trace.tokens) {
    for (size_t i = 0; i < moe_layers.size(); ++i)
      for (int e : t.layers[moe_layers[i]].router.topk_idx) ++counts[i][e];
    ++tokens;
  }
}

void ExpertLoad::add(const ExpertLoad& other) {
  for (size_t i = 0; i < counts.size(); ++i)
    for (int64_t e = 0; e < experts; ++e) counts[i][e] += other.counts[i][e];
  tokens += other.tokens;
  chunks += other.chunks;
}

std::vector<std::vector<double>> ExpertLoad::relative_load() const {
  std::vector<std::vector<double>> out;
  for (const auto& row : counts) {
    int64_t total = 0;
    for (int64_t c : row) total += c;
    // Fig. 9: load / balanced load, where the balanced load is the mean total / N_r.
    std::vector<double> rel(row.size(), 0.0);
    if (total > 0)
      for (size_t e = 0; e < row.size(); ++e)
        rel[e] =
            static_cast<double>(row[e]) * static_cast<double>(experts) / static_cast<double>(total);
    out.push_back(std::move(rel));
  }
  return out;
}

ExpertLoad expert_load(const Model& m, const TokenizedText& text, int64_t context,
                       const Progress& progress) {
  check_text(m, text, context, 1);
  ExpertLoad total(m.config());
  if (total.moe_layers.empty())
    throw std::invalid_argument(
        fmt::format("model {} has no MoE layer (no routed experts)", m.config().name));
  const std::vector<Chunk> chunks = make_chunks(text, context);
  std::vector<ExpertLoad> per_thread(std::max(1, omp_get_max_threads()), total);
  for_each_chunk(text, chunks, progress, [&](int64_t, std::span<const int32_t> ids) {
    Trace trace;
    trace.top_k = 0;  // routing only
    ForwardOptions opt;
    opt.trace = &trace;
    KVCache cache = m.new_cache(AttnImpl::kAbsorbed);
    m.forward(ids, cache, opt);
    per_thread[omp_get_thread_num()].add(trace);  // integer counts: any order adds the same
  });
  for (const ExpertLoad& p : per_thread) total.add(p);
  total.chunks = static_cast<int64_t>(chunks.size());
  return total;
}

}  // namespace dsv3::model

// Measuring what a model learned on a text (issue 13, "Measuring what it learned"): the
// language-model loss and bits per byte, and how much of the text each routed expert receives
// (the relative expert load of the paper's Figure 9). Both run the text the way training data
// is laid out: every document as BOS + tokens + EOS, cut into chunks of at most `context`
// tokens, each chunk prefilled through a fresh KV cache.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "reference/io/tokenizer.h"
#include "reference/model/model.h"
#include "reference/model/tensor.h"
#include "reference/model/trace.h"

namespace dsv3::model {

// Documents as token ids, each BOS + tokens + EOS.
struct TokenizedText {
  std::vector<std::vector<int32_t>> docs;
  int64_t bytes = 0;        // UTF-8 bytes of the documents' text that the kept tokens cover
  int64_t text_tokens = 0;  // tokens other than BOS and EOS
  bool truncated = false;   // max_tokens cut the text short

  int64_t tokens() const;  // all ids, BOS and EOS included
};

// Encodes each document with `tok` (BOS + tokens + EOS). max_tokens > 0 keeps only the first
// max_tokens ids in document order; the bytes of a cut document are those its kept ids decode
// to (a prefix of its text for a byte-level tokenizer).
TokenizedText tokenize_documents(const io::Tokenizer& tok, std::span<const std::string_view> docs,
                                 int64_t max_tokens = 0);

// A run of at most `context` consecutive ids of one document: ids [begin, end) of docs[doc].
struct Chunk {
  size_t doc = 0;
  int64_t begin = 0, end = 0;
};

// Each document cut into consecutive chunks of `context` ids (the last one shorter), in order.
std::vector<Chunk> make_chunks(const TokenizedText& text, int64_t context);

// Called after each chunk with (chunks done, chunks in all), one call at a time.
using Progress = std::function<void(int64_t done, int64_t total)>;

struct LossResult {
  double nats = 0;          // sum over predicted positions of -ln p(next token)
  int64_t predicted = 0;    // positions scored: every id after the first of each chunk
  int64_t tokens = 0;       // ids run through the model (BOS and EOS included)
  int64_t text_tokens = 0;  // ids other than BOS and EOS
  int64_t bytes = 0;        // UTF-8 bytes of the text
  int64_t documents = 0;
  int64_t chunks = 0;

  double loss() const;             // nats / predicted: the mean cross-entropy in nats per token
  double perplexity() const;       // exp(loss)
  double bits_per_byte() const;    // nats / ln 2 / bytes
  double bytes_per_token() const;  // bytes / text_tokens: the tokenizer's compression
};

// Sum over t < T-1 of -ln softmax(logits[t])[ids[t+1]] for logits [T, V] of ids [T]: the
// next-token cross-entropy of one chunk (log-sum-exp in double).
double next_token_nats(const Mat& logits, std::span<const int32_t> ids);

// The loss of `m` on the text. Chunks run in parallel (OpenMP); each chunk's sum is kept and
// the sums are added in chunk order, so the result does not depend on the thread count.
// Throws std::invalid_argument when context < 2 or exceeds max_position_embeddings.
LossResult evaluate_loss(const Model& m, const TokenizedText& text, int64_t context,
                         const Progress& progress = {});

// Tokens routed to each routed expert of each MoE layer, under the model's own inference
// routing (group-limited top-K on s + b, eq. 16), over every position of every chunk.
struct ExpertLoad {
  int64_t experts = 0;                       // N_r
  std::vector<int> moe_layers;               // model layer index of each row
  std::vector<std::vector<int64_t>> counts;  // [MoE layer][expert]
  int64_t tokens = 0;                        // positions routed (each to K experts per layer)
  int64_t chunks = 0;

  explicit ExpertLoad(const Config& c);
  // Adds the routing decisions recorded in a trace.
  void add(const Trace& trace);
  void add(const ExpertLoad& other);
  // Figure 9's relative expert load: count_e / mean_e' count_e' (1 = perfectly balanced; the E
  // values of a layer sum to E). All zeros for a layer that routed nothing.
  std::vector<std::vector<double>> relative_load() const;
};

// Same chunks, same parallelism rules as evaluate_loss. Throws std::invalid_argument when
// context < 1 or exceeds max_position_embeddings, or the model has no MoE layer.
ExpertLoad expert_load(const Model& m, const TokenizedText& text, int64_t context,
                       const Progress& progress = {});

}  // namespace dsv3::model

// Accounting against the published figures (model_spec §10; DeepSeek-V3 report and README,
// DeepSeek-V2 report Table 1). Every expected number below is a published or independently
// recomputed figure; the code under test computes them from the config fields.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "reference/accounting/accounting.h"
#include "reference/model/config.h"
#include "reference/model/weights.h"

namespace dsv3::accounting {
namespace {

using model::Config;

Config v3() {
  return model::resolve_config("v3-671b");
}
Config v2() {
  return model::resolve_config("v2-236b");
}
Config v2_lite() {
  return model::resolve_config("v2-lite-16b");
}
Config official(const std::string& file) {
  return model::load_config_file(model::tiny_configs_dir() + "/official/" + file);
}

TEST(Accounting, V3TotalAndActivated) {
  ParamCount pc = count_params(v3());
  EXPECT_EQ(pc.total, 671'026'419'200);
  EXPECT_EQ(pc.activated, 37'552'297'472);
  EXPECT_EQ(pc.activated_without_embedding, 36'625'618'432);
  EXPECT_EQ(pc.dense_layers, 3);
  EXPECT_EQ(pc.moe_layers, 58);
}

TEST(Accounting, V3PerLayerPieces) {
  LayerParams lp = layer_params(v3());
  EXPECT_EQ(lp.attention.q_a_proj, 11'010'048);
  EXPECT_EQ(lp.attention.q_a_layernorm, 1'536);
  EXPECT_EQ(lp.attention.q_b_proj, 37'748'736);
  EXPECT_EQ(lp.attention.q_proj, 0);
  EXPECT_EQ(lp.attention.kv_a_proj_with_mqa, 4'128'768);
  EXPECT_EQ(lp.attention.kv_a_layernorm, 512);
  EXPECT_EQ(lp.attention.kv_b_proj, 16'777'216);
  EXPECT_EQ(lp.attention.o_proj, 117'440'512);
  EXPECT_EQ(lp.attention.total(), 187'107'328);
  EXPECT_EQ(lp.block_norms, 14'336);
  EXPECT_EQ(lp.dense_ffn, 396'361'728);
  EXPECT_EQ(lp.one_expert, 44'040'192);
  EXPECT_EQ(lp.dense_layer(), 583'483'392);
  EXPECT_EQ(lp.moe_layer(), 11'507'286'272);
  EXPECT_EQ(lp.moe_layer() - lp.attention.total() - lp.block_norms, 11'320'164'608);
  EXPECT_EQ(lp.moe_layer_activated() - lp.attention.total() - lp.block_norms, 398'196'992);
}

TEST(Accounting, V3BreakdownSumsAndNames) {
  ParamCount pc = count_params(v3());
  int64_t total = 0, activated = 0;
  for (const Component& c : pc.components) {
    total += c.total;
    activated += c.activated;
    EXPECT_LE(c.activated, c.total) << c.name;
  }
  EXPECT_EQ(total, pc.total);
  EXPECT_EQ(activated, pc.activated);
  ASSERT_NE(pc.find("embedding"), nullptr);
  EXPECT_EQ(pc.find("embedding")->total, 926'679'040);
  EXPECT_EQ(pc.find("head")->total, 926'679'040);
  EXPECT_EQ(pc.find("final_norm")->total, 7'168);
  EXPECT_EQ(pc.find("attention.o_proj")->total, 61 * 117'440'512LL);
  EXPECT_EQ(pc.find("router")->total, 58 * (256 * 7168LL + 256));
  EXPECT_EQ(pc.find("shared_experts")->total, 58 * 44'040'192LL);
  EXPECT_EQ(pc.find("routed_experts")->total, 58 * 256 * 44'040'192LL);
  EXPECT_EQ(pc.find("routed_experts")->activated, 58 * 8 * 44'040'192LL);
  EXPECT_EQ(pc.find("dense_ffn")->total, 3 * 396'361'728LL);
  EXPECT_EQ(pc.find("attention.q_proj"), nullptr);  // V3 compresses the query
  EXPECT_EQ(pc.find("no-such-part"), nullptr);
}

TEST(Accounting, V3Mtp) {
  MtpParams m = count_mtp_params(v3());
  EXPECT_EQ(m.depth, 1);
  EXPECT_EQ(m.block, 11'507'286'272);
  EXPECT_EQ(m.eh_proj, 102'760'448);
  EXPECT_EQ(m.unique, 11'610'068'224);
  EXPECT_EQ(m.stored, 13'463'426'304);
  EXPECT_EQ(m.activated, 688'100'608);
  // "685B" on the hub: main model plus the stored MTP module, scales excluded.
  EXPECT_EQ(count_params(v3()).total + m.stored, 684'489'845'504);
}

TEST(Accounting, MtpDepthScalesAndZeroDepthIsEmpty) {
  Config c = v3();
  c.num_nextn_predict_layers = 2;
  MtpParams m = count_mtp_params(c);
  EXPECT_EQ(m.unique, 2 * 11'610'068'224LL);
  EXPECT_EQ(m.stored, 2 * 13'463'426'304LL);
  MtpParams none = count_mtp_params(v2());
  EXPECT_EQ(none.depth, 0);
  EXPECT_EQ(none.unique, 0);
  EXPECT_EQ(none.stored, 0);
}

TEST(Accounting, V2Totals) {
  ParamCount pc = count_params(v2());
  EXPECT_EQ(pc.total, 235'741'434'880);
  EXPECT_EQ(pc.activated, 21'375'800'320);
  EXPECT_EQ(pc.activated_without_embedding, 21'375'800'320 - 102'400 * 5'120LL);
  // softmax routing, no correction bias
  EXPECT_EQ(layer_params(v2()).router_bias, 0);
}

TEST(Accounting, V2LiteTotals) {
  ParamCount pc = count_params(v2_lite());
  EXPECT_EQ(pc.total, 15'706'484'224);
  EXPECT_EQ(pc.activated_without_embedding, 2'451'435'008);
  LayerParams lp = layer_params(v2_lite());
  EXPECT_EQ(lp.attention.q_a_proj, 0);
  EXPECT_EQ(lp.attention.q_b_proj, 0);
  EXPECT_EQ(lp.attention.q_proj, 16 * 192 * 2048LL);  // plain q_proj (q_lora_rank null)
  ASSERT_NE(pc.find("attention.q_proj"), nullptr);
  EXPECT_EQ(pc.find("attention.q_a_proj"), nullptr);
}

TEST(Accounting, OfficialConfigsAgreeWithHubConfigs) {
  EXPECT_EQ(count_params(official("config_671B.json")).total, 671'026'419'200);
  EXPECT_EQ(count_params(official("config_671B.json")).activated, 37'552'297'472);
  EXPECT_EQ(count_params(official("config_236B.json")).total, 235'741'434'880);
  EXPECT_EQ(count_params(official("config_236B.json")).activated, 21'375'800'320);
  EXPECT_EQ(count_params(official("config_16B.json")).total, 15'706'484'224);
  // The official inference code drops the MTP layer.
  EXPECT_EQ(count_mtp_params(official("config_671B.json")).unique, 0);
}

TEST(Accounting, CountsFollowTheConfigNotConstants) {
  Config c = v3();
  c.num_hidden_layers = 62;  // one more MoE layer
  EXPECT_EQ(count_params(c).total, 671'026'419'200 + 11'507'286'272);
  c = v3();
  c.num_experts_per_tok = 9;
  EXPECT_EQ(count_params(c).activated, 37'552'297'472 + 58 * 44'040'192LL);
  c = v3();
  c.vocab_size += 1;
  EXPECT_EQ(count_params(c).total, 671'026'419'200 + 2 * 7168);
  c = v3();
  c.q_lora_rank = 0;  // plain q_proj instead of q_a_proj/q_a_layernorm/q_b_proj
  EXPECT_EQ(count_params(c).total,
            671'026'419'200 + 61 * (128 * 192 * 7168LL - 11'010'048 - 1'536 - 37'748'736));
}

TEST(Accounting, TinyConfigsAreConsistent) {
  for (const char* name : {"tiny-random", "small"}) {
    Config c = model::resolve_config(name);
    ParamCount pc = count_params(c);
    EXPECT_GT(pc.total, 0) << name;
    EXPECT_LT(pc.activated, pc.total) << name;
    // Census of a BF16 checkpoint holds exactly the parameters (plus MTP, stored).
    Census s = checkpoint_census(c, /*include_mtp=*/false);
    EXPECT_EQ(s.f8.elements + s.bf16.elements + s.f32.elements, pc.total) << name;
    Census with_mtp = checkpoint_census(c, true);
    EXPECT_EQ(with_mtp.bf16.elements + with_mtp.f32.elements, pc.total + count_mtp_params(c).stored)
        << name;
  }
  // The small benchmark config is meant to have 100-300M parameters.
  int64_t small = count_params(model::resolve_config("small")).total;
  EXPECT_GE(small, 100'000'000);
  EXPECT_LE(small, 300'000'000);
}

TEST(KvCache, V3PerTokenMatchesReport) {
  KvCache k = kv_cache(v3(), 0);
  EXPECT_EQ(k.layers, 61);
  EXPECT_EQ(k.per_layer.mla, 576);
  EXPECT_EQ(k.per_layer.mla_naive, 40'960);
  EXPECT_EQ(k.per_layer.mha, 32'768);
  EXPECT_EQ(k.per_layer.gqa, 256 * 8);
  EXPECT_EQ(k.per_layer.mqa, 256);
  EXPECT_EQ(k.per_token_bytes.mla, 70'272);  // "about 70 KB per token"
  EXPECT_EQ(k.per_token_bytes.mla_naive, 4'997'120);
  EXPECT_EQ(k.per_token_bytes.mha, 3'997'696);
  EXPECT_EQ(k.per_token_bytes.mqa, 31'232);
  EXPECT_EQ(k.at_context_bytes.mla, 0);
}

TEST(KvCache, ContextTotalsAndDtypes) {
  KvCache k = kv_cache(v3(), 131'072);
  EXPECT_EQ(k.at_context_bytes.mla, 70'272LL * 131'072);  // 8.58 GiB
  EXPECT_NEAR(static_cast<double>(k.at_context_bytes.mla) / (1 << 30), 8.578, 0.001);
  EXPECT_NEAR(static_cast<double>(k.at_context_bytes.mla_naive) / (1 << 30), 610.0, 0.1);
  EXPECT_NEAR(static_cast<double>(k.at_context_bytes.mha) / (1 << 30), 488.0, 0.1);
  KvCache k4 = kv_cache(v3(), 4096);
  EXPECT_NEAR(static_cast<double>(k4.at_context_bytes.mla) / (1 << 30), 0.268, 0.001);
  EXPECT_NEAR(static_cast<double>(k4.at_context_bytes.mla_naive) / (1 << 30), 19.06, 0.01);
  KvCache full = kv_cache(v3(), 163'840);
  EXPECT_NEAR(static_cast<double>(full.at_context_bytes.mla) / (1 << 30), 10.72, 0.01);
  // FP8 cache halves it, F32 doubles it; GQA scales with its groups.
  EXPECT_EQ(kv_cache(v3(), 1, 1).per_token_bytes.mla, 35'136);
  EXPECT_EQ(kv_cache(v3(), 1, 4).per_token_bytes.mla, 140'544);
  EXPECT_EQ(kv_cache(v3(), 1, 2, 16).per_token_bytes.gqa, 15'616 * 16 * 2);
  // MLA equals GQA with 2.25 groups (DeepSeek-V2 report, Table 1).
  EXPECT_EQ(4 * k.per_layer.mla, 9 * k.per_layer.mqa);  // 576 = 2.25 x 256
}

TEST(KvCache, RejectsBadArguments) {
  EXPECT_THROW(kv_cache(v3(), -1), std::invalid_argument);
  EXPECT_THROW(kv_cache(v3(), 1, 0), std::invalid_argument);
  EXPECT_THROW(kv_cache(v3(), 1, 2, -1), std::invalid_argument);
  EXPECT_THROW(kv_cache(v3(), 1, 2, 129), std::invalid_argument);
  EXPECT_THROW(kv_elements_per_layer(v3(), 129), std::invalid_argument);
}

TEST(KvCache, OneDefinitionOfTheBaselines) {
  // MHA: every head caches K and V of d_h = qk_nope_head_dim; naive MLA: the decompressed K
  // (nope + rope) and V of every head. For V3 they differ by the 64-wide RoPE part.
  const Config c = v3();
  const KvElements e = kv_elements_per_layer(c);
  EXPECT_EQ(e.mha, 2 * c.num_attention_heads * c.qk_nope_head_dim);
  EXPECT_EQ(e.mla_naive, c.num_attention_heads * (c.qk_nope_head_dim + c.qk_rope_head_dim) +
                             c.num_attention_heads * c.v_head_dim);
  EXPECT_EQ(e.mla_naive - e.mha, 128 * 64);
  // The GQA baseline: 8 groups, never more than half the heads; 0 asks for that default.
  EXPECT_EQ(default_gqa_groups(c), 8);
  EXPECT_EQ(kv_cache(c, 1, 2, 0).gqa_groups, 8);
  const Config tiny = model::resolve_config("tiny");  // 4 heads
  EXPECT_EQ(default_gqa_groups(tiny), 2);
  EXPECT_EQ(kv_elements_per_layer(tiny).gqa, 2 * 2 * tiny.qk_nope_head_dim);
  EXPECT_EQ(kv_cache(tiny, 1).gqa_groups, 2);
  EXPECT_LT(kv_elements_per_layer(tiny).gqa, kv_elements_per_layer(tiny).mha);
}

TEST(KvCache, V2LiteAndV2) {
  // Same MLA head sizes: 576 elements per layer; V2 has 60 layers, V2-Lite 27.
  EXPECT_EQ(kv_cache(v2(), 1).per_token_bytes.mla, 576 * 60 * 2);
  EXPECT_EQ(kv_cache(v2_lite(), 1).per_token_bytes.mla, 576 * 27 * 2);
  EXPECT_EQ(kv_cache(v2_lite(), 1).per_layer.mha, 2 * 16 * 128);
}

TEST(Flops, V3LinearIsTwiceTheActivatedMatrices) {
  Config c = v3();
  Flops f = flops_per_token(c, 0);
  ParamCount pc = count_params(c);
  // Norm weights and the correction bias are element-wise, not multiply-adds.
  int64_t norms = 61 * (2 * 7168 + 1536 + 512) + 7168;
  int64_t bias = 58 * 256;
  EXPECT_EQ(f.linear, 2 * (pc.activated_without_embedding - norms - bias));
  EXPECT_EQ(f.linear, 73'249'193'984);  // ~73.3 GFLOP per token
  EXPECT_EQ(f.attention_naive, 0);
  EXPECT_EQ(f.attention_absorbed, 0);
}

TEST(Flops, AttentionGrowsLinearlyWithContext) {
  Config c = v3();
  Flops f = flops_per_token(c, 4096);
  EXPECT_EQ(f.attention_naive, 61LL * 2 * 128 * 4096 * (192 + 128));
  EXPECT_EQ(f.attention_absorbed, 61LL * 2 * 128 * 4096 * (512 + 64 + 512));
  EXPECT_EQ(flops_per_token(c, 8192).attention_naive, 2 * f.attention_naive);
  EXPECT_EQ(f.total(), f.linear + f.attention_naive);
  EXPECT_EQ(f.total_absorbed(), f.linear + f.attention_absorbed);
  // Absorbed MLA trades ~3.4x more attention math for its 71x smaller cache (model_spec §5.4).
  EXPECT_NEAR(static_cast<double>(f.attention_absorbed) / f.attention_naive, 3.4, 0.01);
  EXPECT_THROW(flops_per_token(c, -5), std::invalid_argument);
}

TEST(Census, V3CheckpointReproducesModelInspect) {
  Census s = checkpoint_census(v3());
  EXPECT_EQ(s.f8.tensors, 45'808);
  EXPECT_EQ(s.f8.elements, 680'571'043'840);
  EXPECT_EQ(s.bf16.tensors, 316);
  EXPECT_EQ(s.bf16.elements, 3'918'786'560);
  EXPECT_EQ(s.f32.tensors, 45'867);
  EXPECT_EQ(s.f32.elements, 41'555'600);
  EXPECT_EQ(s.tensors(), 91'991);
  EXPECT_EQ(s.bytes(), 688'574'839'360);
  Census main = checkpoint_census(v3(), /*include_mtp=*/false);
  EXPECT_EQ(main.tensors(), 90'427);
  EXPECT_EQ(main.f8.elements, 669'065'609'216);
  EXPECT_EQ(main.bf16.elements, 1'960'795'136);
  EXPECT_EQ(main.f32.elements, 40'853'080);
  EXPECT_EQ(main.bytes(), 673'150'611'808);
}

// A checkpoint written here: 8-byte length, JSON header, data.
void write_safetensors(const std::string& path, const std::string& header, size_t data_bytes) {
  std::ofstream out(path, std::ios::binary);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << header << std::string(data_bytes, '\0');
}

TEST(CheckpointCount, ReadsHeadersOfSingleAndShardedCheckpoints) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("dsv3_acct_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  write_safetensors(
      (dir / "a.safetensors").string(),
      R"({"model.embed_tokens.weight":{"dtype":"BF16","shape":[4,2],"data_offsets":[0,16]},)"
      R"("model.layers.0.mlp.down_proj.weight":{"dtype":"F8_E4M3","shape":[2,3],"data_offsets":[16,22]},)"
      R"("model.layers.0.mlp.down_proj.weight_scale_inv":{"dtype":"F32","shape":[1,1],"data_offsets":[24,28]},)"
      R"("__metadata__":{"format":"pt"}})",
      28);
  write_safetensors(
      (dir / "b.safetensors").string(),
      R"({"model.layers.1.enorm.weight":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})", 4);
  {
    std::ofstream idx(dir / "model.safetensors.index.json");
    idx << R"({"metadata":{},"weight_map":{"model.embed_tokens.weight":"a.safetensors",)"
        << R"("model.layers.1.enorm.weight":"b.safetensors"}})";
  }
  CheckpointCount n = count_checkpoint(dir.string(), /*num_hidden_layers=*/1);
  EXPECT_EQ(n.tensors, 4);
  EXPECT_EQ(n.params, 8 + 6 + 2);
  EXPECT_EQ(n.scale_elements, 1);
  EXPECT_EQ(n.bytes, 16 + 6 + 4 + 4);
  EXPECT_EQ(n.mtp_params, 2);
  CheckpointCount one = count_checkpoint((dir / "b.safetensors").string());
  EXPECT_EQ(one.params, 2);
  // Broken headers are errors, not crashes.
  write_safetensors((dir / "bad.safetensors").string(), "{not json", 0);
  EXPECT_THROW(count_checkpoint((dir / "bad.safetensors").string()), std::runtime_error);
  {
    std::ofstream huge(dir / "huge.safetensors", std::ios::binary);
    huge << std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) << "{}";
  }
  EXPECT_THROW(count_checkpoint((dir / "huge.safetensors").string()), std::runtime_error);
  write_safetensors((dir / "dtype.safetensors").string(),
                    R"({"x":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}})", 1);
  EXPECT_THROW(count_checkpoint((dir / "dtype.safetensors").string()), std::runtime_error);
  EXPECT_THROW(count_checkpoint((dir / "missing.safetensors").string()), std::runtime_error);
  fs::remove_all(dir);
}

TEST(CheckpointCount, AgreesWithTheConfigForASavedModel) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("dsv3_acct_ckpt_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  Config c = model::resolve_config("tiny-random");
  model::save_weights(c, model::random_weights(c, 3), (dir / "model.safetensors").string());
  CheckpointCount n = count_checkpoint(dir.string(), c.num_hidden_layers);
  // save_weights writes float32 and no copies of the embedding/head inside the MTP module.
  EXPECT_EQ(n.params, count_params(c).total + count_mtp_params(c).unique);
  EXPECT_EQ(n.mtp_params, count_mtp_params(c).unique);
  EXPECT_EQ(n.scale_elements, 0);
  EXPECT_EQ(n.bytes, 4 * n.params);
  // The census predicts the same tensors, less the two copies per MTP module.
  EXPECT_EQ(n.tensors, checkpoint_census(c).tensors() - 2 * c.num_nextn_predict_layers);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace dsv3::accounting

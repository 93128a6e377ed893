// Attention rollout and single-layer attention maps on host arrays (see attention_rollout.h).
// Sums run in double: a rollout multiplies up to a few dozen row-stochastic matrices whose rows
// come from fp32 softmaxes, and the map's smallest entries are what a heatmap shows as "cold".
#include "model/attention_rollout.h"

#include <algorithm>
#include <cctype>
#include <string>

#include "base/error.h"

namespace vkvit::model {

namespace {

// A non-negative decimal integer made of digits only ("01" is fine, "+1", "1x" and "" are not).
bool parse_index(const std::string& s, int& out) {
  if (s.empty() || s.size() > 6) return false;
  int v = 0;
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

std::string list_blocks(const std::vector<int>& blocks) {
  std::string s;
  for (size_t i = 0; i < blocks.size(); ++i) s += (i ? ", " : "") + std::to_string(blocks[i]);
  return s;
}

// The heads' mean of one layer's probabilities, (N, N).
std::vector<double> mean_heads(const float* probs, uint32_t H, uint32_t N) {
  const uint64_t NN = uint64_t(N) * N;
  std::vector<double> a(NN, 0.0);
  for (uint32_t h = 0; h < H; ++h)
    for (uint64_t i = 0; i < NN; ++i) a[i] += probs[h * NN + i];
  for (double& v : a) v /= H;
  return a;
}

void check_sizes(uint32_t H, uint32_t N, const char* what) {
  if (H == 0 || N < 2) throw Error(std::string("internal: ") + what + ": needs heads > 0 and at least 2 tokens");
}

}  // namespace

AttentionMapPlan plan_attention_map(const VitConfig& cfg, const std::string& method) {
  std::vector<int> attention, filters;
  for (int l = 0; l < cfg.depth; ++l) (cfg.mixer_at(l) == "attention" ? attention : filters).push_back(l);
  AttentionMapPlan plan;
  plan.name = method;
  if (method == "rollout" || method == "last-layer") {
    plan.kind = method == "rollout" ? AttentionMapPlan::Kind::rollout : AttentionMapPlan::Kind::last_layer;
    plan.file_tag = method;
  } else if (method.rfind("head=", 0) == 0) {
    const std::string spec = method.substr(5);
    const size_t colon = spec.find(':');
    int layer = -1, head = -1;
    if (colon == std::string::npos || !parse_index(spec.substr(0, colon), layer) ||
        !parse_index(spec.substr(colon + 1), head))
      throw Error("--method " + method + ": write head=L:H with a block L and a head H, both 0-based (e.g. head=" +
                  std::to_string(cfg.depth - 1) + ":0)");
    if (layer >= cfg.depth)
      throw Error("--method " + method + ": block " + std::to_string(layer) + " does not exist; the model has " +
                  std::to_string(cfg.depth) + " blocks, 0.." + std::to_string(cfg.depth - 1));
    if (cfg.mixer_at(layer) != "attention")
      throw Error("--method " + method + ": block " + std::to_string(layer) + " is a " + cfg.mixer_at(layer) +
                  " layer, which has no attention map" +
                  (attention.empty() ? std::string() : "; attention blocks: " + list_blocks(attention)));
    if (head >= cfg.heads)
      throw Error("--method " + method + ": head " + std::to_string(head) + " does not exist; the model has " +
                  std::to_string(cfg.heads) + " heads, 0.." + std::to_string(cfg.heads - 1));
    plan.kind = AttentionMapPlan::Kind::head;
    plan.layers = {layer};
    plan.head = head;
    plan.file_tag = "head-L" + std::to_string(layer) + "-H" + std::to_string(head);
    return plan;
  } else {
    throw Error("--method " + method + ": unknown method; use rollout, last-layer or head=L:H (block L, head H, 0-based)");
  }
  if (attention.empty())
    throw Error("--method " + method + ": the model has no attention block (every block is a global filter), so it has "
                "no attention map to show");
  if (plan.kind == AttentionMapPlan::Kind::rollout) {
    plan.layers = attention;
    plan.skipped = filters;
  } else {
    plan.layers = {attention.back()};
  }
  return plan;
}

std::vector<double> mean_heads_cls_map(const float* probs, uint32_t H, uint32_t N) {
  check_sizes(H, N, "mean_heads_cls_map");
  std::vector<double> map(N - 1, 0.0);
  for (uint32_t h = 0; h < H; ++h) {
    const float* row0 = probs + uint64_t(h) * N * N;  // the cls token's row of head h
    for (uint32_t j = 1; j < N; ++j) map[j - 1] += row0[j];
  }
  for (double& v : map) v /= H;
  return map;
}

std::vector<double> head_cls_map(const float* probs, uint32_t H, uint32_t N, uint32_t head) {
  check_sizes(H, N, "head_cls_map");
  if (head >= H) throw Error("internal: head_cls_map: head " + std::to_string(head) + " of " + std::to_string(H));
  const float* row0 = probs + uint64_t(head) * N * N;
  return std::vector<double>(row0 + 1, row0 + N);
}

std::vector<double> rollout_cls_map(const std::vector<const float*>& layers, uint32_t H, uint32_t N) {
  check_sizes(H, N, "rollout_cls_map");
  if (layers.empty()) throw Error("internal: rollout_cls_map: no attention layer");
  // Only row 0 of R = A_{L-1} ... A_0 is wanted: r = e_0^T A_{L-1}, then r <- r A_l for l = L-2
  // down to 0, which is N^2 work per layer instead of the N^3 of the full product.
  std::vector<double> r(N, 0.0), next(N);
  r[0] = 1.0;
  for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
    std::vector<double> a = mean_heads(*it, H, N);
    for (uint32_t i = 0; i < N; ++i) {
      double* row = &a[uint64_t(i) * N];
      row[i] += 1.0;  // the residual connection: the token keeps itself
      double sum = 0.0;
      for (uint32_t j = 0; j < N; ++j) sum += row[j];
      for (uint32_t j = 0; j < N; ++j) row[j] /= sum;  // sum >= 1: the entries are >= 0 plus the 1
    }
    std::fill(next.begin(), next.end(), 0.0);
    for (uint32_t i = 0; i < N; ++i) {
      if (r[i] == 0.0) continue;
      const double* row = &a[uint64_t(i) * N];
      for (uint32_t j = 0; j < N; ++j) next[j] += r[i] * row[j];
    }
    r.swap(next);
  }
  return std::vector<double>(r.begin() + 1, r.end());
}

std::vector<double> attention_map(const AttentionMapPlan& plan, const std::vector<const float*>& probs, uint32_t H,
                                  uint32_t N) {
  if (probs.size() != plan.layers.size())
    throw Error("internal: attention_map: " + std::to_string(probs.size()) + " layers given, the plan reads " +
                std::to_string(plan.layers.size()));
  switch (plan.kind) {
    case AttentionMapPlan::Kind::rollout: return rollout_cls_map(probs, H, N);
    case AttentionMapPlan::Kind::last_layer: return mean_heads_cls_map(probs[0], H, N);
    case AttentionMapPlan::Kind::head: return head_cls_map(probs[0], H, N, uint32_t(plan.head));
  }
  throw Error("internal: attention_map: unknown kind");
}

}  // namespace vkvit::model

// Layer ids, lr scales and freeze patterns; see param_groups.h.
#include "train/param_groups.h"

#include <cmath>

#include "base/error.h"

namespace vkvit::train {

namespace {

bool starts_with(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

// The set `[...]` starting at pattern[at] ('['): whether it holds c, and where the pattern goes on
// after it. false from the function itself: no closing ']', so the '[' is a literal (as fnmatch).
bool match_set(std::string_view pattern, size_t at, char c, bool& holds, size_t& next) {
  size_t i = at + 1;
  const bool negate = i < pattern.size() && pattern[i] == '!';
  if (negate) ++i;
  const size_t first = i;
  bool found = false;
  // A ']' right after '[' or '[!' belongs to the set.
  while (i < pattern.size() && (pattern[i] != ']' || i == first)) {
    if (i + 2 < pattern.size() && pattern[i + 1] == '-' && pattern[i + 2] != ']') {
      found = found || (pattern[i] <= c && c <= pattern[i + 2]);
      i += 3;
    } else {
      found = found || pattern[i] == c;
      ++i;
    }
  }
  if (i >= pattern.size()) return false;
  holds = found != negate;
  next = i + 1;
  return true;
}

bool glob_from(std::string_view pattern, size_t p, std::string_view name, size_t n) {
  while (p < pattern.size()) {
    const char c = pattern[p];
    if (c == '*') {
      while (p < pattern.size() && pattern[p] == '*') ++p;
      if (p == pattern.size()) return true;
      for (size_t k = n; k <= name.size(); ++k)
        if (glob_from(pattern, p, name, k)) return true;
      return false;
    }
    if (n == name.size()) return false;
    if (c == '?') {
      ++p, ++n;
      continue;
    }
    bool holds = false;
    size_t next = 0;
    if (c == '[' && match_set(pattern, p, name[n], holds, next)) {
      if (!holds) return false;
      p = next, ++n;
      continue;
    }
    if (c != name[n]) return false;
    ++p, ++n;
  }
  return n == name.size();
}

}  // namespace

int vit_layer_id(std::string_view name, int depth) {
  if (starts_with(name, "cls_token") || starts_with(name, "pos_embed") || starts_with(name, "patch_embed")) return 0;
  if (starts_with(name, "blocks.")) {
    const std::string_view rest = name.substr(7);
    size_t digits = 0;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') ++digits;
    if (digits > 0) return std::stoi(std::string(rest.substr(0, digits))) + 1;
  }
  // group_with_matcher: the final norm's (99999,) suffix joins the group before it, the last block's.
  if (starts_with(name, "norm")) return depth;
  return depth + 1;  // unmatched names (the head) take the largest ordinal
}

std::vector<double> layer_decay_scales(const model::ParamLayout& layout, int depth, double layer_decay) {
  std::vector<double> scales;
  for (const model::ParamInfo& p : layout.params())
    scales.push_back(layer_decay > 0 ? std::pow(layer_decay, double(depth + 1 - vit_layer_id(p.name, depth))) : 1.0);
  return scales;
}

bool glob_match(std::string_view pattern, std::string_view name) { return glob_from(pattern, 0, name, 0); }

std::vector<bool> frozen_tensors(const model::ParamLayout& layout, const std::vector<std::string>& patterns) {
  const std::vector<model::ParamInfo>& params = layout.params();
  std::vector<bool> frozen(params.size(), false);
  for (const std::string& entry : patterns) {
    const bool unfreeze = !entry.empty() && entry[0] == '!';
    const std::string_view pattern = std::string_view(entry).substr(unfreeze ? 1 : 0);
    bool matched = false;
    for (size_t i = 0; i < params.size(); ++i) {
      if (!glob_match(pattern, params[i].name)) continue;
      frozen[i] = !unfreeze;
      matched = true;
    }
    if (!matched)
      throw Error("train.freeze: pattern '" + entry + "' matches no parameter (names as timm's: cls_token, pos_embed, " +
                  "patch_embed.proj.weight, blocks.0.attn.qkv.weight, blocks.0.mlp.fc1.bias, norm.weight, head.bias, ...)");
  }
  bool any_trainable = false;
  for (bool f : frozen) any_trainable = any_trainable || !f;
  if (!any_trainable) throw Error("train.freeze: the patterns freeze every parameter; nothing would train");
  return frozen;
}

bool ParamGroups::active() const {
  for (double s : lr_scale)
    if (s != 1.0) return true;
  return false;
}

ParamGroups param_groups(const model::ParamLayout& layout, int depth, double layer_decay,
                         const std::vector<std::string>& freeze) {
  ParamGroups g;
  g.lr_scale = layer_decay_scales(layout, depth, layer_decay);
  g.frozen = frozen_tensors(layout, freeze);
  for (size_t i = 0; i < g.frozen.size(); ++i)
    if (g.frozen[i]) g.lr_scale[i] = 0;
  return g;
}

}  // namespace vkvit::train

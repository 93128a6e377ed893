#include "train/checkpoint.h"

#include <nlohmann/json.hpp>
#include <sstream>

#include "base/error.h"
#include "model/safetensors.h"

namespace vkvit::train {

namespace {

std::map<std::string, std::string> metadata_of(const CheckpointMeta& meta) {
  std::map<std::string, std::string> md;
  md["format"] = "pt";  // what timm/safetensors readers expect for PyTorch-style tensors
  md["vkvit.config"] = meta.config.to_yaml();
  md["vkvit.config_name"] = meta.config.name;
  md["vkvit.classes"] = nlohmann::json(meta.classes).dump();
  md["vkvit.epoch"] = std::to_string(meta.epoch);
  md["vkvit.step"] = std::to_string(meta.step);
  std::ostringstream best;
  best.precision(17);
  best << meta.best_top1;
  md["vkvit.best_top1"] = best.str();
  if (meta.position > 0) {
    md["vkvit.position"] = std::to_string(meta.position);
    std::ostringstream sum;
    sum.precision(17);
    sum << meta.epoch_loss_sum;
    md["vkvit.epoch_loss_sum"] = sum.str();
    md["vkvit.epoch_images"] = std::to_string(meta.epoch_images);
  }
  if (meta.loss_scale > 0) {
    std::ostringstream scale;
    scale.precision(17);
    scale << meta.loss_scale;
    md["vkvit.amp.loss_scale"] = scale.str();
    md["vkvit.amp.good_steps"] = std::to_string(meta.loss_scale_good_steps);
  }
  if (!meta.weights.empty()) md["vkvit.weights"] = meta.weights;
  return md;
}

// Every model tensor of vit's layout, pointing into `flat`.
std::vector<model::TensorRef> model_tensors(const model::Vit& vit, const std::vector<float>& flat) {
  if (flat.size() != vit.layout().total_floats()) throw Error("internal: weights do not match the layout");
  std::vector<model::TensorRef> refs;
  for (const auto& p : vit.params()) {
    std::vector<uint64_t> shape(p.shape.begin(), p.shape.end());
    refs.push_back({p.name, shape, flat.data() + p.offset});
  }
  return refs;
}

const std::string& require_key(const std::map<std::string, std::string>& md, const std::string& key,
                               const std::string& path) {
  auto it = md.find(key);
  if (it == md.end())
    throw Error(path + ": not a vkvit checkpoint (no \"" + key +
                "\" in __metadata__); import timm or torchvision weights with `vkvit convert`");
  return it->second;
}

uint64_t parse_u64(const std::string& text, const std::string& key, const std::string& path) {
  try {
    size_t used = 0;
    uint64_t v = std::stoull(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  throw Error(path + ": __metadata__ \"" + key + "\" is not a non-negative integer: '" + text + "'");
}

}  // namespace

void save_checkpoint(const std::string& path, const model::Vit& vit, const CheckpointMeta& meta,
                     const std::vector<float>* adam_m, const std::vector<float>* adam_v,
                     const std::vector<float>* ema) {
  const std::vector<float> flat = vit.read_params();
  std::vector<model::TensorRef> refs = model_tensors(vit, flat);
  if ((adam_m == nullptr) != (adam_v == nullptr)) throw Error("internal: save_checkpoint needs both Adam m and v");
  if (adam_m) {
    const uint64_t n = vit.layout().total_floats();
    if (adam_m->size() != n || adam_v->size() != n) throw Error("internal: Adam state does not match the layout");
    refs.push_back({kAdamM, {n}, adam_m->data()});
    refs.push_back({kAdamV, {n}, adam_v->data()});
  }
  if (ema) {
    const uint64_t n = vit.layout().total_floats();
    if (ema->size() != n) throw Error("internal: the EMA weights do not match the layout");
    refs.push_back({kEmaWeights, {n}, ema->data()});
  }
  model::write_safetensors(path, refs, metadata_of(meta));
}

void save_checkpoint_weights(const std::string& path, const model::Vit& vit, const std::vector<float>& flat,
                             const CheckpointMeta& meta) {
  model::write_safetensors(path, model_tensors(vit, flat), metadata_of(meta));
}

void save_checkpoint_tensors(const std::string& path, const std::vector<model::Tensor>& tensors,
                             const CheckpointMeta& meta) {
  std::vector<model::TensorRef> refs;
  for (const model::Tensor& t : tensors) refs.push_back({t.name, t.shape, t.data.data()});
  model::write_safetensors(path, refs, metadata_of(meta));
}

CheckpointMeta read_checkpoint_meta(const std::string& path) { return checkpoint_meta(model::read_safetensors(path), path); }

CheckpointMeta checkpoint_meta(const model::SafeTensors& st, const std::string& path) {
  CheckpointMeta meta;
  meta.config = RunConfig::parse(require_key(st.metadata, "vkvit.config", path), path + " (__metadata__ vkvit.config)");
  if (auto it = st.metadata.find("vkvit.config_name"); it != st.metadata.end()) meta.config.name = it->second;
  try {
    meta.classes = nlohmann::json::parse(require_key(st.metadata, "vkvit.classes", path)).get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception&) {
    throw Error(path + ": __metadata__ \"vkvit.classes\" is not a JSON list of strings");
  }
  if (meta.classes.size() != static_cast<size_t>(meta.config.model.num_classes))
    throw Error(path + ": " + std::to_string(meta.classes.size()) + " class names for a model with " +
                std::to_string(meta.config.model.num_classes) + " classes");
  meta.epoch = parse_u64(require_key(st.metadata, "vkvit.epoch", path), "vkvit.epoch", path);
  meta.step = parse_u64(require_key(st.metadata, "vkvit.step", path), "vkvit.step", path);
  if (auto it = st.metadata.find("vkvit.best_top1"); it != st.metadata.end()) meta.best_top1 = std::atof(it->second.c_str());
  if (auto it = st.metadata.find("vkvit.position"); it != st.metadata.end()) {
    meta.position = parse_u64(it->second, "vkvit.position", path);
    meta.epoch_images = parse_u64(require_key(st.metadata, "vkvit.epoch_images", path), "vkvit.epoch_images", path);
    meta.epoch_loss_sum = std::atof(require_key(st.metadata, "vkvit.epoch_loss_sum", path).c_str());
  }
  if (auto it = st.metadata.find("vkvit.amp.loss_scale"); it != st.metadata.end()) {
    meta.loss_scale = std::atof(it->second.c_str());
    meta.loss_scale_good_steps =
        parse_u64(require_key(st.metadata, "vkvit.amp.good_steps", path), "vkvit.amp.good_steps", path);
    if (!(meta.loss_scale > 0))
      throw Error(path + ": __metadata__ \"vkvit.amp.loss_scale\" is not a positive number: '" + it->second + "'");
  }
  if (auto it = st.metadata.find("vkvit.weights"); it != st.metadata.end()) meta.weights = it->second;
  return meta;
}

void load_checkpoint_weights(const std::string& path, model::Vit& vit) {
  const model::SafeTensors st = model::read_safetensors(path);
  std::vector<float> flat(vit.layout().total_floats(), 0.0f);
  std::vector<std::string> problems;
  std::map<std::string, bool> expected;
  for (const auto& p : vit.params()) {
    expected[p.name] = true;
    const model::Tensor* t = st.find(p.name);
    if (!t) {
      problems.push_back("missing " + p.name);
      continue;
    }
    std::vector<uint64_t> want(p.shape.begin(), p.shape.end());
    if (t->shape != want) {
      auto fmt = [](const std::vector<uint64_t>& s) {
        std::string out = "(";
        for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
        return out + ")";
      };
      problems.push_back(p.name + " has shape " + fmt(t->shape) + ", the model expects " + fmt(want));
      continue;
    }
    std::copy(t->data.begin(), t->data.end(), flat.begin() + static_cast<std::ptrdiff_t>(p.offset));
  }
  for (const auto& t : st.tensors)
    if (!expected.count(t.name) && !is_training_state(t.name)) problems.push_back("unexpected " + t.name);
  if (!problems.empty()) {
    std::string msg = path + ": tensors do not fit the model (" + std::to_string(problems.size()) + "): ";
    for (size_t i = 0; i < problems.size(); ++i) msg += (i ? "; " : "") + problems[i];
    throw Error(msg);
  }
  vit.write_params(flat);
}

void load_optimizer_state(const std::string& path, uint64_t floats, std::vector<float>& m, std::vector<float>& v) {
  const model::SafeTensors st = model::read_safetensors(path);
  const model::Tensor* tm = st.find(kAdamM);
  const model::Tensor* tv = st.find(kAdamV);
  if (!tm || !tv)
    throw Error(path + ": has no optimizer state (" + kAdamM + ", " + kAdamV +
                "); resume from a run's last.safetensors, not best.safetensors or converted weights");
  if (tm->numel() != floats || tv->numel() != floats)
    throw Error(path + ": its optimizer state does not fit this model (" + std::to_string(tm->numel()) + " values, " +
                "the model's layout has " + std::to_string(floats) + ")");
  m = tm->data;
  v = tv->data;
}

bool load_ema_weights(const std::string& path, uint64_t floats, std::vector<float>& ema) {
  const model::SafeTensors st = model::read_safetensors(path);
  const model::Tensor* t = st.find(kEmaWeights);
  if (!t) return false;
  if (t->numel() != floats)
    throw Error(path + ": its EMA weights (" + std::string(kEmaWeights) + ") do not fit this model (" +
                std::to_string(t->numel()) + " values, the model's layout has " + std::to_string(floats) + ")");
  ema = t->data;
  return true;
}

}  // namespace vkvit::train

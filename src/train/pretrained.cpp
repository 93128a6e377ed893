// Starting a run from trained weights (see pretrained.h).
#include "train/pretrained.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "base/error.h"
#include "base/log.h"
#include "model/safetensors.h"
#include "model/weight_import.h"
#include "train/checkpoint.h"

namespace vkvit::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kImportPrefixes[] = {"timm:", "torchvision:"};

// Top-level folders of `root` that ImageFolder takes for classes (not hidden, symlinks followed);
// -1 when `root` is no folder (scan_splits reports that).
int count_class_folders(const fs::path& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return -1;
  int count = 0;
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec))
    if (e.path().filename().string().rfind('.', 0) != 0 && e.is_directory(ec)) ++count;
  return count;
}

// W's head rows: the class count it was trained for (0 when it has no 2-D head).
int head_classes(const model::SafeTensors& st, model::WeightNames names) {
  const model::Tensor* head = st.find(names == model::WeightNames::timm ? "head.weight" : "heads.head.weight");
  return head && head->shape.size() == 2 ? static_cast<int>(head->shape[0]) : 0;
}

// A vkvit checkpoint's model tensors (its training state dropped); `which` says which weights they
// are, `differences` how its model section differs from the run's.
std::vector<std::string> keep_model_tensors(model::SafeTensors& st, const PretrainedSource& src, const RunConfig& cfg,
                                            std::string& which, std::string& differences) {
  if (!st.metadata.count("vkvit.config"))
    throw Error(src.path + ": not a vkvit checkpoint (no vkvit.config in its metadata); for weights with timm or "
                "torchvision names give --pretrained timm:" + src.path + " or torchvision:" + src.path);
  const CheckpointMeta meta = checkpoint_meta(st, src.path);
  // What may differ is set equal first: the rest (heads, pool, ln_eps, ...) must match even where
  // no tensor's shape shows it.
  ModelFields theirs = meta.config.model;
  theirs.preset = cfg.model.preset;
  theirs.num_classes = cfg.model.num_classes;
  theirs.image_size = cfg.model.image_size;
  differences = theirs.differences(cfg.model);
  if (meta.weights == "ema") which = "the model EMA's weights (the file's main tensors)";
  else if (st.find(kEmaWeights)) which = "the model's weights (not the model EMA it also holds)";
  else which = "the model's weights";
  st.tensors.erase(std::remove_if(st.tensors.begin(), st.tensors.end(),
                                  [](const model::Tensor& t) { return is_training_state(t.name); }),
                   st.tensors.end());
  return meta.classes;
}

}  // namespace

PretrainedSource parse_pretrained(const std::string& spec) {
  PretrainedSource src;
  src.path = spec;
  for (const char* prefix : kImportPrefixes) {
    const std::string p = prefix;
    if (spec.rfind(p, 0) != 0) continue;
    src.vkvit_checkpoint = false;
    src.names = model::parse_weight_names(p.substr(0, p.size() - 1));
    src.path = spec.substr(p.size());
  }
  if (src.path.empty()) throw Error("--pretrained '" + spec + "' names no file");
  return src;
}

std::string absolute_pretrained(const std::string& spec) {
  const PretrainedSource src = parse_pretrained(spec);
  const std::string prefix = spec.substr(0, spec.size() - src.path.size());
  return prefix + fs::absolute(src.path).lexically_normal().string();
}

void take_class_count_from_folder(RunConfig& cfg, int requested) {
  const fs::path root = fs::path(cfg.data.dir) / cfg.data.train_split;
  const int found = count_class_folders(root);
  if (found <= 0) {  // nothing to count: scanning the splits says what is wrong
    if (requested > 0) cfg.model.num_classes = requested;
    return;
  }
  if (requested > 0 && requested != found)
    throw Error("--num-classes " + std::to_string(requested) + ", but " + root.string() + " has " +
                std::to_string(found) + " class folders; vkvit takes the class count from the folder: drop "
                "--num-classes or train on a folder with " + std::to_string(requested) + " classes");
  if (found != cfg.model.num_classes)
    log_info("model.num_classes " + std::to_string(cfg.model.num_classes) + " -> " + std::to_string(found) +
             ", the class folders of " + root.string());
  cfg.model.num_classes = found;
}

void load_pretrained(const RunConfig& cfg, const std::vector<std::string>& classes, model::Vit& vit, bool quiet) {
  const PretrainedSource src = parse_pretrained(cfg.train.pretrained);
  model::SafeTensors st = model::read_safetensors(src.path);
  std::string which = std::string(model::weight_names_name(src.names)) + " weights", differences;
  std::vector<std::string> their_classes;  // known for a vkvit checkpoint only
  if (src.vkvit_checkpoint) their_classes = keep_model_tensors(st, src, cfg, which, differences);
  // Imported for W's own class count, so that only the shapes that must match are checked.
  model::VitConfig shape = vit.config();
  if (!src.vkvit_checkpoint)  // as vkvit convert refuses them
    if (const std::string why = model::without_timm_equivalent(shape); !why.empty())
      throw Error(cfg.source + ": " + why + ", so " + which + " cannot describe this model");
  if (src.names == model::WeightNames::torchvision && shape.pool != "cls")  // as vkvit convert refuses it
    throw Error(cfg.source + ": model.pool is '" + shape.pool + "', but torchvision's VisionTransformer classifies the "
                "cls token; set model.pool: cls");
  const int head_rows = head_classes(st, src.names);
  if (head_rows > 0) shape.num_classes = head_rows;
  const std::string advice =
      "; the config's model section must describe these weights (only num_classes and image_size may differ): "
      "train with the config they were trained with, or one of the same shape";
  const std::string model_differs = differences.empty() ? "" : " (its model vs the config's: " + differences + ")";
  std::vector<model::Tensor> tensors;
  try {
    tensors = model::import_weights(st, src.names, shape, src.path);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + model_differs + advice);
  }
  if (!differences.empty()) throw Error(src.path + ": the tensors fit, but the model does not" + model_differs + advice);
  // A head is kept only for the classes it was trained on: the same count, and for a vkvit
  // checkpoint (which names them) the same names in the same order.
  const bool other_count = shape.num_classes != vit.config().num_classes;
  const bool other_names = !other_count && !their_classes.empty() && their_classes != classes;
  const bool reset_head = other_count || other_names;
  std::vector<float> flat = vit.read_params();
  for (const model::Tensor& t : tensors) {
    if (reset_head && t.name.rfind("head.", 0) == 0) continue;
    std::copy(t.data.begin(), t.data.end(), flat.begin() + std::ptrdiff_t(vit.layout().at(t.name).offset));
  }
  vit.write_params(flat);
  if (quiet) return;
  std::fprintf(stderr, "vkvit: starting from %s: %s\n", src.path.c_str(), which.c_str());
  if (reset_head)
    std::fprintf(stderr,
                 "vkvit: %s has a head for %d%s classes, this run has %d: head.weight and head.bias start from "
                 "the init (timm's reset_classifier)\n",
                 src.path.c_str(), shape.num_classes, other_names ? " other" : "", vit.config().num_classes);
}

}  // namespace vkvit::train

// `vkvit convert`: timm or torchvision ViT weights in, a vkvit checkpoint out (--from), or a vkvit
// checkpoint back out to either naming (--to). The tensors keep their values (F16/BF16 inputs
// become F32); only names change, and pos_embed is resampled when the config's image size gives
// another patch grid than the weights were trained on (model/weight_import.h).
#include <algorithm>
#include <cstdio>
#include <fstream>

#include "base/error.h"
#include "cli/commands.h"
#include "model/sincos_pos_embed.h"
#include "model/weight_import.h"
#include "train/checkpoint.h"

namespace vkvit::cli {

namespace {

struct ConvertArgs {
  std::string from, to, config, classes_file, input, output;
};

// One class name per line (blank lines ignored); `count` of them, or "0".."count-1" without a file.
std::vector<std::string> read_classes(const std::string& path, int count) {
  std::vector<std::string> classes;
  if (path.empty()) {
    for (int k = 0; k < count; ++k) classes.push_back(std::to_string(k));
    return classes;
  }
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open the class-names file");
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    if (!line.empty()) classes.push_back(line);
  }
  if (classes.size() != size_t(count))
    throw Error(path + ": " + std::to_string(classes.size()) + " class names for a model with " + std::to_string(count) +
                " classes (model.num_classes); give one name per line");
  return classes;
}

void import_command(const ConvertArgs& a) {
  if (a.config.empty()) throw Error("vkvit convert --from needs --config MODEL.yaml (the architecture and preprocessing)");
  const model::WeightNames from = model::parse_weight_names(a.from);
  train::RunConfig cfg = train::RunConfig::load(a.config);
  const model::VitConfig vcfg = train::to_vit_config(cfg.model);
  if (from == model::WeightNames::torchvision && vcfg.pool != "cls")
    throw Error(a.config + ": model.pool is '" + vcfg.pool + "', but torchvision's VisionTransformer classifies the cls "
                "token; set model.pool: cls");
  if (const std::string why = model::without_timm_equivalent(vcfg); !why.empty())
    throw Error(a.config + ": " + why + ", so " + model::weight_names_name(from) + " weights cannot describe this model");
  const model::SafeTensors src = model::read_safetensors(a.input);
  if (from == model::WeightNames::timm && src.find("fc_norm.weight"))
    throw Error(a.input + ": has fc_norm (a timm model with global_pool='avg', which normalizes after pooling); vkvit "
                "normalizes the tokens before pooling, so these weights would compute another function");
  train::CheckpointMeta meta;
  meta.config = cfg;
  meta.classes = read_classes(a.classes_file, vcfg.num_classes);
  const std::vector<model::Tensor> tensors = model::import_weights(src, from, vcfg, a.input);
  train::save_checkpoint_tensors(a.output, tensors, meta);
  std::fprintf(stderr, "vkvit: wrote %s (%zu tensors from %s weights, config %s)\n", a.output.c_str(), tensors.size(),
               model::weight_names_name(from), a.config.c_str());
}

void export_command(const ConvertArgs& a) {
  const model::WeightNames to = model::parse_weight_names(a.to);
  const train::CheckpointMeta meta = train::read_checkpoint_meta(a.input);
  const model::VitConfig vcfg = train::to_vit_config(meta.config.model);
  if (to == model::WeightNames::torchvision && vcfg.pool != "cls")
    throw Error(a.input + ": the model pools by '" + vcfg.pool + "'; torchvision's VisionTransformer can only classify "
                "the cls token, so only --to timm can hold it");
  if (const std::string why = model::without_timm_equivalent(vcfg); !why.empty())
    throw Error(a.input + ": " + why + ", so no " + model::weight_names_name(to) + " model can hold these weights");
  model::SafeTensors src = model::read_safetensors(a.input);
  // The optimizer state of a last.safetensors is not part of the model.
  src.tensors.erase(std::remove_if(src.tensors.begin(), src.tensors.end(),
                                   [](const model::Tensor& t) { return train::is_training_state(t.name); }),
                    src.tensors.end());
  std::vector<model::Tensor> tensors = model::import_weights(src, model::WeightNames::timm, vcfg, a.input);
  if (!vcfg.learned_pos_embed()) {
    // timm and torchvision have no fixed sine-cosine option, but a learned pos_embed holding the
    // table computes the same function at this grid; it goes where timm keeps it, after cls_token.
    const uint64_t rows = uint64_t(vcfg.tokens()), dim = uint64_t(vcfg.dim);
    tensors.insert(tensors.begin() + 1, model::Tensor{"pos_embed", model::DType::F32, {1, rows, dim},
                                                      model::sincos_pos_embed(vcfg.dim, vcfg.grid())});
  }
  const std::vector<model::Tensor> out = model::export_weights(tensors, to);
  std::vector<model::TensorRef> refs;
  for (const model::Tensor& t : out) refs.push_back({t.name, t.shape, t.data.data()});
  model::write_safetensors(a.output, refs, {{"format", "pt"}});
  std::fprintf(stderr, "vkvit: wrote %s (%zu tensors with %s names)\n", a.output.c_str(), out.size(),
               model::weight_names_name(to));
}

}  // namespace

void add_convert_command(CLI::App& app, GlobalOptions&) {
  auto a = std::make_shared<ConvertArgs>();
  auto* cmd = app.add_subcommand("convert", "Import timm/torchvision ViT weights, or export a checkpoint to them");
  auto* from = cmd->add_option("--from", a->from, "Naming of IN: timm or torchvision (IN -> vkvit checkpoint)")
                   ->check(CLI::IsMember({"timm", "torchvision"}));
  auto* to = cmd->add_option("--to", a->to, "Naming to write: timm or torchvision (vkvit checkpoint IN -> OUT)")
                 ->check(CLI::IsMember({"timm", "torchvision"}));
  from->excludes(to);
  cmd->add_option("--config", a->config, "Run config with the architecture and preprocessing (--from)");
  cmd->add_option("--classes", a->classes_file, "Class names, one per line (--from; default 0..K-1)");
  cmd->add_option("IN", a->input, "Input .safetensors")->required();
  cmd->add_option("OUT", a->output, "Output .safetensors")->required();
  cmd->footer("Examples:\n"
              "  vkvit convert --from torchvision --config configs/imagenet_vit_b16.yaml --classes imagenet.txt \\\n"
              "      vit_b_16.safetensors vit_b16.vkvit.safetensors\n"
              "  vkvit convert --to timm runs/RUN/best.safetensors best.timm.safetensors");
  cmd->callback([a] {
    if (a->from.empty() == a->to.empty()) throw Error("vkvit convert: give exactly one of --from or --to");
    if (!a->from.empty()) import_command(*a);
    else export_command(*a);
  });
}

}  // namespace vkvit::cli

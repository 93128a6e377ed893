// The key tables of a run config. A line is key(name, member, reader, doc): the reader reads and
// checks the value (config_read.h), the member's type says how it is written back and compared.
// The rules between keys (dim a multiple of heads, one mean per channel, ...) are in config.cpp.
#include "train/config_keys.h"

#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <cstdlib>
#include <limits>
#include <sstream>

#include "base/error.h"
#include "data/rand_augment_config.h"

namespace vkvit::train {

namespace {

constexpr long long kIntMax = std::numeric_limits<int>::max();
constexpr long long kInt64Max = std::numeric_limits<long long>::max();

constexpr Rule kPositive{[](double v) { return v > 0; }, "must be > 0"};
constexpr Rule kNonNegative{[](double v) { return v >= 0; }, "must be >= 0"};

void put(YAML::Emitter& e, double v) { e << yaml_number(v); }
void put(YAML::Emitter& e, const std::vector<double>& v) {
  e << YAML::Flow << YAML::BeginSeq;
  for (double d : v) put(e, d);
  e << YAML::EndSeq;
}
void put(YAML::Emitter& e, const std::vector<std::string>& v) {
  e << YAML::Flow << YAML::BeginSeq;
  for (const std::string& s : v) e << YAML::DoubleQuoted << s;
  e << YAML::EndSeq;
}
template <class T>
void put(YAML::Emitter& e, const T& v) {
  e << v;  // integers, booleans, strings
}

// A value as differences() shows it.
template <class T>
std::string shown(const T& v) {
  std::ostringstream s;
  s << v;
  return s.str();
}
std::string shown(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& p : v) s += (s.empty() ? "" : ", ") + p;
  return "[" + s + "]";
}
std::string shown(const std::vector<double>& v) {
  std::string s;
  for (double d : v) s += (s.empty() ? "" : ", ") + shown(d);
  return "[" + s + "]";
}

template <class S, class T, class V>
Key<S> key(const char* name, T S::*member, Reader<V> reader, const char* doc) {
  Key<S> k{name, doc, reader.null_is_empty};
  k.read = [member, read = reader.read](S& s, Reading&, const YAML::Node& n, const Where& w) {
    s.*member = static_cast<T>(read(n, w));
  };
  k.write = [member, quoted = reader.quoted](YAML::Emitter& e, const S& s) {
    if (quoted) e << YAML::DoubleQuoted;
    put(e, s.*member);
  };
  k.difference = [name, member](const S& a, const S& b) {
    return a.*member == b.*member ? std::string() : name + (" " + shown(a.*member) + " vs " + shown(b.*member));
  };
  return k;
}

// The decimal a float was written as (1e-6f -> 1e-6, not 9.99999997e-07), so that a preset's
// float LayerNorm epsilon reads as the number its author typed.
double decimal_of(float f) {
  char buf[64];
  for (int prec = 1; prec <= 9; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, double(f));
    if (std::strtof(buf, nullptr) == f) break;
  }
  return std::strtod(buf, nullptr);
}

void apply_preset(ModelFields& m, const std::string& name, const Where& w) {
  model::VitConfig v;
  try {
    v = model::VitConfig::preset(name);
  } catch (const Error& e) {
    w.fail(e.what());
  }
  m.preset = name;
  m.image_size = v.image_size;
  m.patch_size = v.patch_size;
  m.in_chans = v.in_chans;
  m.dim = v.dim;
  m.depth = v.depth;
  m.heads = v.heads;
  m.mlp_dim = v.mlp_dim;
  m.num_classes = v.num_classes;
  m.pool = v.pool;
  m.mixer = v.mixer;
  m.ln_eps = decimal_of(v.ln_eps);
  m.pos_embed = v.pos_embed;
  m.norm = v.norm;
}

// Written and compared as a name; reading it replaces every model field with the preset's.
Key<ModelFields> preset_key() {
  Key<ModelFields> k = key("preset", &ModelFields::preset, optional_text(),
                           "a model preset (model::VitConfig::preset_names()); its fields are applied first, "
                           "explicit fields of the section override them");
  k.read = [](ModelFields& m, Reading&, const YAML::Node& n, const Where& w) {
    // "" (as written for a model without a preset) names no preset and changes no field.
    const std::string name = optional_text().read(n, w);
    if (name.empty()) m.preset.clear();
    else apply_preset(m, name, w);
  };
  return k;
}

// Read, then resolved into mlp_dim once the section is read (finish_model in config.cpp).
Key<ModelFields> mlp_ratio_key() {
  Key<ModelFields> k{"mlp_ratio", "R: mlp_dim = int(R * dim), as timm computes it; give it or mlp_dim, not both"};
  k.read = [](ModelFields&, Reading& r, const YAML::Node& n, const Where& w) {
    r.mlp_ratio = number(kPositive).read(n, w);
  };
  return k;
}

// One name for every block, or a list with one name per block (kept as "a,b,c"); which names
// exist for a single name is the model's to say (model::VitConfig::validate).
Reader<std::string> mixer_names() {
  return {[](const YAML::Node& n, const Where& w) {
    const std::vector<std::string> choices{"attention", "global_filter"};
    std::string mixer;
    if (n.IsSequence()) {
      if (n.size() == 0) w.fail("must not be an empty list");
      for (size_t i = 0; i < n.size(); ++i) mixer += (i ? "," : "") + read_choice(n[i], w, choices);
    } else {
      mixer = read_string(n, w);
      if (mixer.empty()) w.fail("must not be empty");
    }
    return mixer;
  }};
}

// train.freeze: a list of fnmatch patterns, each non-empty ("!pattern" unfreezes); one string
// reads as a list of one. Whether each matches a tensor is checked when the model is built.
Reader<std::vector<std::string>> patterns() {
  return {[](const YAML::Node& n, const Where& w) {
    std::vector<std::string> out;
    if (n.IsNull()) return out;
    if (!n.IsSequence()) {
      out.push_back(read_string(n, w));
    } else {
      for (size_t i = 0; i < n.size(); ++i) out.push_back(read_string(n[i], w));
    }
    for (const std::string& p : out)
      if (p.empty() || p == "!") w.fail("every pattern must be non-empty");
    return out;
  }};
}

// A [min, max] fraction of the image area.
Reader<std::vector<double>> area_range() {
  return {[read = range().read](const YAML::Node& n, const Where& w) {
    std::vector<double> v = read(n, w);
    if (!(v[1] <= 1)) w.fail("max must be <= 1 (a fraction of the image area), got " + yaml_number(v[1]));
    return v;
  }};
}

// "" (off) or a RandAugment string in timm's syntax, checked by the parser the loader uses.
Reader<std::string> rand_augment_spec() {
  Reader<std::string> r = optional_text();
  r.read = [read = r.read](const YAML::Node& n, const Where& w) {
    const std::string spec = read(n, w);
    try {
      if (!spec.empty()) data::parse_rand_augment(spec);
    } catch (const Error& e) {
      w.fail(e.what());
    }
    return spec;
  };
  return r;
}

}  // namespace

// `preset` comes first: a section applies its keys in table order, so explicit fields override
// the preset wherever they appear in the file.
const Section<ModelFields>& model_keys() {
  using M = ModelFields;
  static const Section<M> section{"model", &RunConfig::model, {
      preset_key(),
      key("image_size", &M::image_size, integer(1, kIntMax), "input side in pixels (multiple of patch_size)"),
      key("patch_size", &M::patch_size, integer(1, kIntMax), "side of the square patches in pixels"),
      key("in_chans", &M::in_chans, integer(1, kIntMax), "input channels (data.mean and data.std give one value each)"),
      key("dim", &M::dim, integer(1, kIntMax), "embedding width (multiple of heads)"),
      key("depth", &M::depth, integer(1, kIntMax), "transformer blocks"),
      key("heads", &M::heads, integer(1, kIntMax), "attention heads"),
      key("mlp_dim", &M::mlp_dim, integer(1, kIntMax), "hidden width of the MLP (or mlp_ratio)"),
      mlp_ratio_key(),
      key("num_classes", &M::num_classes, integer(1, kIntMax), "classes of the head"),
      key("pool", &M::pool, choice({"cls", "mean"}), "cls | mean (timm global_pool 'token' | 'avg')"),
      key("mixer", &M::mixer, mixer_names(), "token mixer of every block, or a list with one per block"),
      key("ln_eps", &M::ln_eps, number({[](double v) { return v > 0 && v < 1; }, "must be in (0, 1)"}),
          "LayerNorm epsilon (timm and torchvision ViTs use 1e-6)"),
      key("pos_embed", &M::pos_embed, choice({"learned", "sincos"}),
          "learned | sincos (fixed 2D sine-cosine as MAE, not a parameter: runs at any grid)"),
      key("norm", &M::norm, choice({"pre", "post"}),
          "pre | post: LayerNorm on each branch's input (timm) or after each residual add (original Transformer)"),
  }};
  return section;
}

const Section<DataConfig>& data_keys() {
  using D = DataConfig;
  static const Section<D> section{"data", &RunConfig::data, {
      key("dir", &D::dir, optional_text(), "ImageFolder root holding <train_split>/ and <val_split>/ (or --data-dir)"),
      key("train_split", &D::train_split, text(), "folder of the training images under dir"),
      key("val_split", &D::val_split, text(), "folder of the validation images under dir"),
      key("workers", &D::workers, integer(1, 256), "decode threads"),
      key("mean", &D::mean, numbers(0), "normalization mean, one value per input channel (model.in_chans)"),
      key("std", &D::std, numbers(0, {[](double v) { return v > 0; }, "every value must be > 0"}),
          "normalization std, one value per input channel"),
      key("crop_pct", &D::crop_pct, number({[](double v) { return v > 0 && v <= 1; }, "must be in (0, 1]"}),
          "eval: resize shorter side to floor(image_size / crop_pct), center crop"),
      key("interpolation", &D::interpolation, choice({"nearest", "bilinear", "bicubic", "area", "lanczos"}),
          "resampling of every resize"),
      key("random_resized_crop", &D::random_resized_crop, boolean(),
          "train: RandomResizedCrop(image_size, scale, ratio); false = eval resize+crop"),
      key("scale", &D::scale, area_range(), "area fraction range [min, max] of the random crop"),
      key("ratio", &D::ratio, range(), "aspect ratio range [min, max] of the random crop"),
      key("random_crop_padding", &D::random_crop_padding, integer(0, 4096),
          "train: RandomCrop(image_size, padding=p) as torchvision (zero fill) after the eval resize+crop; 0 = off; "
          "needs random_resized_crop false"),
      key("hflip", &D::hflip, number({[](double v) { return v >= 0 && v <= 1; }, "is a probability in [0, 1]"}),
          "probability of a horizontal flip in training (0 = off), as timm"),
      key("auto_augment", &D::auto_augment, rand_augment_spec(),
          "train: RandAugment as timm's --aa, e.g. rand-m9-mstd0.5-inc1 (\"\" = off), after crop and flip"),
      key("reprob", &D::reprob, number({[](double v) { return v >= 0 && v <= 1; }, "is a probability in [0, 1]"}),
          "train: random erasing probability after normalisation (0 = off), as timm's --reprob"),
      key("remode", &D::remode, choice({"const", "rand", "pixel"}),
          "random erasing fill: const (the mean) | rand (a normal per channel) | pixel (a normal per value)"),
      key("recount", &D::recount, integer(1, 100), "random erasing: at most this many boxes per image (timm's --recount)"),
      key("max_pixels", &D::max_pixels, integer(1, kInt64Max),
          "images whose header claims more pixels are skipped (decompression bombs)"),
      key("repeated_aug", &D::repeated_aug, boolean(),
          "train: repeated augmentation as DeiT's RASampler: every image num_repeats times per epoch, each "
          "repeat augmented on its own and read by another rank; the epoch keeps its length (data/sampler.h)"),
      key("num_repeats", &D::num_repeats, integer(1, 64), "repeated_aug: copies of each image (DeiT: 3)"),
      key("jpeg_dct_scaling", &D::jpeg_dct_scaling,
          number({[](double v) { return v == 0 || (v >= 1 && v <= 64); }, "is 0 (off) or a gap in [1, 64]"}),
          "0 = off; g >= 1: decode a JPEG at 1/2, 1/4 or 1/8 size (libjpeg DCT scaling, as Pillow's draft) where the "
          "crop keeps g x the output size (2 recommended): faster on large photos, pixels close to Pillow's"),
  }};
  return section;
}

const Section<TrainConfig>& train_keys() {
  using T = TrainConfig;
  static const Section<T> section{"train", &RunConfig::train, {
      key("epochs", &T::epochs, integer(1, 1000000), "passes over the training split"),
      key("batch_size", &T::batch_size, integer(1, 1 << 20), "images per step (per rank in data-parallel runs)"),
      key("lr", &T::lr, number(kPositive), "peak learning rate, reached at the end of warmup"),
      key("min_lr", &T::min_lr, number(kNonNegative), "end of the cosine (at most lr)"),
      key("warmup_epochs", &T::warmup_epochs, number(kNonNegative),
          "may be fractional; 0 = no warmup; longer than epochs = warmup all run"),
      key("warmup_lr", &T::warmup_lr, number(kNonNegative), "learning rate at step 0"),
      key("weight_decay", &T::weight_decay, number(kNonNegative),
          "AdamW decoupled decay (not on biases, norms, tokens, pos_embed)"),
      key("betas", &T::betas, numbers(2, {[](double v) { return v >= 0 && v < 1; }, "each beta must be in [0, 1)"}),
          "AdamW [beta1, beta2]"),
      key("eps", &T::eps, number(kPositive), "AdamW epsilon"),
      key("clip_grad", &T::clip_grad, number({[](double v) { return v >= 0; }, "must be >= 0 (0 = off)"}),
          "global gradient-norm clip; 0 = off"),
      key("label_smoothing", &T::label_smoothing,
          number({[](double v) { return v >= 0 && v < 1; }, "must be in [0, 1)"}), "cross-entropy label smoothing"),
      key("mixup", &T::mixup, number({[](double v) { return v >= 0; }, "must be >= 0 (0 = off)"}),
          "Mixup Beta(alpha, alpha) alpha, 0 = off, as timm's --mixup (soft-target loss; train/mixup.h)"),
      key("cutmix", &T::cutmix, number({[](double v) { return v >= 0; }, "must be >= 0 (0 = off)"}),
          "CutMix Beta(alpha, alpha) alpha, 0 = off, as timm's --cutmix"),
      key("mixup_prob", &T::mixup_prob, number({[](double v) { return v >= 0 && v <= 1; }, "is a probability in [0, 1]"}),
          "probability of mixing a batch, pair or image (timm's --mixup-prob)"),
      key("mixup_switch_prob", &T::mixup_switch_prob,
          number({[](double v) { return v >= 0 && v <= 1; }, "is a probability in [0, 1]"}),
          "with both mixup and cutmix on: probability of CutMix (timm's --mixup-switch-prob)"),
      key("mixup_mode", &T::mixup_mode, choice({"batch", "pair", "elem"}),
          "one draw per batch | pair (image i and B-1-i) | elem (image), as timm's --mixup-mode"),
      key("drop_path", &T::drop_path, number({[](double v) { return v >= 0 && v < 1; }, "must be in [0, 1)"}),
          "stochastic depth rate as timm's --drop-path: block i drops each branch per image with probability "
          "drop_path x i / (depth - 1); 0 = off"),
      key("seed", &T::seed, integer(0, kInt64Max), "seeds the initialization, the shuffle and the augmentations"),
      key("eval_every", &T::eval_every, integer(1, kIntMax), "evaluate every N epochs (and after the last)"),
      key("log_every", &T::log_every, integer(1, kIntMax), "log a line every N steps"),
      key("max_nonfinite_steps", &T::max_nonfinite_steps, integer(0, kIntMax),
          "stop when more than this many steps in a row have a non-finite loss or gradient norm"),
      key("amp", &T::amp, boolean(),
          "mixed precision: linear layers on fp16 copies, dynamic loss scaling (train/loss_scaler.h)"),
      key("lr_scaling", &T::lr_scaling, choice({"none", "linear"}),
          "data-parallel runs: linear = lr x number of ranks (the linear scaling rule for the global batch "
          "of batch_size x ranks; min_lr and warmup_lr stay as given)"),
      key("model_ema", &T::model_ema, boolean(),
          "keep an exponential moving average of the weights, evaluated beside the model each epoch; "
          "best.safetensors holds the EMA, chosen by its val top-1 (timm's --model-ema)"),
      key("model_ema_decay", &T::model_ema_decay,
          number({[](double v) { return v >= 0 && v < 1; }, "must be in [0, 1)"}),
          "ema = decay x ema + (1 - decay) x weights after every applied step"),
      key("model_ema_warmup", &T::model_ema_warmup, boolean(),
          "the n-th update's decay is min(model_ema_decay, 1 - n^(-2/3)) (timm's ModelEmaV3 warmup)"),
      key("pretrained", &T::pretrained, optional_text(),
          "weights a new run starts from: a vkvit checkpoint, or timm:FILE / torchvision:FILE as vkvit convert "
          "reads them; the head is re-initialised when the class count differs (vkvit train --pretrained)"),
      key("accum_steps", &T::accum_steps, integer(1, 1 << 16),
          "gradient accumulation: micro-batches of batch_size per optimizer step (effective batch "
          "accum_steps x batch_size); steps, lr schedule and checkpoints count optimizer steps"),
      key("layer_decay", &T::layer_decay, number({[](double v) { return v >= 0 && v <= 1; }, "must be in [0, 1]"}),
          "layer-wise lr decay as timm's --layer-decay (0 = off; fine-tuning uses 0.65-0.75): lr x "
          "layer_decay^(depth + 1 - layer id), head 1, final norm with the last block, embeddings 0"),
      key("freeze", &T::freeze, patterns(),
          "tensors left untrained, as fnmatch patterns in order, !pattern unfreezes: [\"*\", \"!head.*\"] "
          "is a linear probe, [\"patch_embed.*\", \"cls_token\", \"pos_embed\", \"blocks.[0-5].*\"] the stem and six blocks"),
  }};
  return section;
}

const Section<OutputConfig>& output_keys() {
  static const Section<OutputConfig> section{"output", &RunConfig::output, {
      key("dir", &OutputConfig::dir, text(), "runs are created under it as <YYYYmmdd-HHMMSS>-<config name>/"),
  }};
  return section;
}

}  // namespace vkvit::train

#include "train/loader_config.h"

namespace vkvit::train {

// Written out by hand rather than walked from the key tables (config_keys.cpp): the loader's
// settings have their own names and types (floats, [min, max] pairs split in two), and only the keys
// the loader itself needs appear here.
data::LoaderConfig loader_config(const RunConfig& cfg, bool train) {
  data::LoaderConfig lc;
  lc.batch_size = static_cast<uint32_t>(cfg.train.batch_size);
  lc.workers = static_cast<uint32_t>(cfg.data.workers);
  lc.train = train;
  lc.seed = cfg.train.seed;
  lc.patch_size = cfg.model.patch_size;
  data::TransformConfig& t = lc.transform;
  t.image_size = cfg.model.image_size;
  t.channels = cfg.model.in_chans;
  t.mean.assign(cfg.data.mean.begin(), cfg.data.mean.end());
  t.std.assign(cfg.data.std.begin(), cfg.data.std.end());
  t.crop_pct = static_cast<float>(cfg.data.crop_pct);
  t.interpolation = cfg.data.interpolation;
  t.random_resized_crop = cfg.data.random_resized_crop;
  t.scale_min = static_cast<float>(cfg.data.scale[0]);
  t.scale_max = static_cast<float>(cfg.data.scale[1]);
  t.ratio_min = static_cast<float>(cfg.data.ratio[0]);
  t.ratio_max = static_cast<float>(cfg.data.ratio[1]);
  t.crop_padding = cfg.data.random_crop_padding;
  t.hflip = static_cast<float>(cfg.data.hflip);
  t.auto_augment = cfg.data.auto_augment;
  t.reprob = static_cast<float>(cfg.data.reprob);
  t.remode = cfg.data.remode;
  t.recount = cfg.data.recount;
  t.jpeg_dct_scaling = cfg.data.jpeg_dct_scaling;
  lc.limits.max_pixels = cfg.data.max_pixels;
  lc.repeated_aug = train && cfg.data.repeated_aug;
  lc.num_repeats = static_cast<uint32_t>(cfg.data.num_repeats);
  return lc;
}

}  // namespace vkvit::train

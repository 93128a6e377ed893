// `vkvit explain`: where a checkpoint's attention looks, per image. Each image goes through the
// same decode (EXIF orientation included) and eval transform as `vkvit predict`, one forward pass
// keeps every attention block's probabilities (model::Vit with keep_attention_probs), and
// model/attention_rollout turns them into a map over the patch grid. Writes per image
// <stem>_<method>.png (the map as a heatmap over the original image, with the top-k labels) and
// <stem>_<method>.npy (the raw map, float32 (grid_h, grid_w)); one line per image on stdout.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "base/error.h"
#include "base/log.h"
#include "cli/commands.h"
#include "data/decode.h"
#include "data/patchify.h"
#include "data/transform.h"
#include "model/attention_rollout.h"
#include "model/vit.h"
#include "train/checkpoint.h"
#include "train/metrics.h"
#include "train/evaluate.h"
#include "train/loader_config.h"
#include "vk/recorder.h"

namespace vkvit::cli {

namespace fs = std::filesystem;

namespace {

struct ExplainArgs {
  std::string checkpoint, output = "explain", method = "rollout";
  int topk = 5;
  std::vector<std::string> paths;
};

// Images per forward pass: their decoded originals stay in memory until their files are written,
// and explain usually sees a handful of images, so a small batch costs nothing.
constexpr uint32_t kBatch = 16;

// NumPy's .npy format, version 1.0 (numpy.lib.format): magic "\x93NUMPY", version bytes 1 0, a
// little-endian uint16 header length, then an ASCII dict padded with spaces and ended by '\n' so
// that the data starts on a multiple of 64 bytes, then the data in C order. Values are written
// byte by byte as little-endian float32 ('<f4') whatever the host's byte order.
void write_npy(const std::string& path, const std::vector<float>& values, int rows, int cols) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "), }";
  const size_t prefix = 10;  // magic (6) + version (2) + header length (2)
  header.append((64 - (prefix + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string bytes = "\x93NUMPY";
  bytes += '\x01';
  bytes += '\x00';
  bytes += char(header.size() & 0xff);
  bytes += char(header.size() >> 8);
  bytes += header;
  for (float v : values) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    for (int i = 0; i < 4; ++i) bytes += char((bits >> (8 * i)) & 0xff);
  }
  std::ofstream out(path, std::ios::binary);
  if (!(out.write(bytes.data(), std::streamsize(bytes.size())) && out.flush()))
    throw Error(path + ": cannot write the map file");
}

// The map as a JET heatmap blended over the original image, in BGR for imwrite.
// The map covers the eval transform's center crop, which is `window` of the original image
// (data::eval_crop_window: fractional source pixels). Each original pixel samples the grid
// bilinearly at its centre's place in that window: centre (px + 0.5) is at
// c = (px + 0.5 - window.x) / window.width of the crop's width, i.e. grid position c * grid_w,
// where cell k's centre sits at k + 0.5 (clamped to the outer cells' centres at the edges).
// Pixels whose centre lies outside the window were cut off before the model saw the image: they
// keep the image, darkened, without heat. Colours span the map's own min..max.
cv::Mat heatmap_overlay(const cv::Mat& rgb8, const data::CropWindow& window, const std::vector<double>& map,
                        int grid_h, int grid_w) {
  const int W = rgb8.cols, H = rgb8.rows;
  const auto [lo_it, hi_it] = std::minmax_element(map.begin(), map.end());
  const double lo = *lo_it, range = *hi_it - *lo_it;
  struct Axis {
    std::vector<int> i0, i1;
    std::vector<double> f;
    std::vector<char> inside;
  };
  auto axis = [](int pixels, double start, double length, int cells) {
    Axis a;
    for (int p = 0; p < pixels; ++p) {
      const double c = (p + 0.5 - start) / length;
      const double u = std::clamp(c * cells - 0.5, 0.0, double(cells - 1));
      const int i0 = std::min(int(u), cells - 1);
      a.i0.push_back(i0);
      a.i1.push_back(std::min(i0 + 1, cells - 1));
      a.f.push_back(u - i0);
      a.inside.push_back(c >= 0.0 && c < 1.0);
    }
    return a;
  };
  const Axis ax = axis(W, window.x, window.width, grid_w), ay = axis(H, window.y, window.height, grid_h);
  cv::Mat heat(H, W, CV_8U, cv::Scalar(0));
  for (int y = 0; y < H; ++y) {
    const double* r0 = &map[size_t(ay.i0[y]) * grid_w];
    const double* r1 = &map[size_t(ay.i1[y]) * grid_w];
    uint8_t* dst = heat.ptr<uint8_t>(y);
    for (int x = 0; x < W; ++x) {
      const double top = r0[ax.i0[x]] + ax.f[x] * (r0[ax.i1[x]] - r0[ax.i0[x]]);
      const double bottom = r1[ax.i0[x]] + ax.f[x] * (r1[ax.i1[x]] - r1[ax.i0[x]]);
      const double v = top + ay.f[y] * (bottom - top);
      // A flat map (all patches equal) has no hot spot: it shows as the coldest colour.
      dst[x] = cv::saturate_cast<uint8_t>(range > 0 ? 255.0 * (v - lo) / range : 0.0);
    }
  }
  cv::Mat colour, bgr;
  cv::applyColorMap(heat, colour, cv::COLORMAP_JET);
  cv::cvtColor(rgb8, bgr, rgb8.channels() == 1 ? cv::COLOR_GRAY2BGR : cv::COLOR_RGB2BGR);
  for (int y = 0; y < H; ++y) {
    uint8_t* d = bgr.ptr<uint8_t>(y);
    const uint8_t* c = colour.ptr<uint8_t>(y);
    for (int x = 0; x < W; ++x)
      for (int k = 0; k < 3; ++k) {
        const int i = x * 3 + k;
        d[i] = ay.inside[y] && ax.inside[x] ? uint8_t((d[i] + c[i] + 1) / 2) : uint8_t(d[i] / 2);
      }
  }
  return bgr;
}

// The top-k lines in the top-left corner, white on dark boxes, sized to the image. They may take
// the top third of the image at most, so that the map stays visible: lines that do not fit are
// left out (a 28 px image gets none; stdout names the top-1 for every image). Returns the lines
// drawn. OpenCV's Hershey fonts draw ASCII only: other characters of a label show as '?'.
size_t draw_labels(cv::Mat& image, const std::vector<std::string>& lines) {
  const double scale = std::clamp(std::min(image.cols, image.rows) / 640.0, 0.35, 1.5);
  const int thickness = std::max(1, int(std::lround(scale * 1.5)));
  const int pad = std::max(1, int(std::lround(4 * scale)));
  int y = 0;
  size_t drawn = 0;
  for (const std::string& line : lines) {
    int baseline = 0;
    const cv::Size size = cv::getTextSize(line, cv::FONT_HERSHEY_SIMPLEX, scale, thickness, &baseline);
    const int w = size.width + 2 * pad, h = size.height + baseline + 2 * pad;
    if (w > image.cols || y + h > image.rows / 3) break;
    cv::rectangle(image, cv::Rect(0, y, w, h), cv::Scalar(32, 32, 32), cv::FILLED);
    cv::putText(image, line, cv::Point(pad, y + pad + size.height), cv::FONT_HERSHEY_SIMPLEX, scale,
                cv::Scalar(255, 255, 255), thickness, cv::LINE_AA);
    y += h;
    ++drawn;
  }
  return drawn;
}

std::string format_prob(double p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", p);
  return buf;
}

std::string list_blocks(const std::vector<int>& blocks) {
  std::string s;
  for (size_t i = 0; i < blocks.size(); ++i) s += (i ? ", " : "") + std::to_string(blocks[i]);
  return s;
}

// The notes a user needs to read the map right, once per run.
void explain_notes(const model::VitConfig& cfg, const model::AttentionMapPlan& plan) {
  if (!plan.skipped.empty())
    log_warn("block(s) " + list_blocks(plan.skipped) +
             " are global-filter layers, which have no attention map: the rollout runs over the attention block(s) " +
             list_blocks(plan.layers) + " only");
  if (plan.kind == model::AttentionMapPlan::Kind::last_layer && plan.layers[0] != cfg.depth - 1)
    log_warn("the last block is a global-filter layer (no attention map): last-layer shows block " +
             std::to_string(plan.layers[0]) + ", the last attention block");
  if (cfg.pool == "mean")
    log_warn("this model classifies from the mean of the patch tokens (pool: mean), not from the cls token: the map "
             "shows the cls token's attention, which the prediction reads only through the other tokens");
}

struct Loaded {
  std::string path;
  cv::Mat rgb8;  // the decoded original, as predict decodes it
};

void create_output_folder(const std::string& folder) {
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec || !fs::is_directory(folder))
    throw Error(folder + ": cannot create the output folder" + (ec ? ": " + ec.message() : std::string()));
}

// The checkpoint's model with its attention probabilities kept, run one batch of images at a time,
// and the outputs it writes for each image.
class Explainer {
 public:
  Explainer(const GlobalOptions& global, const ExplainArgs& args, const train::CheckpointMeta& meta,
            const model::VitConfig& vcfg, const model::AttentionMapPlan& plan, uint32_t batch_max)
      : args_(args),
        meta_(meta),
        vcfg_(vcfg),
        plan_(plan),
        lc_(train::loader_config(meta.config, false)),  // predict's eval transform, patch size and decode limits
        per_image_(uint64_t(vcfg.num_patches()) * vcfg.patch_dim()),
        batch_max_(batch_max),
        ctx_(global.context_options()),
        vit_(ctx_, vcfg, batch_max, /*amp=*/false, /*keep_attention_probs=*/true),
        patches_(batch_max * per_image_) {
    train::load_checkpoint_weights(args.checkpoint, vit_);
  }

  // Decode + eval transform + patchify of the files from `next` on until the batch is full, as the
  // loader's eval path; a file that fails is a counted skip naming it, as in predict.
  std::vector<Loaded> load_batch(const std::vector<std::string>& files, size_t& next) {
    std::vector<Loaded> items;
    while (items.size() < batch_max_ && next < files.size()) {
      const std::string& path = files[next++];
      try {
        cv::Mat rgb8 = data::decode_image(path, lc_.transform.channels, lc_.limits);
        const cv::Mat image = data::transform_eval(rgb8, lc_.transform);
        data::patchify(image, lc_.patch_size, patches_.data() + items.size() * per_image_);
        items.push_back({path, std::move(rgb8)});
      } catch (const std::exception& e) {
        const std::string what = e.what();
        log_warn("skipping " + (what.compare(0, path.size(), path) == 0 ? what : path + ": " + what));
        ++skipped_;
      }
    }
    return items;
  }

  // One forward pass over the first n loaded images; keeps their logits and the attention
  // probabilities of the plan's layers.
  void forward(uint32_t n) {
    const uint32_t H = vcfg_.heads, K = vcfg_.num_classes;
    const uint64_t NN = uint64_t(vcfg_.tokens()) * vcfg_.tokens();
    batch_ = n;
    ctx_.upload(vit_.patches_input().slice(0, n * per_image_), patches_.data(), n * per_image_ * 4);
    vk::Recorder rec(ctx_);
    vit_.forward(rec, n, /*for_backward=*/false);
    rec.submit_and_wait();
    logits_.resize(size_t(n) * K);
    ctx_.download(vit_.logits().slice(0, uint64_t(n) * K), logits_.data(), logits_.size() * 4);
    // probs: (layer of the plan, image, H, N, N)
    probs_.resize(plan_.layers.size() * n * H * NN);
    for (size_t i = 0; i < plan_.layers.size(); ++i)
      ctx_.download(vit_.attention_probs(plan_.layers[i]).slice(0, uint64_t(n) * H * NN),
                    probs_.data() + i * n * H * NN, uint64_t(n) * H * NN * 4);
  }

  // The heatmap picture and the raw map of image b of the last forward pass, and its stdout line.
  void write_outputs(const Loaded& item, uint32_t b) {
    const std::vector<double> map = attention_map_of(b);
    const int K = vcfg_.num_classes, k = std::min<int>(args_.topk, K), grid = vcfg_.grid();
    // The top k as predict reports them.
    const std::vector<double> p = train::softmax(logits_.data() + size_t(b) * K, uint32_t(K));
    const std::vector<uint32_t> order = train::top_classes(p, uint32_t(std::max(k, 1)));
    std::vector<std::string> lines;
    for (int i = 0; i < k; ++i) lines.push_back(meta_.classes[order[i]] + " " + format_prob(p[order[i]]));

    const std::string base = output_base(item.path);
    const std::string png = base + ".png", npy = base + ".npy";
    const data::CropWindow window = data::eval_crop_window(item.rgb8.cols, item.rgb8.rows, lc_.transform);
    cv::Mat picture = heatmap_overlay(item.rgb8, window, map, grid, grid);
    if (draw_labels(picture, lines) < lines.size() && !told_small_) {
      told_small_ = true;
      log_warn(item.path + ": the image is too small for all " + std::to_string(lines.size()) +
               " labels; its heatmap (and those of other small images) carries fewer or none");
    }
    write_png(png, picture);
    write_npy(npy, std::vector<float>(map.begin(), map.end()), grid, grid);
    std::printf("%s: %s %s -> %s %s\n", item.path.c_str(), meta_.classes[order[0]].c_str(),
                format_prob(p[order[0]]).c_str(), png.c_str(), npy.c_str());
    std::fflush(stdout);
    ++explained_;
  }

  uint64_t explained() const { return explained_; }
  uint64_t skipped() const { return skipped_; }

 private:
  std::vector<double> attention_map_of(uint32_t b) const {
    const uint32_t H = vcfg_.heads, N = vcfg_.tokens();
    const uint64_t NN = uint64_t(N) * N;
    std::vector<const float*> layer_probs;
    for (size_t i = 0; i < plan_.layers.size(); ++i) layer_probs.push_back(probs_.data() + (i * batch_ + b) * H * NN);
    return model::attention_map(plan_, layer_probs, H, N);
  }

  // --output/<stem>_<method tag>, without the extension; a second image with the same stem gets
  // "-2", ...
  std::string output_base(const std::string& image_path) {
    std::string stem = fs::path(image_path).stem().string();
    if (const int seen = stems_used_[stem]++) stem += "-" + std::to_string(seen + 1);
    return (fs::path(args_.output) / (stem + "_" + plan_.file_tag)).string();
  }

  static void write_png(const std::string& png, const cv::Mat& picture) {
    bool written = false;
    try {
      written = cv::imwrite(png, picture);
    } catch (const cv::Exception&) {
    }
    if (!written) throw Error(png + ": cannot write the heatmap");
  }

  const ExplainArgs& args_;
  const train::CheckpointMeta& meta_;
  const model::VitConfig& vcfg_;
  const model::AttentionMapPlan& plan_;
  const data::LoaderConfig lc_;
  const uint64_t per_image_;  // patch floats per image
  const uint32_t batch_max_;
  vk::Context ctx_;
  model::Vit vit_;
  std::vector<float> patches_, logits_, probs_;
  uint32_t batch_ = 0;  // images in the last forward pass
  std::map<std::string, int> stems_used_;
  uint64_t explained_ = 0, skipped_ = 0;
  bool told_small_ = false;  // the note about labels left out, once
};

void run_explain(const ExplainArgs& args, const GlobalOptions& global) {
  const train::CheckpointMeta meta = train::read_checkpoint_meta(args.checkpoint);
  const model::VitConfig vcfg = train::to_vit_config(meta.config.model);
  const model::AttentionMapPlan plan = model::plan_attention_map(vcfg, args.method);
  const std::vector<std::string> files = collect_images(args.paths);
  create_output_folder(args.output);
  explain_notes(vcfg, plan);
  Explainer explainer(global, args, meta, vcfg, plan, uint32_t(std::min<size_t>(files.size(), kBatch)));
  size_t next_file = 0;
  while (next_file < files.size()) {
    const std::vector<Loaded> items = explainer.load_batch(files, next_file);
    if (items.empty()) continue;
    explainer.forward(uint32_t(items.size()));
    for (uint32_t b = 0; b < items.size(); ++b) explainer.write_outputs(items[b], b);
  }
  if (explainer.explained() == 0)
    throw Error("none of the " + std::to_string(files.size()) + " image file(s) could be read (each is named above)");
  log(explainer.skipped() ? LogLevel::warn : LogLevel::info,
      std::to_string(explainer.explained()) + " images explained, " + std::to_string(explainer.skipped()) +
          " skipped (unreadable)");
}

}  // namespace

void add_explain_command(CLI::App& app, GlobalOptions& global) {
  auto args = std::make_shared<ExplainArgs>();
  auto* cmd = app.add_subcommand("explain", "Show where a checkpoint's attention looks: heatmaps over images");
  cmd->add_option("--checkpoint", args->checkpoint, "vkvit checkpoint (.safetensors)")->required();
  cmd->add_option("--method", args->method,
                  "rollout (attention rollout over all attention blocks), last-layer (the last attention block, "
                  "heads averaged) or head=L:H (block L, head H, 0-based)")
      ->capture_default_str();
  cmd->add_option("--output", args->output, "Folder for the .png and .npy files (created if missing)")
      ->capture_default_str();
  cmd->add_option("--topk", args->topk, "Labels drawn on each heatmap")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("paths", args->paths, "Image files or folders (searched recursively)")->required();
  cmd->footer(
      "Writes per image, into --output: <stem>_<method>.png, the map as a heatmap over the image (same size as\n"
      "the image; the part the eval transform crops away is darkened) with the top-k labels, and\n"
      "<stem>_<method>.npy, the raw map over the patch grid (float32, (grid_h, grid_w)): the cls token's row\n"
      "over the patches. <method> is rollout, last-layer or head-L<L>-H<H>. Prints one line per image:\n"
      "  IMAGE: TOP1_LABEL PROBABILITY -> PNG NPY\n"
      "Example:\n"
      "  vkvit explain --checkpoint runs/x/best.safetensors --method rollout --output maps/ photos/cat.jpg");
  cmd->callback([args, &global] { run_explain(*args, global); });
}

}  // namespace vkvit::cli

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
  cmd->callback([args, &global] {
    const train::CheckpointMeta meta = train::read_checkpoint_meta(args->checkpoint);
    const model::VitConfig vcfg = train::to_vit_config(meta.config.model);
    const model::AttentionMapPlan plan = model::plan_attention_map(vcfg, args->method);
    const std::vector<std::string> files = collect_images(args->paths);
    std::error_code ec;
    fs::create_directories(args->output, ec);
    if (ec || !fs::is_directory(args->output))
      throw Error(args->output + ": cannot create the output folder" + (ec ? ": " + ec.message() : std::string()));
    explain_notes(vcfg, plan);

    // The transform, patch size and decode limits predict's loader uses (eval geometry).
    const data::LoaderConfig lc = train::loader_config(meta.config, false);
    const uint32_t H = vcfg.heads, N = vcfg.tokens(), K = vcfg.num_classes;
    const int grid = vcfg.grid();
    const uint64_t per_image = uint64_t(vcfg.num_patches()) * vcfg.patch_dim(), NN = uint64_t(N) * N;
    const int k = std::min<int>(args->topk, int(K));

    vk::Context ctx(global.context_options());
    const uint32_t batch_max = uint32_t(std::min<size_t>(files.size(), kBatch));
    model::Vit vit(ctx, vcfg, batch_max, /*amp=*/false, /*keep_attention_probs=*/true);
    train::load_checkpoint_weights(args->checkpoint, vit);

    std::map<std::string, int> stems_used;  // a second image with the same stem gets "-2", ...
    std::vector<float> patches(batch_max * per_image), logits, probs;
    uint64_t explained = 0, skipped = 0;
    bool told_small = false;  // the note about labels left out, once
    size_t next_file = 0;
    while (next_file < files.size()) {
      // Decode + eval transform + patchify, as the loader's eval path; a file that fails is a
      // counted skip naming it, as in predict.
      std::vector<Loaded> items;
      while (items.size() < batch_max && next_file < files.size()) {
        const std::string& path = files[next_file++];
        try {
          cv::Mat rgb8 = data::decode_image(path, lc.transform.channels, lc.limits);
          const cv::Mat image = data::transform_eval(rgb8, lc.transform);
          data::patchify(image, lc.patch_size, patches.data() + items.size() * per_image);
          items.push_back({path, std::move(rgb8)});
        } catch (const std::exception& e) {
          const std::string what = e.what();
          log_warn("skipping " + (what.compare(0, path.size(), path) == 0 ? what : path + ": " + what));
          ++skipped;
        }
      }
      if (items.empty()) continue;
      const uint32_t n = uint32_t(items.size());
      ctx.upload(vit.patches_input().slice(0, n * per_image), patches.data(), n * per_image * 4);
      vk::Recorder rec(ctx);
      vit.forward(rec, n, /*for_backward=*/false);
      rec.submit_and_wait();
      logits.resize(size_t(n) * K);
      ctx.download(vit.logits().slice(0, uint64_t(n) * K), logits.data(), logits.size() * 4);
      // probs: (layer of the plan, image, H, N, N)
      probs.resize(plan.layers.size() * n * H * NN);
      for (size_t i = 0; i < plan.layers.size(); ++i)
        ctx.download(vit.attention_probs(plan.layers[i]).slice(0, uint64_t(n) * H * NN),
                     probs.data() + i * n * H * NN, uint64_t(n) * H * NN * 4);

      for (uint32_t b = 0; b < n; ++b) {
        std::vector<const float*> layer_probs;
        for (size_t i = 0; i < plan.layers.size(); ++i) layer_probs.push_back(probs.data() + (i * n + b) * H * NN);
        const std::vector<double> map = model::attention_map(plan, layer_probs, H, N);

        // The top k as predict reports them.
        const std::vector<double> p = train::softmax(logits.data() + size_t(b) * K, K);
        const std::vector<uint32_t> order = train::top_classes(p, uint32_t(std::max(k, 1)));
        std::vector<std::string> lines;
        for (int i = 0; i < k; ++i) lines.push_back(meta.classes[order[i]] + " " + format_prob(p[order[i]]));

        const Loaded& item = items[b];
        std::string stem = fs::path(item.path).stem().string();
        if (const int seen = stems_used[stem]++) stem += "-" + std::to_string(seen + 1);
        const std::string base = (fs::path(args->output) / (stem + "_" + plan.file_tag)).string();
        const std::string png = base + ".png", npy = base + ".npy";
        const data::CropWindow window = data::eval_crop_window(item.rgb8.cols, item.rgb8.rows, lc.transform);
        cv::Mat picture = heatmap_overlay(item.rgb8, window, map, grid, grid);
        if (draw_labels(picture, lines) < lines.size() && !told_small) {
          told_small = true;
          log_warn(item.path + ": the image is too small for all " + std::to_string(lines.size()) +
                   " labels; its heatmap (and those of other small images) carries fewer or none");
        }
        bool written = false;
        try {
          written = cv::imwrite(png, picture);
        } catch (const cv::Exception&) {
        }
        if (!written) throw Error(png + ": cannot write the heatmap");
        write_npy(npy, std::vector<float>(map.begin(), map.end()), grid, grid);
        std::printf("%s: %s %s -> %s %s\n", item.path.c_str(), meta.classes[order[0]].c_str(),
                    format_prob(p[order[0]]).c_str(), png.c_str(), npy.c_str());
        std::fflush(stdout);
        ++explained;
      }
    }
    if (explained == 0)
      throw Error("none of the " + std::to_string(files.size()) + " image file(s) could be read (each is named above)");
    log(skipped ? LogLevel::warn : LogLevel::info,
        std::to_string(explained) + " images explained, " + std::to_string(skipped) + " skipped (unreadable)");
  });
}

}  // namespace vkvit::cli

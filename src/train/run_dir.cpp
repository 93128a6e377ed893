// Run folder creation and summary.csv appends.
#include "train/run_dir.h"

#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "base/error.h"
#include "model/safetensors.h"

namespace vkvit::train {

namespace fs = std::filesystem;

const char* const RunDir::kSummaryHeader =
    "epoch,train_loss,val_loss,val_top1,val_top5,lr,img_per_s,skipped_files";
const char* const RunDir::kSummaryHeaderEma =
    "epoch,train_loss,val_loss,val_top1,val_top5,lr,img_per_s,skipped_files,ema_val_loss,ema_val_top1,ema_val_top5";

namespace {

// Folder names keep to a portable set: a config named "my run/1" must not create nested folders.
std::string safe_name(const std::string& name) {
  std::string s;
  for (char c : name) s += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  return s.empty() ? "run" : s;
}

void make_parents(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(dir.string() + ": cannot create the output folder: " + ec.message());
}

// Creates `dir` itself; false when it already exists.
bool make_new(const fs::path& dir) {
  std::error_code ec;
  if (fs::create_directory(dir, ec)) return true;
  if (ec) throw Error(dir.string() + ": cannot create the run folder: " + ec.message());
  return false;
}

std::string cell(double v) {
  if (std::isnan(v)) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

}  // namespace

RunDir RunDir::create(const RunConfig& cfg, const std::string& explicit_dir, std::time_t now) {
  fs::path dir;
  if (!explicit_dir.empty()) {
    dir = explicit_dir;
    if (dir.has_parent_path()) make_parents(dir.parent_path());
    if (!make_new(dir)) {
      std::error_code ec;
      if (!fs::is_directory(dir, ec))
        throw Error(dir.string() + ": the output path exists and is not a folder");
      if (!fs::is_empty(dir, ec))
        throw Error(dir.string() + ": the output folder is not empty; give another --output, or --resume to continue that run");
    }
  } else {
    if (now == 0) now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    const fs::path root = cfg.output.dir;
    make_parents(root);
    const std::string base = std::string(stamp) + "-" + safe_name(cfg.name);
    dir = root / base;
    for (int i = 2; !make_new(dir); ++i) {
      if (i > 1000) throw Error((root / base).string() + ": cannot find a free run folder name");
      dir = root / (base + "-" + std::to_string(i));
    }
  }
  RunDir run(dir.string());
  run.write_config(cfg);
  return run;
}

RunDir RunDir::open(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(dir + ": not a run folder (no such folder)");
  return RunDir(dir);
}

std::string RunDir::file(const std::string& name) const { return (fs::path(path_) / name).string(); }

void RunDir::write_config(const RunConfig& cfg) const { cfg.save(file("config.yaml")); }

void RunDir::append_summary(const SummaryRow& r) const {
  const std::string path = file("summary.csv");
  const char* const header = r.has_ema ? kSummaryHeaderEma : kSummaryHeader;
  std::error_code ec;
  const bool fresh = !fs::exists(path, ec) || fs::file_size(path, ec) == 0;
  if (!fresh) {
    std::ifstream in(path);
    std::string first;
    std::getline(in, first);
    if (first != header)
      throw Error(path + ": its header is not vkvit's (" + std::string(header) +
                  "); move it away to continue this run");
  }
  std::FILE* f = std::fopen(path.c_str(), "a");
  if (!f) throw Error(path + ": cannot open for appending: " + std::strerror(errno));
  std::string line;
  if (fresh) line += std::string(header) + "\n";
  line += std::to_string(r.epoch) + "," + cell(r.train_loss) + "," + cell(r.val_loss) + "," + cell(r.val_top1) + "," +
          cell(r.val_top5) + "," + cell(r.lr) + "," + cell(r.img_per_s) + "," + std::to_string(r.skipped_files);
  if (r.has_ema) line += "," + cell(r.ema_val_loss) + "," + cell(r.ema_val_top1) + "," + cell(r.ema_val_top5);
  line += "\n";
  bool ok = std::fwrite(line.data(), 1, line.size(), f) == line.size() && std::fflush(f) == 0 && fsync(fileno(f)) == 0;
  const int err = errno;
  if (std::fclose(f) != 0) ok = false;
  if (!ok) throw Error(path + ": cannot append a row: " + std::strerror(err ? err : EIO));
}

void RunDir::append_step(const StepRow& r) const {
  const std::string path = file("steps.csv");
  std::error_code ec;
  const bool fresh = !fs::exists(path, ec) || fs::file_size(path, ec) == 0;
  std::FILE* f = std::fopen(path.c_str(), "a");
  if (!f) throw Error(path + ": cannot open for appending: " + std::strerror(errno));
  // %.9g: every float value reads back exactly.
  const int ok = std::fprintf(f, "%s%llu,%llu,%.9g,%.9g,%.9g\n", fresh ? "step,epoch,loss,lr,grad_norm\n" : "",
                              static_cast<unsigned long long>(r.step), static_cast<unsigned long long>(r.epoch), r.loss,
                              r.lr, r.grad_norm);
  const int err = errno;
  if (std::fclose(f) != 0 || ok < 0) throw Error(path + ": cannot append a row: " + std::strerror(err ? err : EIO));
}

namespace {
// Keeps the header and the data rows whose first cell (a 1-based counter) is at most `last`.
void keep_rows_up_to(const std::string& path, uint64_t last) {
  std::ifstream in(path);
  if (!in) return;
  std::string line, kept;
  bool dropped = false, header = true;
  while (std::getline(in, line)) {
    if (header || std::strtoull(line.c_str(), nullptr, 10) <= last) kept += line + "\n";
    else dropped = true;
    header = false;
  }
  in.close();
  if (!dropped) return;
  model::write_file_atomic(path, [&](std::FILE* f) { return std::fwrite(kept.data(), 1, kept.size(), f) == kept.size(); });
}
}  // namespace

void RunDir::rewind(uint64_t step, uint64_t epochs_done) const {
  keep_rows_up_to(file("steps.csv"), step);
  keep_rows_up_to(file("summary.csv"), epochs_done);
}

}  // namespace vkvit::train

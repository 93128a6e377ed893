// ImageFolder scan. The walk is hand-rolled on std::filesystem::directory_iterator so that symlinks
// can be followed (as torchvision's os.walk(followlinks=True)) while a folder already visited,
// identified by (device, inode), is never entered again: a symlink loop ends instead of hanging.
#include "data/image_folder.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <set>
#include <utility>

#include "base/error.h"
#include "data/utf8.h"

namespace fs = std::filesystem;

namespace vkvit::data {
namespace {

const char* const kExtensions[] = {"jpg", "jpeg", "png", "bmp", "webp", "tif", "tiff", "pgm", "ppm"};
const char* const kExtensionList = "jpg, jpeg, png, bmp, webp, tif, tiff, pgm, ppm";

bool hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

using DirId = std::pair<uint64_t, uint64_t>;

// stat() follows symlinks: the identity of the folder a path finally points at.
bool dir_id(const fs::path& p, DirId& id) {
  struct stat st;
  if (::stat(p.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return false;
  id = {uint64_t(st.st_dev), uint64_t(st.st_ino)};
  return true;
}

void walk(const fs::path& dir, std::set<DirId>& visited, std::vector<std::string>& out) {
  DirId id;
  if (!dir_id(dir, id) || !visited.insert(id).second) return;
  std::error_code ec;
  fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  if (ec) throw Error("cannot read folder '" + dir.string() + "': " + ec.message());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) throw Error("cannot read folder '" + dir.string() + "': " + ec.message());
    const fs::path& p = it->path();
    if (hidden(p)) continue;
    std::error_code sec;
    const fs::file_status st = fs::status(p, sec);  // follows symlinks; a dangling or looping link fails
    if (sec) {
      // A link to nothing that is named like an image is kept as a sample: its decode fails and
      // the loader counts and names the skip, rather than the image vanishing without a word.
      std::error_code lec;
      if (fs::is_symlink(fs::symlink_status(p, lec)) && !lec && is_image_extension(p.filename().string()))
        out.push_back(p.string());
      continue;
    }
    if (fs::is_directory(st)) {
      walk(p, visited, out);
    } else if (fs::is_regular_file(st) && is_image_extension(p.filename().string())) {
      out.push_back(p.string());
    }
  }
}

}  // namespace

bool is_image_extension(const std::string& filename) {
  const size_t dot = filename.rfind('.');
  if (dot == std::string::npos || dot == 0) return false;
  std::string ext = filename.substr(dot + 1);
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  for (const char* e : kExtensions)
    if (ext == e) return true;
  return false;
}

ImageFolder ImageFolder::scan(const std::string& root) {
  ImageFolder folder;
  folder.root = root;
  std::error_code ec;
  const fs::file_status st = fs::status(root, ec);
  if (ec || !fs::exists(st))
    throw Error("dataset folder '" + root + "' does not exist; point --data-dir at a folder laid out as <root>/<class>/<image>");
  if (!fs::is_directory(st))
    throw Error("dataset path '" + root + "' is not a folder; point --data-dir at a folder laid out as <root>/<class>/<image>");

  fs::directory_iterator it(root, fs::directory_options::skip_permission_denied, ec);
  if (ec) throw Error("cannot read dataset folder '" + root + "': " + ec.message());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) throw Error("cannot read dataset folder '" + root + "': " + ec.message());
    if (hidden(it->path())) continue;
    std::error_code sec;
    if (fs::is_directory(fs::status(it->path(), sec)) && !sec) folder.classes.push_back(it->path().filename().string());
  }
  // std::string compares as unsigned char: byte order, the order of Python's sorted() on names.
  std::sort(folder.classes.begin(), folder.classes.end());
  if (folder.classes.empty())
    throw Error("dataset folder '" + root + "' has no class folders; expected <root>/<class>/<image> (hidden folders are ignored)");
  // Class names go into every checkpoint as JSON text, which must be UTF-8: refuse another
  // encoding now rather than at the end of the first epoch (image file names may be anything).
  for (const std::string& c : folder.classes)
    if (!valid_utf8(c))
      throw Error("class folder '" + (fs::path(root) / c).string() +
                  "' has a name that is not UTF-8 (checkpoints store class names as UTF-8); rename the folder");

  for (uint32_t label = 0; label < folder.classes.size(); ++label) {
    const fs::path class_dir = fs::path(root) / folder.classes[label];
    std::vector<std::string> files;
    std::set<DirId> visited;
    walk(class_dir, visited, files);
    if (files.empty())
      throw Error("class folder '" + class_dir.string() + "' has no images (" + kExtensionList +
                  "; hidden files ignored); add images or remove the folder");
    std::sort(files.begin(), files.end());
    for (std::string& f : files) folder.samples.push_back({std::move(f), label});
  }
  return folder;
}

}  // namespace vkvit::data

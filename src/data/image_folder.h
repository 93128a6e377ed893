// ImageFolder: the timm/torchvision dataset layout root/<class>/<image>. Classes are the sorted
// top-level folder names (byte order, as Python's sorted() gives), so labels match torchvision's.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace vkvit::data {

struct Sample {
  std::string path;
  uint32_t label;
};

// True for the extensions ImageFolder collects (case-insensitive): jpg jpeg png bmp webp tif tiff pgm ppm.
bool is_image_extension(const std::string& filename);

struct ImageFolder {
  std::string root;
  std::vector<std::string> classes;  // sorted top-level folder names (byte order)
  std::vector<Sample> samples;       // sorted by class, then by path (byte order)

  // Walks root/<class>/ recursively, following symlinks but never entering a folder twice (a
  // symlink loop ends the walk). Hidden files and folders (name starting with '.') and files of
  // other extensions are ignored. Links that lead nowhere (dangling, or looping on themselves)
  // with an image extension are kept, so that reading them fails as a counted skip by name. Throws vkvit::Error for a missing root, a root with no class
  // folders, a class folder whose name is not UTF-8, or a class folder without images.
  static ImageFolder scan(const std::string& root);
};

}  // namespace vkvit::data

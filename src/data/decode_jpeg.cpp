// decode_image_region's JPEG path (see decode.h): libjpeg-turbo directly, decoding only the rows
// and columns the transform's box reads. Rows above the box are skipped (jpeg_skip_scanlines),
// columns outside it cropped (jpeg_crop_scanline, which widens the crop to whole iMCUs), and
// decoding stops after the box's last row. One iMCU of margin is decoded on every side that
// is not the image's edge, so that chroma upsampling near the box sees the neighbours it sees in
// a full decode; the box's pixels then equal a full decode's (tests/test_decode_region.cpp).
// With DCT scaling (a request's scale_denom > 1) the same is done in the reduced image's pixels,
// which then equal a whole reduced decode's (libjpeg's scale_num / scale_denom; tests/test_dct_scaling.cpp).
#include <algorithm>
#include <csetjmp>
#include <cstdio>  // before jpeglib.h, which uses FILE and size_t without including it
#include <cstring>
#include <string>

#include <jpeglib.h>

#include "base/error.h"
#include "data/decode.h"

namespace vkvit::data {
namespace {

struct ErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
};

[[noreturn]] void on_error(j_common_ptr cinfo) { std::longjmp(reinterpret_cast<ErrorManager*>(cinfo->err)->jump, 1); }
void on_message(j_common_ptr, int) {}  // warnings (corrupt data past the checks) are ignored, as OpenCV does

uint32_t get16(const uint8_t* p, bool le) { return le ? uint32_t(p[0] | p[1] << 8) : uint32_t(p[0] << 8 | p[1]); }
uint32_t get32(const uint8_t* p, bool le) {
  return le ? get16(p, true) | get16(p + 2, true) << 16 : get16(p, false) << 16 | get16(p + 2, false);
}

// The EXIF orientation of an APP1 segment: 1 when the segment has none, 0 when it is unreadable.
// As OpenCV's EXIF reader, the TIFF header is looked for 6 bytes in whatever the segment's
// identifier says ("Exif\0\0" or not): a file OpenCV would rotate must not be taken as upright.
int exif_orientation(const uint8_t* d, size_t n) {
  if (n < 14) return 1;
  const uint8_t* tiff = d + 6;
  const size_t size = n - 6;
  const bool le = tiff[0] == 'I' && tiff[1] == 'I', be = tiff[0] == 'M' && tiff[1] == 'M';
  if (!le && !be) return 1;  // not a TIFF header (XMP, ...): OpenCV reads no orientation either
  const uint32_t ifd = get32(tiff + 4, le);
  if (ifd > size - 2) return 0;
  const uint32_t entries = get16(tiff + ifd, le);
  for (uint32_t i = 0; i < entries; ++i) {
    const size_t at = ifd + 2 + size_t(i) * 12;
    if (at + 12 > size) return 0;
    if (get16(tiff + at, le) == 0x0112) return int(get16(tiff + at + 8, le));
  }
  return 1;
}

bool upright(j_decompress_ptr cinfo) {
  for (jpeg_saved_marker_ptr m = cinfo->marker_list; m; m = m->next)
    if (m->marker == JPEG_APP0 + 1 && exif_orientation(m->data, m->data_length) != 1) return false;
  return true;
}

// Where the work of one decode goes: everything that outlives a longjmp lives here, outside the
// frame that calls setjmp.
struct Job {
  const std::vector<uint8_t>* bytes;
  const RegionChooser* choose;
  SourceRegion* out;
};

// The rows [y0, y1) of the columns jpeg_crop_scanline settled on, into job.out.
void read_rows(j_decompress_ptr cinfo, JDIMENSION y0, JDIMENSION y1, Job& job) {
  if (y0 > 0) jpeg_skip_scanlines(cinfo, y0);
  SourceRegion& r = *job.out;
  r.pixels.create(int(y1 - y0), int(cinfo->output_width), cinfo->output_components == 3 ? CV_8UC3 : CV_8UC1);
  while (cinfo->output_scanline < y1) {
    JSAMPROW row = r.pixels.ptr<uint8_t>(int(cinfo->output_scanline - y0));
    jpeg_read_scanlines(cinfo, &row, 1);
  }
}

// Returns false when libjpeg failed or the file needs the general path (EXIF rotation, CMYK).
bool decode(Job& job) {
  jpeg_decompress_struct cinfo;
  ErrorManager err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error;
  err.pub.emit_message = on_message;
  jpeg_create_decompress(&cinfo);
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_mem_src(&cinfo, job.bytes->data(), static_cast<unsigned long>(job.bytes->size()));
  jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&cinfo, TRUE);
  if (!upright(&cinfo) || (cinfo.jpeg_color_space != JCS_YCbCr && cinfo.jpeg_color_space != JCS_GRAYSCALE)) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  cinfo.out_color_space = cinfo.jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
  const int W = int(cinfo.image_width), H = int(cinfo.image_height);
  const RegionRequest request = (*job.choose)(W, H);
  const CropBox& box = request.box;
  const int d = request.scale_denom;
  if (d != 1 && d != 2 && d != 4 && d != 8) {
    jpeg_destroy_decompress(&cinfo);
    throw Error("internal: a JPEG region's scale_denom must be 1, 2, 4 or 8 (got " + std::to_string(d) + ")");
  }
  cinfo.scale_num = 1;
  cinfo.scale_denom = unsigned(d);
  jpeg_start_decompress(&cinfo);  // output_width = ceil(W / d), output_height = ceil(H / d)
  const int OW = int(cinfo.output_width), OH = int(cinfo.output_height);
  // The box in decoded pixels (whole pixels covering it), one decoded iMCU of margin around it.
  const int mcu_w = cinfo.max_h_samp_factor * DCTSIZE / d, mcu_h = cinfo.max_v_samp_factor * DCTSIZE / d;
  const int bx0 = box.x / d, bx1 = (box.x + box.width + d - 1) / d;
  const int by0 = box.y / d, by1 = (box.y + box.height + d - 1) / d;
  const int x0 = std::max(bx0 - mcu_w, 0), x1 = std::min(bx1 + mcu_w, OW);
  const int y0 = std::max(by0 - mcu_h, 0), y1 = std::min(by1 + mcu_h, OH);
  JDIMENSION xoffset = JDIMENSION(x0), width = JDIMENSION(x1 - x0);
  if (width < JDIMENSION(OW)) jpeg_crop_scanline(&cinfo, &xoffset, &width);
  read_rows(&cinfo, JDIMENSION(y0), JDIMENSION(y1), job);
  job.out->x = int(xoffset);
  job.out->y = y0;
  job.out->width = W;
  job.out->height = H;
  job.out->box = box;
  job.out->scale_denom = d;
  jpeg_abort_decompress(&cinfo);  // the rows below are not needed
  jpeg_destroy_decompress(&cinfo);
  return true;
}

}  // namespace

bool decode_jpeg_region(const std::vector<uint8_t>& bytes, const RegionChooser& choose, SourceRegion& out) {
  Job job{&bytes, &choose, &out};
  return decode(job);
}

}  // namespace vkvit::data

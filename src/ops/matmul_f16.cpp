// ops::matmul_f16 launcher: picks the register block, the uvec4 load variants and splits calls
// whose operands would not fit one storage-buffer binding; the splitting follows ops::matmul's
// (src/ops/matmul.cpp) with element sizes of 2 (fp16) or 4 (fp32) bytes per operand.
#include "ops/matmul_f16.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "ops/launch.h"
#include "vk/error.h"
#include "vk/pipeline.h"

namespace vkvit::ops {

namespace {

struct MatmulF16Push {
  uint32_t M, N, K;
  uint32_t lda, ldb, ldc;
  uint32_t batch_inner;
  uint32_t a_outer, a_inner, b_outer, b_inner, c_outer, c_inner;
  float alpha, beta;
  uint32_t flags;  // bit 2 has_bias
  uint32_t a_base, b_base, c_base, bias_base;  // elements from the start of each binding
  uint32_t batch;
};
static_assert(sizeof(MatmulF16Push) == 84);

// Split points are multiples of this many rows/columns/k, keeping the 8-element alignment that
// the uvec4 loads need.
constexpr uint32_t kSplitQuantum = 64;
// Long K runs as accumulated chunks so the strips of A and B stay in cache, as in ops::matmul
// (its measurements; the same chunk is kept for halves). VKVIT_MATMUL_KCHUNK overrides, 0 disables.
constexpr uint32_t kKChunk = 512;
constexpr uint32_t kKSplitAbove = 2048;
// Small products (attention-sized) use the 8-row block and share workgroups between batch entries.
constexpr uint32_t kSmallProductRows = 32;
constexpr uint32_t kSmallEntryFlops = 1u << 17;
constexpr uint32_t kSmallBatchPerGroup = 8;

uint32_t env_uint(const char* name, uint32_t fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  return static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
}

struct Config {
  std::string shader;
  uint32_t tm = 16, tn = 8;
  uint32_t batch_per_group = 1;
};

// The block per shape (BENCHMARKS.md, "fp16 matmul (lavapipe)"). The kernel is bound by the FMAs
// and the broadcasts of A values, not by loads or conversions, so more columns per broadcast pay:
// NT (B loaded along k, any TN works) takes 16 x 12, except where N is a multiple of 64 but not
// of 96 (a 96-column block would pad N = 64, 128 by half: 16 x 8 there, as ops::matmul does); NN
// and TN load B along n in uvec4s, which needs TN % 8 == 0, and take 16 x 8 (16 x 16 measured
// slower, so it is not compiled); small products take 8 x 8.
// VKVIT_MATMUL_F16_TM / _TN force a compiled variant (16x8, 16x12, 8x8) for tests and tuning.
Config config_for(const MatmulShape& s, MatmulOut out) {
  Config cfg;
  if (s.trans_b && !s.trans_a && !(s.N % 96 != 0 && s.N % 64 == 0)) cfg.tn = 12;
  if (s.M <= kSmallProductRows && s.N <= kSmallProductRows) cfg.tm = 8, cfg.tn = 8;
  cfg.tm = env_uint("VKVIT_MATMUL_F16_TM", cfg.tm);
  cfg.tn = env_uint("VKVIT_MATMUL_F16_TN", cfg.tn);
  const uint64_t entry_flops = 2ull * s.M * s.N * s.K;
  cfg.batch_per_group = s.batch > 1 && entry_flops < kSmallEntryFlops ? kSmallBatchPerGroup : 1;
  cfg.shader = "matmul_f16_" + std::to_string(cfg.tm) + "x" + std::to_string(cfg.tn) +
               (out == MatmulOut::f16 ? "_h" : "");
  return cfg;
}

struct Part {
  uint64_t a_off = 0, b_off = 0, c_off = 0, bias_off = 0;  // elements from the caller's views
  uint32_t M = 0, N = 0, K = 0;
  uint32_t outer = 1, inner = 1;
  float beta = 0.0f;
  bool bias = false;
};

struct Binding {
  vk::View view;
  uint64_t base = 0;  // elements from the binding's start to the operand
  bool fits = false;
};

class Launcher {
 public:
  Launcher(vk::Recorder& rec, const vk::View& c, const vk::View& a, const vk::View& b, const vk::View& bias,
           const MatmulShape& s, MatmulOut out)
      : rec_(rec), info_(rec.context().info()), c_(c), a_(a), b_(b), bias_(bias), s_(s), cfg_(config_for(s, out)),
        c_size_(out == MatmulOut::f16 ? 2 : 4) {
    lda_ = s.a.ld ? s.a.ld : (s.trans_a ? s.M : s.K);
    ldb_ = s.b.ld ? s.b.ld : (s.trans_b ? s.K : s.N);
    ldc_ = s.c.ld ? s.c.ld : s.N;
    align_ = std::max<uint64_t>(info_.min_storage_offset_alignment, 16);
    no_vec_ = env_uint("VKVIT_MATMUL_SCALAR", 0) != 0;
    k_chunk_ = env_uint("VKVIT_MATMUL_KCHUNK", kKChunk);
  }

  void run() {
    Part whole;
    whole.M = s_.M, whole.N = s_.N, whole.K = s_.K;
    whole.outer = s_.batch / s_.batch_inner;
    whole.inner = s_.batch_inner;
    whole.beta = s_.beta;
    whole.bias = bias_.buffer != VK_NULL_HANDLE;
    check_view(a_, extent(whole, 'a'), 2, "A");
    check_view(b_, extent(whole, 'b'), 2, "B");
    check_view(c_, extent(whole, 'c'), c_size_, "C");
    if (whole.bias) check_view(bias_, s_.N, 4, "bias");
    launch(whole);
  }

 private:
  std::string shape_name() const {
    return "matmul_f16 M=" + std::to_string(s_.M) + " N=" + std::to_string(s_.N) + " K=" + std::to_string(s_.K) +
           " batch=" + std::to_string(s_.batch) + (s_.trans_a ? " trans_a" : "") + (s_.trans_b ? " trans_b" : "");
  }

  void check_view(const vk::View& v, uint64_t elements, uint32_t size, const char* what) const {
    if (elements * size > v.size)
      throw Error("internal: " + shape_name() + ": " + what + " needs " + std::to_string(elements) + " elements of " +
                  std::to_string(size) + " bytes but its view holds " + std::to_string(v.size) + " bytes");
    if (v.offset % size != 0)
      throw Error("internal: " + shape_name() + ": " + what + " starts at byte " + std::to_string(v.offset) +
                  ", not a multiple of its element size");
  }

  uint64_t extent(const Part& p, char which) const {
    uint32_t rows, cols, ld;
    const MatmulOperand* op;
    if (which == 'a') {
      rows = s_.trans_a ? p.K : p.M, cols = s_.trans_a ? p.M : p.K, ld = lda_, op = &s_.a;
    } else if (which == 'b') {
      rows = s_.trans_b ? p.N : p.K, cols = s_.trans_b ? p.K : p.N, ld = ldb_, op = &s_.b;
    } else {
      rows = p.M, cols = p.N, ld = ldc_, op = &s_.c;
    }
    if (rows == 0 || cols == 0) return 0;
    return uint64_t(p.outer - 1) * op->stride_outer + uint64_t(p.inner - 1) * op->stride_inner +
           uint64_t(rows - 1) * ld + cols;
  }

  // The smallest bindable range of `v` holding `count` elements of `size` bytes from element
  // `off`, rounded up to whole 32-bit words (packed halves are read a word at a time) where the
  // view allows.
  Binding bind(const vk::View& v, uint64_t off, uint64_t count, uint32_t size) const {
    Binding r;
    const uint64_t start = v.offset + off * size;
    const uint64_t aligned = start / align_ * align_;
    const uint64_t lead = start - aligned;
    const uint64_t bytes = (lead + std::max<uint64_t>(count, 1) * size + 3) / 4 * 4;
    r.view = vk::View{v.buffer, aligned, std::min(bytes, v.offset + v.size - aligned)};
    r.base = lead / size;
    r.fits = r.view.size <= info_.max_storage_buffer_range;
    return r;
  }

  uint64_t groups_m(const Part& p) const { return div_up(p.M, cfg_.tm); }
  uint64_t groups_n(const Part& p) const { return div_up(p.N, 8 * cfg_.tn); }

  void launch(const Part& p) {
    if (p.M == 0 || p.N == 0) return;
    const uint64_t ea = extent(p, 'a'), eb = extent(p, 'b'), ec = extent(p, 'c');
    const Binding bc = bind(c_, p.c_off, ec, c_size_);
    const Binding ba = ea ? bind(a_, p.a_off, ea, 2) : bc;  // K == 0 reads neither A nor B
    const Binding bb = eb ? bind(b_, p.b_off, eb, 2) : bc;
    const bool m_groups_ok = groups_m(p) <= info_.max_workgroup_count[0];
    const bool n_groups_ok = groups_n(p) <= info_.max_workgroup_count[1];
    const bool z_ok = uint64_t(p.outer) * p.inner <= info_.max_workgroup_count[2];
    const bool k_too_long = k_chunk_ > 0 && p.K > std::max(kKSplitAbove, k_chunk_);
    if (ba.fits && bb.fits && bc.fits && m_groups_ok && n_groups_ok && z_ok && !k_too_long) {
      dispatch(p, ba, bb, bc);
      return;
    }
    if (k_too_long && ba.fits && bb.fits && bc.fits) {
      split_k(p, k_chunk_);
      return;
    }
    if (p.outer > 1) {
      Part lo = p, hi = p;
      lo.outer = p.outer / 2;
      hi.outer = p.outer - lo.outer;
      advance(hi, lo.outer, s_.a.stride_outer, s_.b.stride_outer, s_.c.stride_outer);
      launch(lo);
      launch(hi);
      return;
    }
    if (p.inner > 1) {
      Part lo = p, hi = p;
      lo.inner = p.inner / 2;
      hi.inner = p.inner - lo.inner;
      advance(hi, lo.inner, s_.a.stride_inner, s_.b.stride_inner, s_.c.stride_inner);
      launch(lo);
      launch(hi);
      return;
    }
    char dim;
    if (!bc.fits || (!ba.fits && !s_.trans_a) || !m_groups_ok)
      dim = 'm';
    else if (!ba.fits)
      dim = 'k';
    else if (!bb.fits)
      dim = s_.trans_b ? 'n' : 'k';
    else
      dim = 'n';
    const uint32_t size = dim == 'm' ? p.M : dim == 'n' ? p.N : p.K;
    if (size < 2 * kSplitQuantum)
      throw Error(shape_name() + " cannot be split so that every buffer binding fits the device's "
                  "maxStorageBufferRange of " + vk::format_bytes(info_.max_storage_buffer_range) +
                  " (leading dimensions too large); use smaller operands");
    const uint32_t half = (size / 2 + kSplitQuantum - 1) / kSplitQuantum * kSplitQuantum;
    Part lo = p, hi = p;
    if (dim == 'm') {
      lo.M = half;
      hi.M = p.M - half;
      hi.a_off += s_.trans_a ? half : uint64_t(half) * lda_;
      hi.c_off += uint64_t(half) * ldc_;
    } else if (dim == 'n') {
      lo.N = half;
      hi.N = p.N - half;
      hi.b_off += s_.trans_b ? uint64_t(half) * ldb_ : half;
      hi.c_off += half;
      hi.bias_off += half;
    } else {
      split_k(p, half);
      return;
    }
    launch(lo);
    launch(hi);
  }

  // K = [0, first) then [first, K) accumulated onto it (beta = 1, no second bias).
  void split_k(const Part& p, uint32_t first) {
    Part lo = p, hi = p;
    lo.K = first;
    hi.K = p.K - first;
    hi.a_off += s_.trans_a ? uint64_t(first) * lda_ : first;
    hi.b_off += s_.trans_b ? first : uint64_t(first) * ldb_;
    hi.beta = 1.0f;
    hi.bias = false;
    launch(lo);
    launch(hi);
  }

  static void advance(Part& p, uint32_t count, uint64_t sa, uint64_t sb, uint64_t sc) {
    p.a_off += count * sa;
    p.b_off += count * sb;
    p.c_off += count * sc;
  }

  // uvec4 loads (8 halves) of an operand stay inside its rows when every row start is a
  // multiple of 8 elements and so is the contiguous dimension.
  static bool vec_ok(uint64_t base, uint32_t ld, const MatmulOperand& op, uint32_t contiguous) {
    return base % 8 == 0 && ld % 8 == 0 && op.stride_outer % 8 == 0 && op.stride_inner % 8 == 0 &&
           contiguous % 8 == 0;
  }

  void dispatch(const Part& p, const Binding& ba, const Binding& bb, const Binding& bc) {
    MatmulF16Push push{};
    push.M = p.M, push.N = p.N, push.K = p.K;
    push.lda = lda_, push.ldb = ldb_, push.ldc = ldc_;
    push.batch_inner = p.inner;
    push.a_outer = static_cast<uint32_t>(s_.a.stride_outer);
    push.a_inner = static_cast<uint32_t>(s_.a.stride_inner);
    push.b_outer = static_cast<uint32_t>(s_.b.stride_outer);
    push.b_inner = static_cast<uint32_t>(s_.b.stride_inner);
    push.c_outer = static_cast<uint32_t>(s_.c.stride_outer);
    push.c_inner = static_cast<uint32_t>(s_.c.stride_inner);
    push.alpha = s_.alpha;
    push.beta = p.beta;
    push.flags = p.bias ? 4u : 0u;
    push.a_base = static_cast<uint32_t>(ba.base);
    push.b_base = static_cast<uint32_t>(bb.base);
    push.c_base = static_cast<uint32_t>(bc.base);
    push.batch = p.outer * p.inner;
    Binding bbias = bc;
    if (p.bias) {
      bbias = bind(bias_, p.bias_off, p.N, 4);
      push.bias_base = static_cast<uint32_t>(bbias.base);
    }
    const bool va = vec_ok(ba.base, lda_, s_.a, s_.trans_a ? p.M : p.K);
    const bool vb = vec_ok(bb.base, ldb_, s_.b, s_.trans_b ? p.K : p.N) && (s_.trans_b || cfg_.tn % 8 == 0);
    const vk::SpecConstants spec{8, s_.trans_a, s_.trans_b, va && !no_vec_, vb && !no_vec_, cfg_.batch_per_group};
    const vk::Groups groups{static_cast<uint32_t>(groups_m(p)), static_cast<uint32_t>(groups_n(p)),
                            div_up(push.batch, cfg_.batch_per_group)};
    const vk::Kernel& k = rec_.context().pipelines().get(cfg_.shader, 4, sizeof(MatmulF16Push), spec);
    rec_.dispatch(k, {bc.view, ba.view, bb.view, bbias.view}, push, groups, "matmul_f16");
  }

  vk::Recorder& rec_;
  const vk::DeviceInfo& info_;
  vk::View c_, a_, b_, bias_;
  const MatmulShape& s_;
  Config cfg_;
  uint32_t c_size_;
  uint32_t lda_ = 0, ldb_ = 0, ldc_ = 0;
  uint64_t align_ = 16;
  bool no_vec_ = false;     // VKVIT_MATMUL_SCALAR=1: single-half loads only (tests, measurements)
  uint32_t k_chunk_ = 0;
};

}  // namespace

std::string matmul_f16_unsupported(const vk::DeviceInfo& info, MatmulOut out) {
  if (info.subgroup_size != 0 && info.subgroup_size < 8)
    return "the fp16 matmul kernels need a subgroup size of at least 8; device " + info.name + " has " +
           std::to_string(info.subgroup_size);
  if (out == MatmulOut::f16 && !info.storage16)
    return "fp16 matmul output needs storageBuffer16BitAccess, which device " + info.name + " lacks";
  return {};
}

void matmul_f16(vk::Recorder& rec, const vk::View& c, const vk::View& a16, const vk::View& b16, const MatmulShape& s,
                const vk::View& bias, MatmulOut out) {
  if (s.M == 0 || s.N == 0 || s.batch == 0) return;
  if (s.batch_inner == 0 || s.batch % s.batch_inner != 0)
    throw Error("internal: matmul_f16 batch " + std::to_string(s.batch) + " is not a multiple of batch_inner " +
                std::to_string(s.batch_inner));
  const std::string why = matmul_f16_unsupported(rec.context().info(), out);
  if (!why.empty()) throw Error(why + " (train without train.amp / --amp on this device)");
  Launcher(rec, c, a16, b16, bias, s, out).run();
}

}  // namespace vkvit::ops

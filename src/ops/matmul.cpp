// ops::matmul launcher: picks a kernel for the device, chooses its tile shape and load variant,
// and splits calls whose operands would not fit one storage-buffer binding.
//
// Kernels (shaders/matmul_*.comp, shared bindings in shaders/common/matmul_common.glsl):
//   naive    one output per invocation; the baseline of `vkvit bench matmul`.
//   lavapipe register-blocked, 8-lane workgroups without shared memory (CPU Vulkan; see the
//            shader and BENCHMARKS.md for why this shape wins on llvmpipe).
//   tiled    shared-memory tiles for GPUs; tile sizes from the device's limits.
#include "ops/matmul.h"

#include <cstdlib>
#include <string>

#include "ops/launch.h"
#include "vk/error.h"
#include "vk/pipeline.h"

namespace vkvit::ops {

namespace {

struct MatmulPush {
  uint32_t M, N, K;
  uint32_t lda, ldb, ldc;
  uint32_t batch_inner;
  uint32_t a_outer, a_inner, b_outer, b_inner, c_outer, c_inner;
  float alpha, beta;
  uint32_t flags;  // bit 0 trans_a, bit 1 trans_b, bit 2 has_bias
  uint32_t a_base, b_base, c_base, bias_base;  // floats from the start of each binding
  uint32_t batch;                              // batch entries of this dispatch
};
static_assert(sizeof(MatmulPush) == 84);

// Split points are multiples of this many rows/columns, so a sub-call keeps the vec4 alignment
// of the whole call (offsets stay multiples of 4 floats).
constexpr uint32_t kSplitQuantum = 64;

// lavapipe: a workgroup streams a K x (8 * TN) strip of B and a K x TM strip of A; for long K the
// strips no longer stay in this machine's 1.25 MiB L2 while consecutive workgroups reuse them, so
// products with K above kLavapipeKSplitAbove (dW = dY^T X over all tokens) run as kLavapipeKChunk
// pieces accumulated with beta = 1 (qkv.dW: 4.6 -> 6.4 GFLOP/s per core, BENCHMARKS.md).
// VKVIT_MATMUL_KCHUNK overrides the chunk (0 disables).
constexpr uint32_t kLavapipeKChunk = 512;  // a multiple of kSplitQuantum
constexpr uint32_t kLavapipeKSplitAbove = 2048;

// Workgroup shape of one kernel configuration; x walks M, y walks N (naive: x walks N).
struct Config {
  MatmulKernel kernel;
  std::string shader;
  uint32_t rows_per_group;  // M per workgroup
  uint32_t cols_per_group;  // N per workgroup
  vk::SpecConstants spec;   // without the per-call transpose/vec flags
  uint32_t tm = 0, tn = 0;  // lavapipe: register block per lane
  uint32_t batch_per_group = 1;  // lavapipe: batch entries per workgroup (z)
};

uint32_t env_uint(const char* name, uint32_t fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  return static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
}

// lavapipe: 8-lane workgroups; each computes TM rows (shared by its lanes) x 8 * TN columns (TN
// per lane), for batch_per_group batch entries. The block is picked per shape (measurements in
// BENCHMARKS.md, "small shapes"):
//  - 16 x 12 was the best or within noise of the best for NN, NT and TN on large products, and
//    16 x 8 matches it where N is a multiple of 64 but not of 96 (N = 64, 128: a 96-column block
//    would compute a third of its columns for nothing);
//  - small batched products (attention's 17 x 17 x 16 per head) use an 8-row block that covers
//    N with the least padding, and loop over several batch entries per workgroup so lavapipe's
//    fixed cost per workgroup is paid once per several heads.
// VKVIT_MATMUL_TM / VKVIT_MATMUL_TN force a compiled variant (shaders/matmul_lavapipe_<TM>x<TN>.comp)
// and VKVIT_MATMUL_BATCH_PER_GROUP the entries per workgroup, for tests and tuning experiments.
constexpr uint32_t kSmallProductRows = 32;     // M and N at most this: the small-block path
constexpr uint32_t kSmallEntryFlops = 1u << 17;  // entries cheaper than this share workgroups
constexpr uint32_t kSmallBatchPerGroup = 8;

Config lavapipe_config(const vk::DeviceInfo& info, const MatmulShape& s) {
  if (info.subgroup_size != 0 && info.subgroup_size < 8)
    throw Error("the lavapipe matmul kernel needs a subgroup size of at least 8; device " + info.name + " has " +
                std::to_string(info.subgroup_size) + " (use VKVIT_MATMUL_KERNEL=tiled)");
  uint32_t tm = 16, tn = 12;
  if (s.M <= kSmallProductRows && s.N <= kSmallProductRows) {
    tm = 8;
    tn = s.N <= 16 ? 2 : 3;  // 16 or 24 columns per workgroup
  } else if (s.N % 96 != 0 && s.N % 64 == 0) {
    tn = 8;
  }
  tm = env_uint("VKVIT_MATMUL_TM", tm);
  tn = env_uint("VKVIT_MATMUL_TN", tn);
  const uint64_t entry_flops = 2ull * s.M * s.N * s.K;
  uint32_t per_group = s.batch > 1 && entry_flops < kSmallEntryFlops ? kSmallBatchPerGroup : 1;
  per_group = std::max(env_uint("VKVIT_MATMUL_BATCH_PER_GROUP", per_group), 1u);
  const std::string shader = "matmul_lavapipe_" + std::to_string(tm) + "x" + std::to_string(tn);
  Config cfg{MatmulKernel::lavapipe, shader, tm, 8 * tn, {8}, tm, tn};
  cfg.batch_per_group = per_group;
  return cfg;
}

// tiled: 64x64 tiles of 256 invocations (4x4 outputs each) where the device allows it; smaller
// 32x32 tiles of 64 invocations for small workgroup or shared-memory limits and for CPU drivers
// (where the kernel is only run to be tested). Both are multiples of common subgroup sizes.
Config tiled_config(const vk::DeviceInfo& info) {
  uint32_t bm = 64, bn = 64, bk = 16, tm = 4, tn = 4;
  const uint32_t big_shared = (bm + bn) * bk * 4;
  const bool cpu = info.type == VK_PHYSICAL_DEVICE_TYPE_CPU || info.is_lavapipe();
  if (cpu || info.max_workgroup_invocations < 256 || info.max_shared_memory < big_shared ||
      info.max_workgroup_size[0] < 256 || (info.subgroup_size > 0 && 256 % info.subgroup_size != 0)) {
    bm = bn = 32;
    bk = 8;
  }
  const uint32_t threads = (bm / tm) * (bn / tn);
  return Config{MatmulKernel::tiled, "matmul_tiled", bm, bn, {threads, bm, bn, bk, tm, tn}};
}

Config config_for(MatmulKernel kernel, const vk::DeviceInfo& info, const MatmulShape& s) {
  switch (kernel) {
    case MatmulKernel::naive: return Config{kernel, "matmul_naive", 16, 16, {}};
    case MatmulKernel::tiled: return tiled_config(info);
    default: return lavapipe_config(info, s);
  }
}

// One (sub-)call: element offsets from the start of the caller's views, sizes, batch range.
struct Part {
  uint64_t a_off = 0, b_off = 0, c_off = 0, bias_off = 0;
  uint32_t M = 0, N = 0, K = 0;
  uint32_t outer = 1, inner = 1;  // batch entries: outer * inner
  float beta = 0.0f;
  bool bias = false;
};

struct Binding {
  vk::View view;
  uint64_t base = 0;  // floats from view start to the operand
  bool fits = false;
};

class Launcher {
 public:
  Launcher(vk::Recorder& rec, const vk::View& c, const vk::View& a, const vk::View& b, const vk::View& bias,
           const MatmulShape& s, MatmulKernel kernel)
      : rec_(rec), info_(rec.context().info()), c_(c), a_(a), b_(b), bias_(bias), s_(s),
        cfg_(config_for(kernel, info_, s)) {
    lda_ = s.a.ld ? s.a.ld : (s.trans_a ? s.M : s.K);
    ldb_ = s.b.ld ? s.b.ld : (s.trans_b ? s.K : s.N);
    ldc_ = s.c.ld ? s.c.ld : s.N;
    align_ = std::max<uint64_t>(info_.min_storage_offset_alignment, 16);
    no_vec_ = env_uint("VKVIT_MATMUL_SCALAR", 0) != 0;
    if (cfg_.kernel == MatmulKernel::lavapipe) k_chunk_ = env_uint("VKVIT_MATMUL_KCHUNK", kLavapipeKChunk);
    wide_loads_ = info_.int64 && env_uint("VKVIT_MATMUL_WIDE", 1) != 0;
  }

  void run() {
    Part whole;
    whole.M = s_.M;
    whole.N = s_.N;
    whole.K = s_.K;
    whole.outer = s_.batch / s_.batch_inner;
    whole.inner = s_.batch_inner;
    whole.beta = s_.beta;
    whole.bias = bias_.buffer != VK_NULL_HANDLE;
    // Views that are too small for the shape are a caller bug; say so before reading past them.
    check_view(a_, extent(whole, 'a'), "A");
    check_view(b_, extent(whole, 'b'), "B");
    check_view(c_, extent(whole, 'c'), "C");
    if (whole.bias) check_view(bias_, s_.N, "bias");
    launch(whole);
  }

 private:
  std::string shape_name() const {
    return "matmul M=" + std::to_string(s_.M) + " N=" + std::to_string(s_.N) + " K=" + std::to_string(s_.K) +
           " batch=" + std::to_string(s_.batch) + (s_.trans_a ? " trans_a" : "") + (s_.trans_b ? " trans_b" : "");
  }

  void check_view(const vk::View& v, uint64_t floats, const char* what) const {
    if (floats > v.floats())
      throw Error("internal: " + shape_name() + ": " + what + " needs " + std::to_string(floats) +
                  " floats but its view holds " + std::to_string(v.floats()));
  }

  // Floats an operand spans from its first element, over the part's batch entries.
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

  // The smallest range of `v` (start aligned down for binding) that holds `floats` from `off`.
  Binding bind(const vk::View& v, uint64_t off, uint64_t floats) const {
    Binding r;
    const uint64_t start = v.offset + off * 4;
    const uint64_t aligned = start / align_ * align_;
    const uint64_t lead = start - aligned;
    const uint64_t bytes = lead + std::max<uint64_t>(floats, 1) * 4;
    r.view = vk::View{v.buffer, aligned, std::min(bytes, v.offset + v.size - aligned)};
    r.base = lead / 4;
    r.fits = r.view.size <= info_.max_storage_buffer_range;
    return r;
  }

  uint64_t groups_m(const Part& p) const { return div_up(p.M, cfg_.rows_per_group); }
  uint64_t groups_n(const Part& p) const { return div_up(p.N, cfg_.cols_per_group); }
  bool naive() const { return cfg_.kernel == MatmulKernel::naive; }

  void launch(const Part& p) {
    if (p.M == 0 || p.N == 0) return;
    const uint64_t ea = extent(p, 'a'), eb = extent(p, 'b'), ec = extent(p, 'c');
    const Binding bc = bind(c_, p.c_off, ec);
    // K == 0 reads neither A nor B; bind C's range in their place (a binding may not be empty).
    const Binding ba = ea ? bind(a_, p.a_off, ea) : bc;
    const Binding bb = eb ? bind(b_, p.b_off, eb) : bc;
    const uint64_t gx_limit = info_.max_workgroup_count[naive() ? 1 : 0];
    const uint64_t gy_limit = info_.max_workgroup_count[naive() ? 0 : 1];
    const bool m_groups_ok = groups_m(p) <= gx_limit, n_groups_ok = groups_n(p) <= gy_limit;
    const bool z_ok = uint64_t(p.outer) * p.inner <= info_.max_workgroup_count[2];
    const bool k_too_long = k_chunk_ > 0 && p.K > std::max(kLavapipeKSplitAbove, k_chunk_);
    if (ba.fits && bb.fits && bc.fits && m_groups_ok && n_groups_ok && z_ok && !k_too_long) {
      dispatch(p, ba, bb, bc);
      return;
    }
    if (k_too_long && ba.fits && bb.fits && bc.fits) {
      split_k(p, k_chunk_);
      return;
    }
    if (p.outer > 1) {  // whole outer batch entries first, then inner ones, then single matrices
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
    // One matrix: split the dimension that shrinks the operand that does not fit.
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

  // Products over K = [0, first) and [first, K); the second accumulates onto the first (beta = 1)
  // and does not add the bias again.
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

  // vec4 loads of an operand are safe when every row start is a multiple of 4 floats and the
  // contiguous dimension is too (so a vec4 never straddles the end of a row).
  bool vec_ok(uint64_t base, uint32_t ld, const MatmulOperand& op, uint32_t contiguous) const {
    return base % 4 == 0 && ld % 4 == 0 && op.stride_outer % 4 == 0 && op.stride_inner % 4 == 0 &&
           contiguous % 4 == 0;
  }

  void dispatch(const Part& p, const Binding& ba, const Binding& bb, const Binding& bc) {
    MatmulPush push{};
    push.M = p.M;
    push.N = p.N;
    push.K = p.K;
    push.lda = lda_;
    push.ldb = ldb_;
    push.ldc = ldc_;
    push.batch_inner = p.inner;
    push.a_outer = static_cast<uint32_t>(s_.a.stride_outer);
    push.a_inner = static_cast<uint32_t>(s_.a.stride_inner);
    push.b_outer = static_cast<uint32_t>(s_.b.stride_outer);
    push.b_inner = static_cast<uint32_t>(s_.b.stride_inner);
    push.c_outer = static_cast<uint32_t>(s_.c.stride_outer);
    push.c_inner = static_cast<uint32_t>(s_.c.stride_inner);
    push.alpha = s_.alpha;
    push.beta = p.beta;
    push.flags = (s_.trans_a ? 1u : 0u) | (s_.trans_b ? 2u : 0u) | (p.bias ? 4u : 0u);
    push.a_base = static_cast<uint32_t>(ba.base);
    push.b_base = static_cast<uint32_t>(bb.base);
    push.c_base = static_cast<uint32_t>(bc.base);
    push.batch = p.outer * p.inner;
    Binding bbias = bc;
    if (p.bias) {
      bbias = bind(bias_, p.bias_off, p.N);
      push.bias_base = static_cast<uint32_t>(bbias.base);
    }

    vk::SpecConstants spec = cfg_.spec;
    vk::Groups groups;
    const uint32_t batch = p.outer * p.inner;
    if (cfg_.kernel == MatmulKernel::naive) {
      groups = vk::Groups{div_up(p.N, 16), div_up(p.M, 16), batch};
    } else {
      groups = vk::Groups{static_cast<uint32_t>(groups_m(p)), static_cast<uint32_t>(groups_n(p)),
                          div_up(batch, cfg_.batch_per_group)};
      spec.push_back(s_.trans_a);
      spec.push_back(s_.trans_b);
      if (cfg_.kernel == MatmulKernel::lavapipe) {
        const bool va = vec_ok(ba.base, lda_, s_.a, s_.trans_a ? p.M : p.K) && (!s_.trans_a || cfg_.tm % 4 == 0);
        const bool vb = vec_ok(bb.base, ldb_, s_.b, s_.trans_b ? p.K : p.N) && (s_.trans_b || cfg_.tn % 4 == 0);
        spec.push_back(va && !no_vec_);
        spec.push_back(vb && !no_vec_);
        spec.push_back(cfg_.batch_per_group);
        spec.push_back(wide_loads_);
      }
    }
    const vk::Kernel& k = rec_.context().pipelines().get(cfg_.shader, 4, sizeof(MatmulPush), spec);
    rec_.dispatch(k, {bc.view, ba.view, bb.view, bbias.view}, push, groups, "matmul");
  }

  vk::Recorder& rec_;
  const vk::DeviceInfo& info_;
  vk::View c_, a_, b_, bias_;
  const MatmulShape& s_;
  Config cfg_;
  uint32_t lda_ = 0, ldb_ = 0, ldc_ = 0;
  uint64_t align_ = 16;
  bool no_vec_ = false;      // VKVIT_MATMUL_SCALAR=1: scalar loads only (tests, measurements)
  bool wide_loads_ = false;  // lavapipe: vec4 loads as two 64-bit components (VKVIT_MATMUL_WIDE=0: off)
  uint32_t k_chunk_ = 0;     // lavapipe: longer K runs as several accumulating dispatches
};

}  // namespace

const char* matmul_kernel_name(MatmulKernel kernel) {
  switch (kernel) {
    case MatmulKernel::naive: return "naive";
    case MatmulKernel::lavapipe: return "lavapipe";
    case MatmulKernel::tiled: return "tiled";
    default: return "auto";
  }
}

MatmulKernel parse_matmul_kernel(const std::string& name) {
  if (name == "naive") return MatmulKernel::naive;
  if (name == "lavapipe") return MatmulKernel::lavapipe;
  if (name == "tiled") return MatmulKernel::tiled;
  if (name == "auto" || name.empty()) return MatmulKernel::automatic;
  throw Error("unknown matmul kernel '" + name + "': use naive, lavapipe, tiled or auto");
}

MatmulKernel matmul_kernel_for(const vk::DeviceInfo& device) {
  if (const char* env = std::getenv("VKVIT_MATMUL_KERNEL")) {
    const MatmulKernel k = parse_matmul_kernel(env);
    if (k != MatmulKernel::automatic) return k;
  }
  // CPU drivers run a workgroup as SIMD lanes of one thread: shared memory and barriers only
  // cost there, while register blocking with uniform loads pays (BENCHMARKS.md).
  if (device.is_lavapipe() || device.type == VK_PHYSICAL_DEVICE_TYPE_CPU) return MatmulKernel::lavapipe;
  return MatmulKernel::tiled;
}

void matmul(vk::Recorder& rec, const vk::View& c, const vk::View& a, const vk::View& b, const MatmulShape& s,
            const vk::View& bias, MatmulKernel kernel) {
  if (s.M == 0 || s.N == 0 || s.batch == 0) return;
  if (s.batch_inner == 0 || s.batch % s.batch_inner != 0)
    throw Error("internal: matmul batch " + std::to_string(s.batch) + " is not a multiple of batch_inner " +
                std::to_string(s.batch_inner));
  if (kernel == MatmulKernel::automatic) kernel = matmul_kernel_for(rec.context().info());
  Launcher(rec, c, a, b, bias, s, kernel).run();
}

}  // namespace vkvit::ops

// The matmul launcher shared by ops::matmul and ops::matmul_f16 (see matmul_launch.h).
#include "ops/matmul_launch.h"

#include <algorithm>
#include <string>

#include "base/error.h"
#include "ops/launch.h"

namespace vkvit::ops::matmul_detail {

bool has_work(const MatmulShape& s, const char* name) {
  if (s.M == 0 || s.N == 0 || s.batch == 0) return false;
  if (s.batch_inner == 0 || s.batch % s.batch_inner != 0)
    throw Error(std::string("internal: ") + name + " batch " + std::to_string(s.batch) +
                " is not a multiple of batch_inner " + std::to_string(s.batch_inner));
  return true;
}

namespace {

// One (sub-)call: element offsets from the start of the caller's views, sizes, batch range.
struct Part {
  uint64_t a_off = 0, b_off = 0, c_off = 0, bias_off = 0;
  uint64_t row_sums_off = 0;  // the row_sums epilogue's first element in aux
  bool row_sums = true;       // whether this part adds its row sums (only the first N part does)
  uint32_t M = 0, N = 0, K = 0;
  uint32_t outer = 1, inner = 1;  // batch entries: outer * inner
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
           const MatmulShape& s, const MatmulPolicy& policy, const vk::View& aux)
      : rec_(rec), info_(rec.context().info()), c_(c), a_(a), b_(b), bias_(bias), aux_(aux), s_(s), pol_(policy) {
    lda_ = s.a.ld ? s.a.ld : (s.trans_a ? s.M : s.K);
    ldb_ = s.b.ld ? s.b.ld : (s.trans_b ? s.K : s.N);
    ldc_ = s.c.ld ? s.c.ld : s.N;
    align_ = std::max<uint64_t>(info_.min_storage_offset_alignment, 16);
    no_vec_ = rec.context().tuning().matmul_scalar;
    profile_shapes_ = rec.context().profiling() && rec.context().tuning().profile_shapes;
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
    check_view(a_, extent(whole, 'a'), pol_.a_size, "A");
    check_view(b_, extent(whole, 'b'), pol_.b_size, "B");
    check_view(c_, extent(whole, 'c'), pol_.c_size, "C");
    if (whole.bias) check_view(bias_, s_.N, 4, "bias");
    if (s_.epilogue != MatmulEpilogue::none) {
      if (!pol_.epilogue) throw Error("internal: " + shape_name() + ": this kernel has no epilogue");
      if (row_sums() && s_.batch != 1) throw Error("internal: " + shape_name() + ": row sums of a batched product");
      if (has_operand()) {
        if (aux_.buffer == VK_NULL_HANDLE) throw Error("internal: " + shape_name() + ": epilogue without its operand");
        check_view(aux_, row_sums() ? s_.M : extent(whole, 'c'), pol_.c_size, "the epilogue operand");
        if (aux_.overlaps(c_)) throw Error("internal: " + shape_name() + ": the epilogue operand overlaps C");
      }
    }
    launch(whole);
  }

 private:
  std::string shape_name() const {
    return std::string(pol_.name) + " M=" + std::to_string(s_.M) + " N=" + std::to_string(s_.N) +
           " K=" + std::to_string(s_.K) + " batch=" + std::to_string(s_.batch) + (s_.trans_a ? " trans_a" : "") +
           (s_.trans_b ? " trans_b" : "");
  }

  bool row_sums() const { return s_.epilogue == MatmulEpilogue::row_sums; }
  bool epilogue_on_c() const { return s_.epilogue != MatmulEpilogue::none && !row_sums(); }
  bool has_operand() const { return s_.epilogue != MatmulEpilogue::none && s_.epilogue != MatmulEpilogue::gelu_only; }

  // "matmul NT 320x384x128 b1 matmul_regblock_16x12": the transposes as the op reads them (N =
  // plain, T = transposed), M x N x K, batch entries, kernel.
  std::string shape_label(const Part& p, const std::string& shader) const {
    return std::string(pol_.name) + " " + (s_.trans_a ? "T" : "N") + (s_.trans_b ? "T" : "N") + " " +
           std::to_string(p.M) + "x" + std::to_string(p.N) + "x" + std::to_string(p.K) + " b" +
           std::to_string(p.outer * p.inner) + " " + shader +
           (s_.epilogue == MatmulEpilogue::gelu        ? " +gelu"
            : s_.epilogue == MatmulEpilogue::gelu_only ? " +gelu_only"
            : s_.epilogue == MatmulEpilogue::add       ? " +residual"
            : s_.epilogue == MatmulEpilogue::gelu_grad ? " +gelu_grad"
            : s_.epilogue == MatmulEpilogue::row_sums  ? " +row_sums"
                                                       : "");
  }

  void check_view(const vk::View& v, uint64_t elements, uint32_t size, const char* what) const {
    if (!pol_.byte_views) {
      if (elements > v.floats())
        throw Error("internal: " + shape_name() + ": " + what + " needs " + std::to_string(elements) +
                    " floats but its view holds " + std::to_string(v.floats()));
      return;
    }
    if (elements * size > v.size)
      throw Error("internal: " + shape_name() + ": " + what + " needs " + std::to_string(elements) + " elements of " +
                  std::to_string(size) + " bytes but its view holds " + std::to_string(v.size) + " bytes");
    if (v.offset % size != 0)
      throw Error("internal: " + shape_name() + ": " + what + " starts at byte " + std::to_string(v.offset) +
                  ", not a multiple of its element size");
  }

  // Elements an operand spans from its first element, over the part's batch entries.
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

  // The smallest range of `v` (start aligned down for binding) that holds `count` elements of
  // `size` bytes from element `off`, rounded up to whole 32-bit words (packed halves are read a
  // word at a time) where the view allows.
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

  uint64_t groups_m(const Part& p) const { return div_up(p.M, pol_.rows_per_group); }
  uint64_t groups_n(const Part& p) const { return div_up(p.N, pol_.cols_per_group); }

  // A part's bindings and whether the part can run as one dispatch.
  struct Plan {
    Binding a, b, c, aux;
    bool m_groups_ok = false, n_groups_ok = false, z_ok = false;
    bool k_too_long = false;  // K above the kernel's chunk: run as accumulated pieces
    bool operands_fit() const { return a.fits && b.fits && c.fits; }
    bool whole() const { return operands_fit() && aux.fits && m_groups_ok && n_groups_ok && z_ok && !k_too_long; }
  };

  Plan plan(const Part& p) const {
    Plan r;
    const uint64_t ea = extent(p, 'a'), eb = extent(p, 'b'), ec = extent(p, 'c');
    r.c = bind(c_, p.c_off, ec, pol_.c_size);
    // The epilogue operand has C's layout and offsets; without one, C's range stands in.
    r.aux = epilogue_on_c() && has_operand() ? bind(aux_, p.c_off, ec, pol_.c_size)
            : row_sums()                     ? bind(aux_, p.row_sums_off, p.M, pol_.c_size)
                                             : r.c;
    // K == 0 reads neither A nor B; bind C's range in their place (a binding may not be empty).
    r.a = ea ? bind(a_, p.a_off, ea, pol_.a_size) : r.c;
    r.b = eb ? bind(b_, p.b_off, eb, pol_.b_size) : r.c;
    r.m_groups_ok = groups_m(p) <= info_.max_workgroup_count[pol_.x_walks_n ? 1 : 0];
    r.n_groups_ok = groups_n(p) <= info_.max_workgroup_count[pol_.x_walks_n ? 0 : 1];
    r.z_ok = uint64_t(p.outer) * p.inner <= info_.max_workgroup_count[2];
    // An epilogue on C must see whole sums, so those products never run as K chunks; row sums
    // accumulate, chunk by chunk.
    r.k_too_long = pol_.k_chunk > 0 && p.K > std::max(kKSplitAbove, pol_.k_chunk) && !epilogue_on_c();
    return r;
  }

  // Runs part `p` as one dispatch, or splits it into parts that can run.
  void launch(const Part& p) {
    if (p.M == 0 || p.N == 0) return;
    const Plan plan_p = plan(p);
    if (plan_p.whole()) {
      dispatch(p, plan_p);
    } else if (plan_p.k_too_long && plan_p.operands_fit()) {
      split_k(p, pol_.k_chunk);
    } else if (p.outer > 1 || p.inner > 1) {
      split_batch(p);
    } else {
      split_matrix(p, plan_p);
    }
  }

  // Halves the batch: whole outer batch entries first, then inner ones.
  void split_batch(const Part& p) {
    Part lo = p, hi = p;
    if (p.outer > 1) {
      lo.outer = p.outer / 2;
      hi.outer = p.outer - lo.outer;
      advance(hi, lo.outer, s_.a.stride_outer, s_.b.stride_outer, s_.c.stride_outer);
    } else {
      lo.inner = p.inner / 2;
      hi.inner = p.inner - lo.inner;
      advance(hi, lo.inner, s_.a.stride_inner, s_.b.stride_inner, s_.c.stride_inner);
    }
    launch(lo);
    launch(hi);
  }

  // One matrix that cannot run whole: splits the dimension that shrinks the operand that does
  // not fit.
  void split_matrix(const Part& p, const Plan& plan_p) {
    char dim;
    if (!plan_p.c.fits || !plan_p.aux.fits || (!plan_p.a.fits && !s_.trans_a) || !plan_p.m_groups_ok)
      dim = 'm';
    else if (!plan_p.a.fits)
      dim = 'k';
    else if (!plan_p.b.fits)
      dim = s_.trans_b ? 'n' : 'k';
    else
      dim = 'n';
    const uint32_t size = dim == 'm' ? p.M : dim == 'n' ? p.N : p.K;
    if (size < 2 * kSplitQuantum)
      throw Error(shape_name() + " cannot be split so that every buffer binding fits the device's "
                  "maxStorageBufferRange of " + vk::format_bytes(info_.max_storage_buffer_range) +
                  " (leading dimensions too large); use smaller operands");
    const uint32_t half = (size / 2 + kSplitQuantum - 1) / kSplitQuantum * kSplitQuantum;
    if (dim == 'k') {
      if (epilogue_on_c())
        throw Error(shape_name() + ": an operand does not fit one binding and a product with an epilogue cannot "
                    "be split along K; use smaller operands");
      split_k(p, half);
      return;
    }
    Part lo = p, hi = p;
    if (dim == 'm') {
      lo.M = half;
      hi.M = p.M - half;
      hi.a_off += s_.trans_a ? half : uint64_t(half) * lda_;
      hi.c_off += uint64_t(half) * ldc_;
      hi.row_sums_off += half;
    } else {
      lo.N = half;
      hi.N = p.N - half;
      hi.b_off += s_.trans_b ? uint64_t(half) * ldb_ : half;
      hi.c_off += half;
      hi.row_sums = false;  // the first N part adds each row's sum once
      hi.bias_off += half;
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

  // Vector loads (vec4 of floats, uvec4 of 8 halves) of an operand stay inside its rows when every
  // row start is a multiple of the vector width and so is the contiguous dimension.
  bool vec_ok(uint64_t base, uint32_t ld, const MatmulOperand& op, uint32_t contiguous) const {
    const uint32_t w = pol_.vec_width;
    return base % w == 0 && ld % w == 0 && op.stride_outer % w == 0 && op.stride_inner % w == 0 &&
           contiguous % w == 0;
  }

  MatmulPush push_constants(const Part& p, const Plan& plan_p) const {
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
    push.flags = p.bias ? 4u : 0u;
    if (pol_.trans_flags) push.flags |= (s_.trans_a ? 1u : 0u) | (s_.trans_b ? 2u : 0u);
    push.a_base = static_cast<uint32_t>(plan_p.a.base);
    push.b_base = static_cast<uint32_t>(plan_p.b.base);
    push.c_base = static_cast<uint32_t>(plan_p.c.base);
    push.batch = p.outer * p.inner;
    push.aux_base = static_cast<uint32_t>(plan_p.aux.base);
    return push;
  }

  // The constants both register-blocked kernels share.
  void fill_register_blocked(RegisterBlockedF16Spec& spec, const MatmulResultSpec& result, bool vec_a,
                             bool vec_b) const {
    spec.trans_a = s_.trans_a;
    spec.trans_b = s_.trans_b;
    spec.vec_a = vec_a;
    spec.vec_b = vec_b;
    spec.batch_per_group = pol_.batch_per_group;
    spec.result = result;
  }

  // The kernel's specialization constants for part `p`: the struct of the policy's kernel family.
  vk::SpecConstants spec_constants(const Part& p, const Plan& plan_p, bool vec_a, bool vec_b) const {
    const MatmulResultSpec result{p.beta != 0.0f, p.bias};
    // Only the first N part of a row-sums product adds the sums.
    const MatmulEpilogue epilogue = row_sums() && !p.row_sums ? MatmulEpilogue::none : s_.epilogue;
    switch (pol_.spec) {
      case MatmulPolicy::Spec::register_blocked: {
        const uint32_t w = 4;
        RegisterBlockedSpec spec;
        fill_register_blocked(spec, result, vec_a, vec_b);
        spec.wide_loads = pol_.wide_loads;
        spec.wide_stores = pol_.wide_stores && plan_p.c.base % w == 0 && plan_p.aux.base % w == 0 && ldc_ % w == 0 &&
                           p.N % w == 0 && s_.c.stride_outer % w == 0 && s_.c.stride_inner % w == 0;
        spec.epilogue = static_cast<uint32_t>(epilogue);
        return spec;
      }
      case MatmulPolicy::Spec::register_blocked_f16: {
        RegisterBlockedF16Spec spec;
        fill_register_blocked(spec, result, vec_a, vec_b);
        return spec;
      }
      case MatmulPolicy::Spec::tiled: {
        TiledSpec spec;
        spec.threads = pol_.tile.threads();
        spec.bm = pol_.tile.bm;
        spec.bn = pol_.tile.bn;
        spec.bk = pol_.tile.bk;
        spec.tm = pol_.tile.tm;
        spec.tn = pol_.tile.tn;
        spec.trans_a = s_.trans_a;
        spec.trans_b = s_.trans_b;
        spec.epilogue = static_cast<uint32_t>(pol_.epilogue ? epilogue : MatmulEpilogue::none);
        spec.result = result;
        return spec;
      }
      case MatmulPolicy::Spec::naive: break;
    }
    return result;
  }

  void dispatch(const Part& p, const Plan& plan_p) {
    // Without a bias, binding 3 is never read; C's range stands in.
    const Binding bias = p.bias ? bind(bias_, p.bias_off, p.N, 4) : plan_p.c;
    MatmulPush push = push_constants(p, plan_p);
    if (p.bias) push.bias_base = static_cast<uint32_t>(bias.base);
    bool vec_a = false, vec_b = false;
    if (pol_.vec_width != 0) {
      vec_a = !no_vec_ && vec_ok(plan_p.a.base, lda_, s_.a, s_.trans_a ? p.M : p.K) &&
              (!s_.trans_a || pol_.vec_a_trans);
      vec_b = !no_vec_ && vec_ok(plan_p.b.base, ldb_, s_.b, s_.trans_b ? p.K : p.N) && (s_.trans_b || pol_.vec_b_nn);
    }
    const vk::SpecConstants spec = spec_constants(p, plan_p, vec_a, vec_b);
    vk::ShaderId shader = pol_.shader;
    uint32_t texel_mask = 0;
    if (pol_.texel_shader && vec_a && vec_b && texel_view_fits(info_, plan_p.a.view) &&
        texel_view_fits(info_, plan_p.b.view)) {
      shader = *pol_.texel_shader;
      texel_mask = 0b0110;  // A and B
    }
    const uint32_t gm = static_cast<uint32_t>(groups_m(p)), gn = static_cast<uint32_t>(groups_n(p));
    const vk::Groups groups{pol_.x_walks_n ? gn : gm, pol_.x_walks_n ? gm : gn,
                            div_up(push.batch, pol_.batch_per_group)};
    const std::string label = profile_shapes_ ? shape_label(p, shader.name) : std::string(pol_.name);
    vk::PipelineCache& pipelines = rec_.context().pipelines();
    if (pol_.epilogue) {
      const vk::Kernel& k = pipelines.get(shader, 5, sizeof(MatmulPush), spec, texel_mask, pol_.subgroup_pin);
      rec_.dispatch(k, {plan_p.c.view, plan_p.a.view, plan_p.b.view, bias.view, plan_p.aux.view}, push, groups,
                    label.c_str());
    } else {
      const vk::Kernel& k = pipelines.get(shader, 4, sizeof(MatmulPush), spec, texel_mask, pol_.subgroup_pin);
      rec_.dispatch(k, {plan_p.c.view, plan_p.a.view, plan_p.b.view, bias.view}, push, groups, label.c_str());
    }
  }

  vk::Recorder& rec_;
  const vk::DeviceInfo& info_;
  vk::View c_, a_, b_, bias_, aux_;
  const MatmulShape& s_;
  const MatmulPolicy& pol_;
  uint32_t lda_ = 0, ldb_ = 0, ldc_ = 0;
  uint64_t align_ = 16;
  bool no_vec_ = false;  // Tuning::matmul_scalar: scalar loads only (tests, measurements)
  // Tuning::profile_shapes with --profile: one profile row per product shape and kernel variant.
  bool profile_shapes_ = false;
};

}  // namespace

void launch_matmul(vk::Recorder& rec, const vk::View& c, const vk::View& a, const vk::View& b, const vk::View& bias,
                   const MatmulShape& s, const MatmulPolicy& policy, const vk::View& aux) {
  Launcher(rec, c, a, b, bias, s, policy, aux).run();
}

}  // namespace vkvit::ops::matmul_detail

// Patch embedding: GPU vs reference on odd shapes (B=3, Np=7, C=3, P=4, D=13 and 12), and the reference
// backward vs finite differences.
#include <catch2/catch.hpp>

#include "harness.h"
#include "ops/patch_embed.h"

using namespace vkvit;
using namespace vkvit::test;

TEST_CASE("patch_embed reference backward matches finite differences", "[patch_embed][ref]") {
  ops::PatchEmbedShape s;
  s.B = 2;
  s.Np = 3;
  s.CPP = 4;  // C = 1, P = 2
  s.D = 5;
  const uint64_t T = s.Np + 1;
  auto patches = to_double(random_floats(s.B * s.Np * s.CPP, 1));
  auto wt = to_double(random_floats(s.D * s.CPP, 2)), b = to_double(random_floats(s.D, 3));
  auto cls = to_double(random_floats(s.D, 4)), pos = to_double(random_floats(T * s.D, 5));
  auto w = to_double(random_floats(s.B * T * s.D, 6));  // L = sum(tokens * w)
  auto loss = [&](const std::vector<double>& ws, const std::vector<double>& bs, const std::vector<double>& cs,
                  const std::vector<double>& ps) {
    std::vector<double> tokens(s.B * T * s.D);
    ops::ref::patch_embed_forward(tokens.data(), patches.data(), ws.data(), bs.data(), cs.data(), ps.data(), s);
    return dot(tokens, w);
  };
  std::vector<double> dw(wt.size(), 0.0), db(s.D, 0.0), dcls(s.D, 0.0), dpos(T * s.D, 0.0);
  ops::ref::patch_embed_backward(dw.data(), db.data(), dcls.data(), dpos.data(), w.data(), patches.data(), s);
  // L is linear in every parameter: central differences are exact up to rounding ~1e-10.
  using V = std::vector<double>;
  require_gradient_close(dw, numeric_gradient([&](const V& v) { return loss(v, b, cls, pos); }, wt), 1e-8, 1e-7,
                         "patch_embed dW");
  require_gradient_close(db, numeric_gradient([&](const V& v) { return loss(wt, v, cls, pos); }, b), 1e-8, 1e-7,
                         "patch_embed dbias");
  require_gradient_close(dcls, numeric_gradient([&](const V& v) { return loss(wt, b, v, pos); }, cls), 1e-8, 1e-7,
                         "patch_embed dcls");
  require_gradient_close(dpos, numeric_gradient([&](const V& v) { return loss(wt, b, cls, v); }, pos), 1e-8, 1e-7,
                         "patch_embed dpos");
}

TEST_CASE("patch_embed forward and backward on the GPU match the reference", "[patch_embed][gpu]") {
  // D = 13: one float per invocation; D = 12: the forward takes four as 64-bit pairs, or one with
  // Tuning::wide off.
  const auto [D, wide] = GENERATE(table<uint32_t, bool>({{13, true}, {12, true}, {12, false}}));
  CAPTURE(D, wide);
  ScopedTuning wide_accesses([on = wide](vk::Tuning& k) { k.wide = on; });
  ops::PatchEmbedShape s;
  s.B = 3;
  s.Np = 7;
  s.CPP = 3 * 4 * 4;  // C = 3, P = 4
  s.D = D;
  const size_t T = s.Np + 1, n_tok = s.B * T * s.D;
  auto patches = random_floats(s.B * s.Np * s.CPP, 11);
  auto wt = random_floats(s.D * s.CPP, 12), b = random_floats(s.D, 13);
  auto cls = random_floats(s.D, 14), pos = random_floats(T * s.D, 15), dtok = random_floats(n_tok, 16);
  // Backward accumulates: start every gradient from random values.
  auto dw0 = random_floats(wt.size(), 17), db0 = random_floats(s.D, 18);
  auto dcls0 = random_floats(s.D, 19), dpos0 = random_floats(T * s.D, 20);

  DeviceTensor t_p(patches), t_w(wt), t_b(b), t_cls(cls), t_pos(pos), t_tok(n_tok), proj(s.B * s.Np * s.D);
  DeviceTensor t_dtok(dtok), t_dw(dw0), t_db(db0), t_dcls(dcls0), t_dpos(dpos0);
  vk::Recorder rec(ctx());
  ops::patch_embed_forward(rec, t_tok.view(), proj.view(), t_p.view(), t_w.view(), t_b.view(), t_cls.view(),
                           t_pos.view(), s);
  ops::patch_embed_backward(rec, t_dw.view(), t_db.view(), t_dcls.view(), t_dpos.view(), proj.view(),
                            t_dtok.view(), t_p.view(), s);
  rec.submit_and_wait();

  auto pd = to_double(patches), dtd = to_double(dtok);
  auto wd = to_double(wt), bd = to_double(b), cd = to_double(cls), posd = to_double(pos);
  std::vector<double> ref_tok(n_tok);
  auto ref_dw = to_double(dw0), ref_db = to_double(db0), ref_dcls = to_double(dcls0), ref_dpos = to_double(dpos0);
  ops::ref::patch_embed_forward(ref_tok.data(), pd.data(), wd.data(), bd.data(), cd.data(), posd.data(), s);
  ops::ref::patch_embed_backward(ref_dw.data(), ref_db.data(), ref_dcls.data(), ref_dpos.data(), dtd.data(),
                                 pd.data(), s);

  // Tokens: fp32 dot products of length CPP = 48 over values in [-1, 1) plus two additions: ~3e-6 worst case.
  require_close(t_tok.read(), ref_tok, 5e-6, 1e-5, "patch_embed tokens");
  // dW sums B * Np = 21 products, db 21 values, dcls/dpos B = 3 values: well under 5e-6.
  require_close(t_dw.read(), ref_dw, 5e-6, 1e-5, "patch_embed dW");
  require_close(t_db.read(), ref_db, 5e-6, 1e-5, "patch_embed dbias");
  require_close(t_dcls.read(), ref_dcls, 1e-6, 1e-6, "patch_embed dcls");
  require_close(t_dpos.read(), ref_dpos, 1e-6, 1e-6, "patch_embed dpos");
}

// The recorder's barriers. Two ways to check them, because the CPU drivers run commands in order
// and so never show a missing barrier in results:
// - synchronization validation (VK_LAYER_KHRONOS_validation) on a training step's forward and
//   backward: silent with the barriers, hazards reported with them dropped (Tuning::drop_barriers),
//   which proves that the suite's sync-validation run (ctest validation.sync_gpu_tests) can fail;
// - the recorder's own overlap tracking, case by case: the layer misses some hazards (a second
//   dispatch that writes a read-write binding), the tracking must not.
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "harness.h"
#include "model/vit.h"

using namespace vkvit;
using namespace vkvit::test;

namespace {

// Overlap barriers a fresh recorder inserts between commands touching `first`, then `second`.
// The commands record nothing (external with an empty body): only the tracking is under test.
uint64_t barriers_between(std::initializer_list<vk::View> first, std::initializer_list<vk::View> second) {
  vk::Recorder rec(ctx());
  rec.external(first, "first", [](VkCommandBuffer) {});
  rec.external(second, "second", [](VkCommandBuffer) {});
  rec.submit_and_wait();
  return rec.overlap_barriers();
}

vk::View range(const DeviceTensor& t, uint64_t offset, uint64_t size) { return vk::View{t.view().buffer, offset, size}; }

// A context with synchronization validation on (device and tuning as the suite's), or null when
// the layer or its synchronization validation is missing here; `why` then says what is missing.
std::unique_ptr<vk::Context> sync_validated_context(std::string& why) {
  vk::ContextOptions o = vk::ContextOptions::from_env();
  o.validation = true;
  o.sync_validation = true;
  try {
    return std::make_unique<vk::Context>(o);
  } catch (const Error& e) {
    if (std::string(e.what()).find("requested but") == std::string::npos) throw;
    why = e.what();
    return nullptr;
  }
}

// Records the forward and backward pass of a training step of a tiny ViT (the trainer's order:
// zero the gradients, forward, backward), submits and waits; returns the validation errors that
// it added on `c`.
int errors_of_training_step(vk::Context& c) {
  model::VitConfig cfg;
  cfg.name = "vit_barrier_test";
  cfg.image_size = 8, cfg.patch_size = 4, cfg.in_chans = 2, cfg.dim = 12, cfg.depth = 2, cfg.heads = 3;
  cfg.mlp_dim = 20, cfg.num_classes = 5, cfg.pool = "cls";
  const uint32_t batch = 2;
  model::Vit vit(c, cfg, batch);
  vit.init(7);
  const auto patches = random_floats(batch * cfg.num_patches() * cfg.patch_dim(), 8);
  const auto dlogits_host = random_floats(batch * cfg.num_classes, 9);
  c.upload(vit.patches_input(), patches.data(), patches.size() * 4);
  vk::Buffer dlogits(c, dlogits_host.size() * 4, vk::MemoryKind::device, "dlogits");
  c.upload(dlogits.view(), dlogits_host.data(), dlogits_host.size() * 4);

  const int before = c.validation_errors();
  vk::Recorder rec(c);
  rec.fill(vit.grads_view(), 0.0f);
  vit.forward(rec, batch);
  vit.backward(rec, batch, dlogits.view());
  rec.submit_and_wait();
  return c.validation_errors() - before;
}

}  // namespace

TEST_CASE("VKVIT_VALIDATION=sync adds synchronization validation, =1 keeps its meaning", "[barriers]") {
  {
    ScopedEnv env("VKVIT_VALIDATION", "sync");
    const vk::ContextOptions o = vk::ContextOptions::from_env();
    CHECK(o.validation);
    CHECK(o.sync_validation);
  }
  {
    ScopedEnv env("VKVIT_VALIDATION", "1");
    const vk::ContextOptions o = vk::ContextOptions::from_env();
    CHECK(o.validation);
    CHECK_FALSE(o.sync_validation);
  }
  ScopedEnv env("VKVIT_VALIDATION", "0");
  const vk::ContextOptions o = vk::ContextOptions::from_env();
  CHECK_FALSE(o.validation);
  CHECK_FALSE(o.sync_validation);
}

TEST_CASE("synchronization validation reports the hazards of a step recorded without barriers, none with them",
          "[barriers][gpu]") {
  std::string why;
  std::unique_ptr<vk::Context> checked = sync_validated_context(why);
  if (!checked) {
    WARN("skipped: " << why);
    return;
  }
  CHECK(errors_of_training_step(*checked) == 0);
  // Hazards logged below ("validation: ... SYNC-HAZARD-...") are what this section expects.
  checked->tuning_for_tests().drop_barriers = true;
  CHECK(errors_of_training_step(*checked) > 0);
  checked->tuning_for_tests().drop_barriers = false;
  CHECK(errors_of_training_step(*checked) == 0);
}

TEST_CASE("the recorder puts a barrier between commands whose ranges overlap, and only there", "[barriers][gpu]") {
  const DeviceTensor a(256), b(256);  // 1 KiB each
  SECTION("overlapping ranges of one buffer") {
    CHECK(barriers_between({range(a, 0, 512)}, {range(a, 0, 512)}) == 1);      // the same range
    CHECK(barriers_between({range(a, 0, 512)}, {range(a, 256, 512)}) == 1);    // partial, from below
    CHECK(barriers_between({range(a, 256, 512)}, {range(a, 0, 512)}) == 1);    // partial, from above
    CHECK(barriers_between({range(a, 0, 1024)}, {range(a, 256, 64)}) == 1);    // nested inside
    CHECK(barriers_between({range(a, 256, 64)}, {range(a, 0, 1024)}) == 1);    // around
    CHECK(barriers_between({range(a, 0, 512)}, {range(a, 508, 4)}) == 1);      // the last float
  }
  SECTION("ranges that do not overlap") {
    CHECK(barriers_between({range(a, 0, 512)}, {range(a, 512, 512)}) == 0);    // adjacent
    CHECK(barriers_between({range(a, 512, 512)}, {range(a, 0, 512)}) == 0);    // adjacent, below
    CHECK(barriers_between({range(a, 0, 64)}, {range(a, 256, 64)}) == 0);      // apart
    CHECK(barriers_between({range(a, 0, 1024)}, {range(b, 0, 1024)}) == 0);    // other buffer, same offsets
  }
  SECTION("zero-length ranges touch nothing") {
    CHECK(barriers_between({range(a, 0, 1024)}, {range(a, 256, 0)}) == 0);
    CHECK(barriers_between({range(a, 0, 1024)}, {range(a, 0, 0)}) == 0);
    CHECK(barriers_between({range(a, 256, 0)}, {range(a, 0, 1024)}) == 0);
  }
  SECTION("any view of a command against any pending range") {
    CHECK(barriers_between({range(b, 0, 64), range(a, 0, 64)}, {range(b, 512, 64), range(a, 32, 4)}) == 1);
    CHECK(barriers_between({range(b, 0, 64), range(a, 0, 64)}, {range(b, 512, 64), range(a, 64, 64)}) == 0);
  }
}

TEST_CASE("the recorder forgets its pending ranges at each barrier and each submission or flush", "[barriers][gpu]") {
  const DeviceTensor a(256), b(256);
  auto touch = [](vk::Recorder& rec, vk::View v) { rec.external({v}, "touch", [](VkCommandBuffer) {}); };
  SECTION("a range two commands back still counts") {
    vk::Recorder rec(ctx());
    touch(rec, range(a, 0, 64));
    touch(rec, range(b, 0, 64));
    touch(rec, range(a, 32, 64));
    rec.submit_and_wait();
    CHECK(rec.overlap_barriers() == 1);
  }
  SECTION("after a barrier only the ranges since then count") {
    vk::Recorder rec(ctx());
    touch(rec, range(a, 0, 64));
    touch(rec, range(a, 32, 64));  // barrier: pending is now [32, 96)
    touch(rec, range(a, 0, 16));   // overlaps only the range before the barrier
    CHECK(rec.overlap_barriers() == 1);
    rec.barrier();
    touch(rec, range(a, 32, 64));
    rec.submit_and_wait();
    CHECK(rec.overlap_barriers() == 1);
  }
  SECTION("a submission") {
    vk::Recorder rec(ctx());
    touch(rec, range(a, 0, 64));
    rec.submit_and_wait();
    touch(rec, range(a, 0, 64));  // ordered by the barrier that opens the new submission
    rec.submit_and_wait();
    CHECK(rec.overlap_barriers() == 0);
  }
  SECTION("a flush") {
    vk::Recorder rec(ctx());
    touch(rec, range(a, 0, 64));
    const int part = rec.flush();
    touch(rec, range(a, 0, 64));
    rec.submit_and_wait();
    // With profiling on, flush() submits nothing (-1) and the recording simply goes on.
    CHECK(rec.overlap_barriers() == (part < 0 ? 1u : 0u));
  }
  SECTION("dropped on purpose (Tuning::drop_barriers)") {
    ScopedTuning drop([](vk::Tuning& t) { t.drop_barriers = true; });
    CHECK(barriers_between({range(a, 0, 64)}, {range(a, 0, 64)}) == 0);
  }
}

TEST_CASE("fill and copy are tracked as the ranges they write and read", "[barriers][gpu]") {
  const DeviceTensor a(std::vector<float>(256, 1.0f)), b(256);
  vk::Recorder rec(ctx());
  rec.fill(range(a, 512, 512), 2.0f);
  rec.copy(range(a, 0, 512), range(b, 0, 512));    // reads the half fill did not touch: no barrier
  CHECK(rec.overlap_barriers() == 0);
  rec.copy(range(a, 256, 512), range(b, 512, 512));  // reads what fill wrote
  CHECK(rec.overlap_barriers() == 1);
  rec.fill(range(b, 512, 4), 3.0f);  // writes what the second copy wrote
  CHECK(rec.overlap_barriers() == 2);
  rec.fill(range(b, 0, 4), 4.0f);  // the first copy's range, ordered by the barrier before the second
  CHECK(rec.overlap_barriers() == 2);
  rec.submit_and_wait();
  const std::vector<float> out = b.read();
  CHECK(out[0] == 4.0f);
  CHECK(out[1] == 1.0f);  // b[0..127] = a[0..127]: ones
  CHECK(out[127] == 1.0f);
  CHECK(out[128] == 3.0f);
  CHECK(out[129] == 1.0f);  // b[128..255] = a[64..191]: ones, then the fill's twos
  CHECK(out[191] == 1.0f);
  CHECK(out[192] == 2.0f);
  CHECK(out[255] == 2.0f);
}

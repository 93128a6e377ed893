// Learning-rate schedule: warmup start and end, warmup midpoint, cosine midpoint and quarter, the
// end of training and past it, no warmup, fractional warmup, and timm's formula on every step.
#include <catch2/catch.hpp>

#include <cmath>

#include "base/error.h"
#include "train/schedule.h"

using namespace vkvit;
using namespace vkvit::train;

namespace {
TrainConfig optim(double lr, double min_lr, double warmup_lr, double warmup_epochs, int epochs) {
  TrainConfig t;
  t.lr = lr;
  t.min_lr = min_lr;
  t.warmup_lr = warmup_lr;
  t.warmup_epochs = warmup_epochs;
  t.epochs = epochs;
  return t;
}
}  // namespace

TEST_CASE("schedule: linear warmup to lr, then cosine to min_lr at the end", "[schedule]") {
  // 10 epochs of 100 steps, 2 of them warmup: W = 200, T = 1000.
  const LrSchedule s = LrSchedule::from_config(optim(1e-3, 1e-5, 1e-6, 2, 10), 100);
  CHECK(s.warmup_steps() == 200);
  CHECK(s.total_steps() == 1000);
  const double tol = 1e-15;
  CHECK(s.at(0) == Approx(1e-6).margin(tol));
  CHECK(s.at(100) == Approx((1e-6 + 1e-3) / 2).margin(tol));
  CHECK(s.at(199) == Approx(1e-6 + (1e-3 - 1e-6) * 199 / 200).margin(tol));
  CHECK(s.at(200) == Approx(1e-3).margin(tol));                        // warmup end = peak
  CHECK(s.at(400) == Approx(1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + std::cos(M_PI / 4))).margin(tol));
  CHECK(s.at(600) == Approx((1e-3 + 1e-5) / 2).margin(tol));          // mid-cosine
  CHECK(s.at(999) > 1e-5);                                             // the last update
  CHECK(s.at(999) == Approx(1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + std::cos(M_PI * 799 / 800))).margin(tol));
  CHECK(s.at(1000) == 1e-5);                                           // end
  CHECK(s.at(123456) == 1e-5);
  // Rising through warmup, falling after.
  for (uint64_t i = 1; i < 200; ++i) CHECK(s.at(i) > s.at(i - 1));
  for (uint64_t i = 201; i <= 1000; ++i) CHECK(s.at(i) <= s.at(i - 1));
}

TEST_CASE("schedule: no warmup starts at lr, fractional warmup rounds to steps", "[schedule]") {
  const LrSchedule none = LrSchedule::from_config(optim(0.1, 0, 0.001, 0, 4), 25);
  CHECK(none.warmup_steps() == 0);
  CHECK(none.at(0) == 0.1);
  CHECK(none.at(50) == Approx(0.05).margin(1e-15));
  CHECK(none.at(100) == 0);

  const LrSchedule half = LrSchedule::from_config(optim(0.1, 0.01, 0, 0.5, 2), 10);
  CHECK(half.warmup_steps() == 5);
  CHECK(half.at(0) == 0);
  CHECK(half.at(5) == Approx(0.1));
  CHECK(half.at(20) == Approx(0.01));

  // All warmup: the rate rises to lr and training ends there.
  const LrSchedule all = LrSchedule::from_config(optim(0.1, 0.01, 0, 3, 3), 10);
  CHECK(all.at(29) == Approx(0.1 * 29 / 30));
  CHECK(all.at(30) == 0.01);

  // Warmup longer than the run: cut at the end of the run.
  const LrSchedule cut = LrSchedule::from_config(optim(0.1, 0.01, 0, 5, 2), 10);
  CHECK(cut.warmup_steps() == 20);
  CHECK(cut.at(10) == Approx(0.05));

  CHECK_THROWS_AS(LrSchedule::from_config(optim(0.1, 0, 0, 1, 3), 0), Error);
}

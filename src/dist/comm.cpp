// Comm (see comm.h): MPI when built with it (VKVIT_HAVE_MPI) and started by a launcher; one
// process otherwise.
#include "dist/comm.h"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>

#include "base/error.h"

#ifdef VKVIT_HAVE_MPI
#include <mpi.h>
#endif

namespace vkvit::dist {

namespace {

Comm g_world;
bool g_initialized = false;
[[maybe_unused]] bool g_mpi_active = false;  // MPI_Init ran (MPI builds only)

// The world size a launcher announced in the environment (0: no launcher).
long launcher_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"}) {
    if (const char* v = std::getenv(name); v && *v) return std::strtol(v, nullptr, 10);
  }
  // PMIx announces a rank before (or without) a size.
  if (std::getenv("PMIX_RANK")) return 1;
  return 0;
}

std::string hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown host";
  return buf;
}

#ifdef VKVIT_HAVE_MPI
// MPI counts are ints: large arrays go in pieces of at most 2^30 elements.
constexpr uint64_t kMaxCount = uint64_t(1) << 30;
#endif

}  // namespace

// Before init() (library users, the tests) the world is this one process.
Comm& Comm::world() { return g_world; }

bool Comm::available() {
#ifdef VKVIT_HAVE_MPI
  return true;
#else
  return false;
#endif
}

void Comm::init(int* argc, char*** argv) {
  if (g_initialized) return;
  g_initialized = true;
  g_world.host_ = hostname();
  const long launched = launcher_world_size();
#ifdef VKVIT_HAVE_MPI
  if (launched > 0) {
    MPI_Init(argc, argv);
    g_mpi_active = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_world.rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &g_world.size_);
    // Ranks that share a machine (and its GPUs): the local rank picks the device.
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_world.rank_, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &g_world.local_rank_);
    MPI_Comm_size(local, &g_world.local_size_);
    MPI_Comm_free(&local);
  }
#else
  (void)argc;
  (void)argv;
  if (launched > 1)
    throw Error("this vkvit was built without MPI, so it cannot join a run of " + std::to_string(launched) +
                " processes: install libopenmpi-dev and rebuild (CMake VKVIT_MPI=ON), or run a single process");
#endif
}

void Comm::finalize() {
#ifdef VKVIT_HAVE_MPI
  if (g_mpi_active) {
    MPI_Finalize();
    g_mpi_active = false;
  }
#endif
}

std::string Comm::describe() const {
  return "rank " + std::to_string(rank_) + " of " + std::to_string(size_) + " on " + host_;
}

void Comm::allreduce_sum(float* data, uint64_t count) { allreduce(data, count, Element::f32, Reduce::sum); }
void Comm::allreduce_sum(double* data, uint64_t count) { allreduce(data, count, Element::f64, Reduce::sum); }
void Comm::allreduce_sum(uint64_t* data, uint64_t count) { allreduce(data, count, Element::u64, Reduce::sum); }
void Comm::allreduce_min(uint64_t* data, uint64_t count) { allreduce(data, count, Element::u64, Reduce::min); }
void Comm::allreduce_max(double* data, uint64_t count) { allreduce(data, count, Element::f64, Reduce::max); }

void Comm::allreduce(void* data, uint64_t count, Element element, Reduce reduce) {
#ifdef VKVIT_HAVE_MPI
  if (size_ <= 1) return;
  const MPI_Datatype type = element == Element::f32 ? MPI_FLOAT : element == Element::f64 ? MPI_DOUBLE : MPI_UINT64_T;
  const MPI_Op op = reduce == Reduce::sum ? MPI_SUM : reduce == Reduce::min ? MPI_MIN : MPI_MAX;
  const uint64_t size = element == Element::f32 ? 4 : 8;
  // MPI counts are ints: large arrays go in pieces of at most 2^30 elements.
  for (uint64_t at = 0; at < count; at += kMaxCount)
    MPI_Allreduce(MPI_IN_PLACE, static_cast<char*>(data) + at * size, static_cast<int>(std::min(kMaxCount, count - at)),
                  type, op, MPI_COMM_WORLD);
#else
  (void)data, (void)count, (void)element, (void)reduce;
#endif
}

void Comm::broadcast(void* data, uint64_t bytes, int root) {
#ifdef VKVIT_HAVE_MPI
  if (size_ <= 1) return;
  char* p = static_cast<char*>(data);
  for (uint64_t at = 0; at < bytes; at += kMaxCount)
    MPI_Bcast(p + at, static_cast<int>(std::min(kMaxCount, bytes - at)), MPI_BYTE, root, MPI_COMM_WORLD);
#else
  (void)data, (void)bytes, (void)root;
#endif
}

std::vector<uint64_t> Comm::allgather(const std::vector<uint64_t>& values) {
  std::vector<uint64_t> all;
  for (int r = 0; r < size_; ++r) all.insert(all.end(), values.begin(), values.end());
#ifdef VKVIT_HAVE_MPI
  if (size_ > 1)
    MPI_Allgather(values.data(), static_cast<int>(values.size()), MPI_UINT64_T, all.data(),
                  static_cast<int>(values.size()), MPI_UINT64_T, MPI_COMM_WORLD);
#endif
  return all;
}

void Comm::abort(int code) {
#ifdef VKVIT_HAVE_MPI
  if (g_mpi_active) MPI_Abort(MPI_COMM_WORLD, code);
#endif
  std::exit(code);
}

void require_single_process(const std::string& command) {
  const Comm& w = Comm::world();
  if (w.distributed())
    throw Error("vkvit " + command + " runs in one process, but this is " + w.describe() +
                ": only train and eval split their work across ranks; run it without mpirun");
}

}  // namespace vkvit::dist

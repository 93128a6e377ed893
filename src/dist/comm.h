// The processes of one data-parallel run (`mpirun -np N vkvit train ...`) and the few collectives
// training needs: broadcast, allreduce (blocking, and non-blocking for gradient buckets), and an
// abort that takes every rank down. All of MPI lives behind this header (comm.cpp), so the rest of
// vkvit is the same with and without it.
//
// MPI is initialised only when a launcher started the process (mpirun sets OMPI_COMM_WORLD_SIZE,
// Slurm/MPICH/PMIx set PMI_SIZE or PMIX_RANK): a plain `vkvit train` never pays MPI's start-up.
// Without a launcher, or in a build without MPI (VKVIT_MPI=OFF), the world is one process and
// every collective is a no-op; a build without MPI refuses to run under a launcher with more than
// one process, rather than training N unrelated copies into the same run folder.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace vkvit::dist {

class Comm {
 public:
  // The world of this process: one process until init() joins a launcher's world (main() calls
  // it before anything else).
  static Comm& world();
  // Joins the launcher's world when there is one; safe to call once per process.
  static void init(int* argc, char*** argv);
  // Leaves the world at a normal exit (every rank must call it).
  static void finalize();
  // True when this binary was built with MPI.
  static bool available();

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }  // index among the ranks on this machine
  int local_size() const { return local_size_; }  // ranks on this machine
  bool is_root() const { return rank_ == 0; }
  bool distributed() const { return size_ > 1; }
  // "rank 1 of 4 on host-b": names this process in error lines.
  std::string describe() const;

  // Element-wise sums over all ranks, in place.
  void allreduce_sum(float* data, uint64_t count);
  void allreduce_sum(double* data, uint64_t count);
  void allreduce_sum(uint64_t* data, uint64_t count);
  void allreduce_min(uint64_t* data, uint64_t count);
  void allreduce_max(double* data, uint64_t count);
  // `bytes` from rank `root` to every rank.
  void broadcast(void* data, uint64_t bytes, int root = 0);
  // Every rank's `values` (the same count on every rank), rank after rank.
  std::vector<uint64_t> allgather(const std::vector<uint64_t>& values);

  // Ends every rank of the run with exit code `code` (the launcher kills the others); the caller
  // has already printed why.
  [[noreturn]] void abort(int code);

 private:
  enum class Element { f32, f64, u64 };
  enum class Reduce { sum, min, max };
  void allreduce(void* data, uint64_t count, Element element, Reduce reduce);

  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  std::string host_;
};

// Throws vkvit::Error naming `command` when this process is one of several ranks: commands that
// write files or print results run in one process (only `train` and `eval` are data-parallel).
void require_single_process(const std::string& command);

}  // namespace vkvit::dist

// Specialization constants 9 and 10 of every matmul kernel: whether the result reads C (beta != 0)
// and whether it adds a bias. The push block carries the same facts (beta, flags bit 2) and the
// stores test both; the constants let the launcher compile the unused half away. On llvmpipe that
// is the point: an `if` does not branch there, both sides run with the lanes masked off, so a C or
// bias load behind a false runtime test still costs its loop over the lanes in every store
// (BENCHMARKS.md, "an `if` does not branch"). The launcher sets both for every
// kernel (matmul_detail::kResultSpecId); the defaults leave the runtime tests alone.
layout(constant_id = 9) const bool READS_C = true;
layout(constant_id = 10) const bool HAS_BIAS = true;

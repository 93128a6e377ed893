// The fixed sine-cosine table; see sincos_pos_embed.h.
#include "model/sincos_pos_embed.h"

#include <cmath>
#include <string>

#include "base/error.h"

namespace vkvit::model {

std::vector<float> sincos_pos_embed(int dim, int grid) {
  if (dim <= 0 || dim % 4 != 0)
    throw Error("model config: pos_embed sincos needs dim to be a multiple of 4 (got " + std::to_string(dim) +
                "); use pos_embed: learned or another width");
  if (grid < 1) throw Error("internal: sincos_pos_embed: grid " + std::to_string(grid));
  const int Q = dim / 4;
  std::vector<double> omega(Q);
  for (int k = 0; k < Q; ++k) omega[k] = std::pow(10000.0, -double(k) / Q);
  std::vector<float> table(size_t(1 + grid * grid) * dim, 0.0f);
  for (int i = 0; i < grid; ++i)
    for (int j = 0; j < grid; ++j) {
      float* row = table.data() + size_t(1 + i * grid + j) * dim;
      for (int k = 0; k < Q; ++k) {
        row[k] = float(std::sin(j * omega[k]));
        row[Q + k] = float(std::cos(j * omega[k]));
        row[2 * Q + k] = float(std::sin(i * omega[k]));
        row[3 * Q + k] = float(std::cos(i * omega[k]));
      }
    }
  return table;
}

}  // namespace vkvit::model

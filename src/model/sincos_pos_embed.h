// Fixed 2D sine-cosine position embedding (model.pos_embed: sincos), as MAE's
// get_2d_sincos_pos_embed (facebookresearch/mae, util/pos_embed.py) with a zero cls row. It is a
// function of the grid and the width, not a parameter: the checkpoint does not carry it, the
// optimizer never sees it, and a model runs at another patch grid without resampling anything.
//
// For the patch at row i, column j of a G x G grid (token 1 + i G + j), width D (a multiple of 4),
// Q = D / 4 frequencies w_k = 10000^(-k / Q):
//   [0, Q)      sin(j w_k)     [Q, 2Q)   cos(j w_k)      (the column, which MAE names emb_h)
//   [2Q, 3Q)    sin(i w_k)     [3Q, 4Q)  cos(i w_k)      (the row)
#pragma once
#include <vector>

namespace vkvit::model {

// (1 + grid * grid, dim) row-major; row 0 (the cls token's) is zero. Throws Error when dim is not
// a multiple of 4 or grid < 1.
std::vector<float> sincos_pos_embed(int dim, int grid);

}  // namespace vkvit::model

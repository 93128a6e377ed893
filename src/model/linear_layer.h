// One nn.Linear of the model (qkv, attention proj, fc1, fc2, head) with both of its precisions
// behind one call: the fp32 ops, or under mixed precision (train.amp, see Vit) the fp16 ops on a
// copy of its input and of its weight with fp32 accumulation. The layer holds its views into the
// model's flat fp32 parameters and gradients, its view into the model's fp16 parameter copy (which
// the model refreshes once per forward), and its own fp16 input copy in the activation arena.
#pragma once
#include <cstdint>
#include <string>

#include "model/vit_params.h"
#include "vk/memory.h"
#include "vk/recorder.h"

namespace vkvit::model {

class ActivationAlloc;  // model/token_mixer.h

class Linear {
 public:
  Linear() = default;  // an empty member slot: assign a layer built by the constructor below before use
  // The layer `name` ("blocks.0.mlp.fc1"): tensors name.weight (out, in) and name.bias (out) of
  // `layout`, viewed inside the flat buffers `params` and `grads`.
  Linear(const ParamLayout& layout, const vk::View& params, const vk::View& grads, const std::string& name);

  // Mixed precision from here on: the products read the weight from params16, the model's fp16
  // copy of the flat parameter buffer (same layout, 2 bytes an element). Call before allocate().
  void enable_f16(const vk::View& params16);

  // Mixed precision: the fp16 copy of the input for `rows` (at most) rows, kept from the forward
  // for the weight gradient, named "<name> in fp16 <shape>"; and the shared scratch that receives
  // the fp16 cast of the output gradient (reserve_output_grad_f16). fp32: nothing.
  void allocate(ActivationAlloc& alloc, uint64_t rows, const std::string& shape);
  // Takes the scratch shared by every layer's output-gradient cast, sized for the largest of them
  // (`largest`: elements of the widest output gradient), before any layer's allocate() asks for it.
  static void reserve_output_grad_f16(ActivationAlloc& alloc, uint64_t largest);

  // out (M, out) = in (M, in) W^T + b, plus residual (M, out) in the product's stores where the
  // matmul allows it, when residual is not empty. The input is remembered for backward().
  void forward(vk::Recorder& rec, const vk::View& out, const vk::View& in, uint32_t M,
               const vk::View& residual = {});
  // pre = in W^T + b, out = gelu(pre), the GELU in the product's stores where the matmul allows
  // it; pre empty: not kept (inference).
  void forward_gelu(vk::Recorder& rec, const vk::View& out, const vk::View& pre, const vk::View& in, uint32_t M);

  // Freezing (Vit::set_frozen): a frozen weight's or bias's gradient is not computed.
  void set_frozen(bool weight, bool bias);

  // After forward(): din (M, in) = dout W, added to din when `accumulate` else overwriting it
  // (din empty: not computed, the layer below needs no gradient); the weight and bias gradients
  // accumulate.
  void backward(vk::Recorder& rec, const vk::View& din, bool accumulate, const vk::View& dout, uint32_t M);
  // After forward() on an input that is gelu(pre) (fc2 after fc1's GELU): dpre (M, in) =
  // (dout W) * gelu'(pre), overwritten, the GELU's backward in the product's stores where the
  // matmul allows it, else through dhidden (M, in) scratch; the weight and bias gradients accumulate.
  void backward_through_gelu(vk::Recorder& rec, const vk::View& dpre, const vk::View& dout, const vk::View& pre,
                             const vk::View& dhidden, uint32_t M);

 private:
  void check_forwarded(const char* what) const;

  std::string name_;
  uint32_t out_ = 0, in_ = 0;
  uint64_t weight_offset_ = 0;  // floats into the flat buffers (the fp16 copy's too)
  vk::View w_, b_;              // (out, in) (out)
  vk::View dw_, db_;            // same shapes
  bool frozen_w_ = false, frozen_b_ = false;
  vk::View input_;              // fp32: the last forward's input, for the weight gradient
  // Mixed precision (enable_f16).
  bool f16_ = false;
  vk::View w16_;   // (out, in) fp16
  vk::View in16_;  // (rows, in) fp16: the cast of the last forward's input
  vk::View dy16_;  // fp16 scratch shared by all layers: the cast of the output gradient
};

}  // namespace vkvit::model

# Shader variants: one SPIR-V module per line, compiled from a body in shaders/common/ with glslc
# -D defines, so a block size or an operand type is one line here instead of a file. A body carries
# its own `#version 450` and extensions. The name is the shader's C++ identifier
# (vkvit::shaders::<name>, the generated vk/shader_ids.h) and its name in the pipeline cache,
# errors and the profile.
#   vkvit_shader_variant(<name> <body in shaders/common/> [<define>[=<value>] ...])
#
# A body that includes common/wide.glsl is built twice: `<name>`, without any 64-bit type, for
# every device, and `<name>_wide` (WIDE_MODULE), with the 64-bit pairs, which the launchers pick
# where they set their WIDE constant (shaderInt64 and the tuning's wide switches; ops/launch.h).

# Fused attention per head width (src/ops/attention.cpp): the forward, the backward's dQ, and its dK, dV.
vkvit_shader_variant(attention_fused_fwd_d16 attention_fused_fwd.glsl HEAD_DIM=16u)
vkvit_shader_variant(attention_fused_fwd_d16_wide attention_fused_fwd.glsl HEAD_DIM=16u WIDE_MODULE)
vkvit_shader_variant(attention_fused_fwd_d32 attention_fused_fwd.glsl HEAD_DIM=32u)
vkvit_shader_variant(attention_fused_fwd_d32_wide attention_fused_fwd.glsl HEAD_DIM=32u WIDE_MODULE)
vkvit_shader_variant(attention_fused_fwd_d64 attention_fused_fwd.glsl HEAD_DIM=64u)
vkvit_shader_variant(attention_fused_fwd_d64_wide attention_fused_fwd.glsl HEAD_DIM=64u WIDE_MODULE)
vkvit_shader_variant(attention_fused_dq_d16 attention_fused_dq.glsl HEAD_DIM=16u)
vkvit_shader_variant(attention_fused_dq_d16_wide attention_fused_dq.glsl HEAD_DIM=16u WIDE_MODULE)
vkvit_shader_variant(attention_fused_dq_d32 attention_fused_dq.glsl HEAD_DIM=32u)
vkvit_shader_variant(attention_fused_dq_d32_wide attention_fused_dq.glsl HEAD_DIM=32u WIDE_MODULE)
vkvit_shader_variant(attention_fused_dq_d64 attention_fused_dq.glsl HEAD_DIM=64u)
vkvit_shader_variant(attention_fused_dq_d64_wide attention_fused_dq.glsl HEAD_DIM=64u WIDE_MODULE)
vkvit_shader_variant(attention_fused_dkv_d16 attention_fused_dkv.glsl HEAD_DIM=16u)
vkvit_shader_variant(attention_fused_dkv_d16_wide attention_fused_dkv.glsl HEAD_DIM=16u WIDE_MODULE)
vkvit_shader_variant(attention_fused_dkv_d32 attention_fused_dkv.glsl HEAD_DIM=32u)
vkvit_shader_variant(attention_fused_dkv_d32_wide attention_fused_dkv.glsl HEAD_DIM=32u WIDE_MODULE)
vkvit_shader_variant(attention_fused_dkv_d64 attention_fused_dkv.glsl HEAD_DIM=64u)
vkvit_shader_variant(attention_fused_dkv_d64_wide attention_fused_dkv.glsl HEAD_DIM=64u WIDE_MODULE)

# Gradient-norm pass 1 (src/ops/grad_norm.cpp) over a storage buffer, or reading whole vec4s
# through a texel buffer.
vkvit_shader_variant(grad_norm grad_norm_partial.glsl)
vkvit_shader_variant(grad_norm_texel grad_norm_partial.glsl GRAD_NORM_TEXEL)

# LayerNorm backward's parameter gradients (src/ops/layernorm.cpp): from dout and the input, or
# adding up the partial rows that layernorm_backward_rows.glsl wrote.
vkvit_shader_variant(layernorm_backward_params layernorm_backward_params.glsl)
vkvit_shader_variant(layernorm_backward_params_wide layernorm_backward_params.glsl WIDE_MODULE)
vkvit_shader_variant(layernorm_backward_params_partials layernorm_backward_params.glsl FROM_PARTIALS)
vkvit_shader_variant(layernorm_backward_params_partials_wide layernorm_backward_params.glsl FROM_PARTIALS WIDE_MODULE)

# The register-blocked fp32 matmul: TM rows per workgroup x TN columns per lane, A and B read from
# storage buffers or, in the texel variants, as texel buffers. The shapes src/ops/matmul.cpp picks
# (why these, BENCHMARKS.md); its kRegisterBlockedVariants lists them.
vkvit_shader_variant(matmul_regblock_16x12 matmul_regblock.glsl TM=16u TN=12u)
vkvit_shader_variant(matmul_regblock_16x12_wide matmul_regblock.glsl TM=16u TN=12u WIDE_MODULE)
vkvit_shader_variant(matmul_regblock_16x8 matmul_regblock.glsl TM=16u TN=8u)
vkvit_shader_variant(matmul_regblock_16x8_wide matmul_regblock.glsl TM=16u TN=8u WIDE_MODULE)
vkvit_shader_variant(matmul_regblock_8x8 matmul_regblock.glsl TM=8u TN=8u)
vkvit_shader_variant(matmul_regblock_8x8_wide matmul_regblock.glsl TM=8u TN=8u WIDE_MODULE)
vkvit_shader_variant(matmul_regblock_8x3 matmul_regblock.glsl TM=8u TN=3u)
vkvit_shader_variant(matmul_regblock_8x3_wide matmul_regblock.glsl TM=8u TN=3u WIDE_MODULE)
vkvit_shader_variant(matmul_regblock_8x2 matmul_regblock.glsl TM=8u TN=2u)
vkvit_shader_variant(matmul_regblock_8x2_wide matmul_regblock.glsl TM=8u TN=2u WIDE_MODULE)
vkvit_shader_variant(matmul_regblock_texel_16x12 matmul_regblock.glsl TM=16u TN=12u MATMUL_TEXEL_AB)
vkvit_shader_variant(matmul_regblock_texel_16x12_wide matmul_regblock.glsl TM=16u TN=12u MATMUL_TEXEL_AB WIDE_MODULE)
vkvit_shader_variant(matmul_regblock_texel_16x8 matmul_regblock.glsl TM=16u TN=8u MATMUL_TEXEL_AB)
vkvit_shader_variant(matmul_regblock_texel_16x8_wide matmul_regblock.glsl TM=16u TN=8u MATMUL_TEXEL_AB WIDE_MODULE)
vkvit_shader_variant(matmul_regblock_texel_8x8 matmul_regblock.glsl TM=8u TN=8u MATMUL_TEXEL_AB)
vkvit_shader_variant(matmul_regblock_texel_8x8_wide matmul_regblock.glsl TM=8u TN=8u MATMUL_TEXEL_AB WIDE_MODULE)
vkvit_shader_variant(matmul_regblock_texel_8x3 matmul_regblock.glsl TM=8u TN=3u MATMUL_TEXEL_AB)
vkvit_shader_variant(matmul_regblock_texel_8x3_wide matmul_regblock.glsl TM=8u TN=3u MATMUL_TEXEL_AB WIDE_MODULE)
vkvit_shader_variant(matmul_regblock_texel_8x2 matmul_regblock.glsl TM=8u TN=2u MATMUL_TEXEL_AB)
vkvit_shader_variant(matmul_regblock_texel_8x2_wide matmul_regblock.glsl TM=8u TN=2u MATMUL_TEXEL_AB WIDE_MODULE)

# The same kernel in 4-lane workgroups (LANES=4u) for devices whose subgroup is 4 lanes
# (SwiftShader, lavapipe at 128-bit vectors): TM rows x 4 * TN columns per workgroup, in few basic
# blocks (FEW_BLOCKS: SwiftShader's compile time); listed in kRegisterBlockedVariants beside the
# 8-lane ones.
vkvit_shader_variant(matmul_regblock_l4_16x12 matmul_regblock.glsl LANES=4u FEW_BLOCKS TM=16u TN=12u)
vkvit_shader_variant(matmul_regblock_l4_16x12_wide matmul_regblock.glsl LANES=4u FEW_BLOCKS TM=16u TN=12u WIDE_MODULE)
vkvit_shader_variant(matmul_regblock_texel_l4_16x12 matmul_regblock.glsl LANES=4u FEW_BLOCKS TM=16u TN=12u MATMUL_TEXEL_AB)
vkvit_shader_variant(matmul_regblock_texel_l4_16x12_wide matmul_regblock.glsl LANES=4u FEW_BLOCKS TM=16u TN=12u MATMUL_TEXEL_AB WIDE_MODULE)
vkvit_shader_variant(matmul_regblock_l4_8x8 matmul_regblock.glsl LANES=4u FEW_BLOCKS TM=8u TN=8u)
vkvit_shader_variant(matmul_regblock_l4_8x8_wide matmul_regblock.glsl LANES=4u FEW_BLOCKS TM=8u TN=8u WIDE_MODULE)
vkvit_shader_variant(matmul_regblock_texel_l4_8x8 matmul_regblock.glsl LANES=4u FEW_BLOCKS TM=8u TN=8u MATMUL_TEXEL_AB)
vkvit_shader_variant(matmul_regblock_texel_l4_8x8_wide matmul_regblock.glsl LANES=4u FEW_BLOCKS TM=8u TN=8u MATMUL_TEXEL_AB WIDE_MODULE)
vkvit_shader_variant(matmul_regblock_l4_8x4 matmul_regblock.glsl LANES=4u FEW_BLOCKS TM=8u TN=4u)
vkvit_shader_variant(matmul_regblock_l4_8x4_wide matmul_regblock.glsl LANES=4u FEW_BLOCKS TM=8u TN=4u WIDE_MODULE)
vkvit_shader_variant(matmul_regblock_texel_l4_8x4 matmul_regblock.glsl LANES=4u FEW_BLOCKS TM=8u TN=4u MATMUL_TEXEL_AB)
vkvit_shader_variant(matmul_regblock_texel_l4_8x4_wide matmul_regblock.glsl LANES=4u FEW_BLOCKS TM=8u TN=4u MATMUL_TEXEL_AB WIDE_MODULE)
vkvit_shader_variant(matmul_regblock_l4_8x2 matmul_regblock.glsl LANES=4u FEW_BLOCKS TM=8u TN=2u)
vkvit_shader_variant(matmul_regblock_l4_8x2_wide matmul_regblock.glsl LANES=4u FEW_BLOCKS TM=8u TN=2u WIDE_MODULE)
vkvit_shader_variant(matmul_regblock_texel_l4_8x2 matmul_regblock.glsl LANES=4u FEW_BLOCKS TM=8u TN=2u MATMUL_TEXEL_AB)
vkvit_shader_variant(matmul_regblock_texel_l4_8x2_wide matmul_regblock.glsl LANES=4u FEW_BLOCKS TM=8u TN=2u MATMUL_TEXEL_AB WIDE_MODULE)

# The register-blocked matmul over fp16 operands with fp32 output, or (_h) fp16 output; listed in
# kRegisterBlockedF16Variants (src/ops/matmul_f16.cpp).
vkvit_shader_variant(matmul_f16_16x12 matmul_f16.glsl TM=16u TN=12u)
vkvit_shader_variant(matmul_f16_16x8 matmul_f16.glsl TM=16u TN=8u)
vkvit_shader_variant(matmul_f16_8x8 matmul_f16.glsl TM=8u TN=8u)
vkvit_shader_variant(matmul_f16_16x12_h matmul_f16.glsl TM=16u TN=12u OUT_F16)
vkvit_shader_variant(matmul_f16_16x8_h matmul_f16.glsl TM=16u TN=8u OUT_F16)
vkvit_shader_variant(matmul_f16_8x8_h matmul_f16.glsl TM=8u TN=8u OUT_F16)

# The shared-memory tiled matmul for GPUs: fp32 operands with the fused epilogues; fp16 operands
# with fp32 output and the epilogues; fp16 operands with fp16 output.
vkvit_shader_variant(matmul_tiled matmul_tiled.glsl)
vkvit_shader_variant(matmul_f16_tiled matmul_tiled.glsl MATMUL_F16)
vkvit_shader_variant(matmul_f16_tiled_h matmul_tiled.glsl MATMUL_F16 OUT_F16)

# The elementwise-style kernels with 64-bit paths (wide.glsl): AdamW (src/ops/adamw.cpp), the
# patch embedding's token assembly (src/ops/patch_embed.cpp), LayerNorm forward and the backward's
# din (src/ops/layernorm.cpp).
vkvit_shader_variant(adamw adamw.glsl)
vkvit_shader_variant(adamw_wide adamw.glsl WIDE_MODULE)
# The model EMA's update (src/ops/ema.cpp).
vkvit_shader_variant(ema ema.glsl)
vkvit_shader_variant(ema_wide ema.glsl WIDE_MODULE)
vkvit_shader_variant(patch_embed patch_embed.glsl)
vkvit_shader_variant(patch_embed_wide patch_embed.glsl WIDE_MODULE)
vkvit_shader_variant(layernorm layernorm.glsl)
vkvit_shader_variant(layernorm_wide layernorm.glsl WIDE_MODULE)
vkvit_shader_variant(layernorm_backward layernorm_backward_rows.glsl)
vkvit_shader_variant(layernorm_backward_wide layernorm_backward_rows.glsl WIDE_MODULE)

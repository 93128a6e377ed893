// `vkvit devices`: every Vulkan device with the facts that decide how vkvit runs on it.
#include <cstdio>

#include "cli/commands.h"
#include "ops/kernel_choice.h"
#include "vk/memory.h"

namespace vkvit::cli {

namespace {

const char* yes_no(bool b) { return b ? "yes" : "no"; }

void print_device(const vk::DeviceInfo& d, bool chosen) {
  std::printf("device %u%s: %s\n", d.index, chosen ? " (selected)" : "", d.name.c_str());
  std::printf("  vendor:                %s (0x%04x)\n", d.vendor.c_str(), d.vendor_id);
  std::printf("  type:                  %s\n", d.type_name.c_str());
  std::printf("  driver:                %s %s (%s)\n", d.driver_name.c_str(), d.driver_version.c_str(),
              d.driver_info.c_str());
  std::printf("  Vulkan:                %s%s\n", d.api_version.c_str(), d.vulkan_1_2 ? "" : " (vkvit needs 1.2)");
  for (size_t i = 0; i < d.heaps.size(); ++i)
    std::printf("  memory heap %zu:         %s%s\n", i, vk::format_bytes(d.heaps[i].bytes).c_str(),
                d.heaps[i].device_local ? " device-local" : "");
  std::printf("  subgroup size:         %s\n", d.subgroup_size_string().c_str());
  std::printf("  subgroup ops:          %s%s\n", d.subgroup_ops_string().c_str(),
              d.subgroup_in_compute ? "" : " (not in compute)");
  std::printf("  fp16 arithmetic:       %s\n", yes_no(d.float16));
  std::printf("  int8 arithmetic:       %s\n", yes_no(d.int8));
  std::printf("  16-bit storage:        %s\n", yes_no(d.storage16));
  std::printf("  cooperative matrix:    %s\n", d.cooperative_matrix_string().c_str());
  std::printf("  timestamps:            %s\n", yes_no(d.timestamps));
  std::printf("  maxStorageBufferRange: %s\n", vk::format_bytes(d.max_storage_buffer_range).c_str());
  std::printf("  maxMemoryAllocation:   %s\n", vk::format_bytes(d.max_memory_allocation_size).c_str());
  std::printf("  max workgroup size:    %u x %u x %u (%u invocations)\n", d.max_workgroup_size[0],
              d.max_workgroup_size[1], d.max_workgroup_size[2], d.max_workgroup_invocations);
  std::printf("  max workgroup count:   %u x %u x %u\n", d.max_workgroup_count[0], d.max_workgroup_count[1],
              d.max_workgroup_count[2]);
  std::printf("  shared memory:         %s\n", vk::format_bytes(d.max_shared_memory).c_str());
}

// The kernels vkvit runs on `d` under `tuning` (ops::choose_kernels), one line per op, and any
// VKVIT_* override that the device cannot run.
void print_kernels(const vk::DeviceInfo& d, const vk::Tuning& tuning) {
  const ops::KernelChoice choice = ops::choose_kernels(d, tuning);
  std::printf("  kernels:\n");
  for (const std::string& line : choice.describe()) std::printf("    %s\n", line.c_str());
  for (const std::string& refused : {choice.matmul_refused, choice.tile_refused, choice.attention_refused})
    if (!refused.empty()) std::printf("    refused: %s\n", refused.c_str());
}

}  // namespace

void add_devices_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand("devices", "List Vulkan devices and their limits");
  cmd->footer("The device marked (selected) is the one other commands use, with the kernels listed under it;\n"
              "pick another with --device N.\n"
              "Examples:\n"
              "  vkvit devices\n"
              "  VKVIT_DEVICE=1 vkvit devices");
  cmd->callback([&global] {
    const auto opts = global.context_options();
    const auto devices = vk::Context::list_devices(opts.validation);
    if (devices.empty()) {
      std::printf("no Vulkan devices: %s\n", vk::Context::install_hint().c_str());
      return;
    }
    const uint32_t chosen = opts.device >= 0 ? static_cast<uint32_t>(opts.device) : vk::Context::preferred_device(devices);
    for (const auto& d : devices) {
      print_device(d, d.index == chosen);
      if (d.index == chosen) print_kernels(d, opts.tuning);
    }
  });
}

}  // namespace vkvit::cli

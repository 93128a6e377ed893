// Index helpers shared by all elementwise-style shaders.
//
// Workgroup size: specialization constant 0 sets local_size_x. The same value is read through
// WORKGROUP_SIZE rather than gl_WorkGroupSize, because lavapipe (Mesa 22.3.6) evaluates a
// specialized gl_WorkGroupSize as 1 in arithmetic, silently skipping most of the work.
layout(constant_id = 0) const uint WORKGROUP_SIZE = 64;
layout(local_size_x_id = 0) in;

// Launchers split large dispatches into x (<= the device's maxComputeWorkGroupCount[0]) and y;
// linear_group_id() folds them back into one index.
uint linear_group_id() { return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x; }
uint global_index() { return linear_group_id() * WORKGROUP_SIZE + gl_LocalInvocationID.x; }

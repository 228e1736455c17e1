// ckpt cast SRC DST --dtype bf16|f16|f32|auto [--keep PATTERN]... [--only PATTERN]...
//     [--max-shard-size 5GB] [--device cpu|cuda]
#include "commands/cast.h"

#include "core/error.h"
#include "steps.h"
#include "subcommands.h"
#if defined(CKPT_HAVE_CUDA)
#include "cast_op_cuda.h"
#include "gpu_info.h"
#endif

namespace ckpt::cli {

namespace {

CastOpFactory op_factory_for(const std::string& device) {
  if (!wants_cuda_device(device)) return {};
#if defined(CKPT_HAVE_CUDA)
  cuda::require_device();  // fails clearly when no GPU is usable, before any planning
  return cuda::make_cast_op;
#else
  return {};  // unreachable: wants_cuda_device refused "cuda" in this build
#endif
}

}  // namespace

MakeStep add_cast_options(CLI::App* cmd) {
  struct Args {
    std::string dtype, max_shard = "5GB", device = "cpu";
    std::vector<std::string> keep, only;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--dtype", a->dtype, "Target dtype: bf16, f16, f32, or auto (config.json's torch_dtype, as transformers)")->required();
  cmd->add_option("--keep", a->keep, "Leave matching tensors as they are ('*' matches any run; repeatable)")
      ->allow_extra_args(false);
  cmd->add_option("--only", a->only, "Cast only matching tensors ('*' matches any run; repeatable)")->allow_extra_args(false);
  cmd->add_option("--max-shard-size", a->max_shard, kMaxShardSizeHelp);
  cmd->add_option("--device", a->device, "Where the conversion runs: cpu (default) or cuda");
  return [a] {
    CastOptions o;
    o.max_shard_bytes = parse_max_shard_size(a->max_shard);
    o.keep = a->keep;
    o.only = a->only;
    o.make_op = op_factory_for(a->device);
    Step s;
    s.plan = [o, given = a->dtype](const Checkpoint& ck) mutable {
      std::string name = given;
      if (name == "auto") {
        // As transformers' torch_dtype="auto": the dtype config.json names ("dtype" in
        // transformers >= 4.56, "torch_dtype" before).
        for (const char* key : {"dtype", "torch_dtype"})
          if (ck.config && ck.config->is_object() && ck.config->contains(key) && (*ck.config)[key].is_string()) {
            name = (*ck.config)[key].get<std::string>();
            break;
          }
        if (name == "auto") fail(Errc::kInvalidArgument, ck.path, "", "--dtype auto: config.json names no dtype (torch_dtype)");
      }
      auto dtype = dtype_from_user_name(name);
      if (!dtype || (*dtype != DType::BF16 && *dtype != DType::F16 && *dtype != DType::F32))
        usage("--dtype must be bf16, f16, f32 or auto, not '" + name + "'" + (name != given ? " (config.json's)" : ""));
      o.dtype = *dtype;
      return plan_cast(ck, o);
    };
    return s;
  };
}

void add_cast(CLI::App& app, std::function<int()>& action) {
  add_step_subcommand(app, action, "cast", "Cast floating-point tensors to bf16, f16 or f32, bit-identical with torch's .to()",
                      "Source checkpoint (file or directory; safetensors or PyTorch .bin)", "Output directory",
                      &add_cast_options);
}

}  // namespace ckpt::cli

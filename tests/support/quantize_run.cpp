#include "quantize_run.h"

#include "plan/executor.h"

namespace ckpt::test {

void quantize_into(const std::string& src, const QuantizeOptions& options, const std::string& dst, int threads) {
  const Checkpoint ck = open_checkpoint(src);
  const QuantizePlan qp = plan_quantize(ck, options);
  ExecOptions eo;
  eo.threads = threads;
  execute(qp.plan, dst, eo);
}

}  // namespace ckpt::test

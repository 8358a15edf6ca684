// The CPU implementations of the operators spikeconv::if_scan_ (schema and PyTorch reference:
// spikeconv/neuron/fused.py) and spikeconv::event_conv2d (spikeconv/native/__init__.py), calling the C kernels of
// kernels.c. Registered with the dispatcher when build.py loads this library; from then on every CPU call of
// either operator runs here, every other device runs its reference.
//
// Arguments are each operator's documented domain, checked here with TORCH_CHECK, so a caller outside it gets
// an error, never a silent second path.

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/scalar_tensor.h>
#include <torch/library.h>

#include <algorithm>
#include <optional>
#include <tuple>

#include "kernels.h"

namespace {

// Same shape, and the same stride along every axis longer than 1: element i of the memory is the same neuron.
bool laid_out_like(const at::Tensor &t, const at::Tensor &v) {
  if (t.sizes() != v.sizes()) return false;
  for (int64_t d = 0; d < v.dim(); ++d) {
    if (v.size(d) > 1 && t.stride(d) != v.stride(d)) return false;
  }
  return true;
}

bool dense(const at::Tensor &t) {
  return t.is_contiguous() || (t.dim() == 4 && t.is_contiguous(at::MemoryFormat::ChannelsLast));
}

// One neuron layer's chunk of steps, in place (the equations: kernels.c). x: [T', ...] currents (constant: one
// current [...] for every step), v: the membrane, buffer: -V^b (signed neurons), spikes: [T, ...] written.
void if_scan_cpu(const at::Tensor &x, const at::Tensor &v, const std::optional<at::Tensor> &buffer,
                 const at::Tensor &spikes, int64_t max_strength, bool is_signed, bool subtract, bool constant) {
  TORCH_CHECK(v.scalar_type() == at::kFloat && dense(v), "spikeconv::if_scan_: v must be a dense float32 tensor");
  TORCH_CHECK(x.scalar_type() == at::kFloat, "spikeconv::if_scan_: x must be float32");
  TORCH_CHECK(spikes.scalar_type() == at::kChar || spikes.scalar_type() == at::kFloat,
              "spikeconv::if_scan_: spikes must be int8 or float32");
  TORCH_CHECK(spikes.dim() == v.dim() + 1, "spikeconv::if_scan_: spikes must be [T, *v.shape]");
  const int64_t steps = spikes.size(0);
  if (steps == 0) return;
  TORCH_CHECK(laid_out_like(spikes[0], v), "spikeconv::if_scan_: every spike frame must be laid out like v");
  if (constant) {
    TORCH_CHECK(laid_out_like(x, v), "spikeconv::if_scan_: a constant current must be laid out like v");
  } else {
    TORCH_CHECK(x.dim() == v.dim() + 1 && x.size(0) >= steps && laid_out_like(x[0], v),
                "spikeconv::if_scan_: x must hold at least T frames laid out like v");
  }
  TORCH_CHECK(max_strength >= 1 && max_strength <= 64, "spikeconv::if_scan_: S^max must lie in 1..64");
  const at::Tensor *nb = buffer.has_value() ? &buffer.value() : nullptr;
  if (is_signed) {
    TORCH_CHECK(nb && (nb->scalar_type() == at::kChar || nb->scalar_type() == at::kFloat) && laid_out_like(*nb, v),
                "spikeconv::if_scan_: a signed neuron needs its -V^b buffer, int8 or float32, laid out like v");
  }
  TORCH_CHECK(x.device().is_cpu() && v.device().is_cpu() && spikes.device().is_cpu(),
              "spikeconv::if_scan_: the C kernel runs CPU tensors");
  spikeconv_if_scan(x.const_data_ptr<float>(), constant ? 0 : x.stride(0), v.data_ptr<float>(),
                    is_signed ? nb->data_ptr() : nullptr, is_signed && nb->scalar_type() == at::kChar,
                    spikes.data_ptr(), spikes.scalar_type() == at::kChar, spikes.stride(0), steps, v.numel(),
                    max_strength, is_signed, subtract, at::get_num_threads());
}

std::tuple<at::Tensor, at::Tensor> event_conv2d_cpu(const at::Tensor &spikes_in, const at::Tensor &rows,
                                                     const std::optional<at::Tensor> &bias, at::IntArrayRef stride,
                                                     at::IntArrayRef padding, double max_density) {
  TORCH_CHECK(spikes_in.dim() == 4, "spikeconv::event_conv2d: spikes must be [N, C, H, W], got ", spikes_in.dim(),
              " dimensions");
  const bool is_int8 = spikes_in.scalar_type() == at::kChar;
  TORCH_CHECK(is_int8 || spikes_in.scalar_type() == at::kFloat,
              "spikeconv::event_conv2d: spikes must be int8 or float32, got ", spikes_in.scalar_type());
  TORCH_CHECK(rows.dim() == 4 && rows.scalar_type() == at::kFloat && rows.is_contiguous(),
              "spikeconv::event_conv2d: rows must be a contiguous float32 [kH, kW, C, C_out] tensor");
  TORCH_CHECK(stride.size() == 2 && padding.size() == 2 && stride[0] >= 1 && stride[1] >= 1 && padding[0] >= 0 &&
                  padding[1] >= 0,
              "spikeconv::event_conv2d: stride must be two positive and padding two non-negative integers");
  const int64_t frames = spikes_in.size(0), channels = spikes_in.size(1), height = spikes_in.size(2),
                width = spikes_in.size(3);
  const int64_t kernel_h = rows.size(0), kernel_w = rows.size(1), cout = rows.size(3);
  TORCH_CHECK(rows.size(2) == channels, "spikeconv::event_conv2d: rows have ", rows.size(2),
              " input channels, the spikes ", channels);
  TORCH_CHECK(channels <= 65535, "spikeconv::event_conv2d: at most 65535 input channels, got ", channels);
  const at::Tensor *b = bias.has_value() ? &bias.value() : nullptr;
  TORCH_CHECK(!b || (b->dim() == 1 && b->size(0) == cout && b->scalar_type() == at::kFloat && b->is_contiguous()),
              "spikeconv::event_conv2d: bias must be a contiguous float32 [C_out] tensor");
  const int64_t out_h = (height + 2 * padding[0] - kernel_h) / stride[0] + 1;
  const int64_t out_w = (width + 2 * padding[1] - kernel_w) / stride[1] + 1;
  TORCH_CHECK(out_h >= 1 && out_w >= 1, "spikeconv::event_conv2d: the output would be empty");

  const at::Tensor spikes = spikes_in.contiguous(at::MemoryFormat::ChannelsLast);
  const int threads = at::get_num_threads();
  const int64_t positions = frames * height * width;
  at::Tensor offsets = at::empty({positions + 1}, at::TensorOptions().dtype(at::kLong));
  int unit = 0;
  const int64_t total = spikeconv_event_lists(spikes.const_data_ptr(), is_int8, positions, channels,
                                              offsets.data_ptr<int64_t>(), nullptr, nullptr, &unit, threads);
  at::Tensor events = at::scalar_tensor(total, at::TensorOptions().dtype(at::kLong));
  at::Tensor out = at::empty({frames, cout, out_h, out_w},
                             at::TensorOptions().dtype(at::kFloat).memory_format(at::MemoryFormat::ChannelsLast));
  if (static_cast<double>(total) > max_density * static_cast<double>(spikes.numel())) {
    return {out, events};  // too dense: out is not computed (the operator's contract)
  }
  at::Tensor index = at::empty({std::max<int64_t>(total, 1)}, at::TensorOptions().dtype(at::kShort));
  std::optional<at::Tensor> values;
  if (!unit) {
    values = at::empty({std::max<int64_t>(total, 1)}, at::TensorOptions().dtype(at::kFloat));
  }
  float *value_data = values ? values->data_ptr<float>() : nullptr;
  auto *index_data = reinterpret_cast<uint16_t *>(index.data_ptr<int16_t>());
  spikeconv_event_lists(spikes.const_data_ptr(), is_int8, positions, channels, offsets.data_ptr<int64_t>(),
                        index_data, value_data, &unit, threads);
  spikeconv_event_conv(offsets.const_data_ptr<int64_t>(), index_data, value_data, frames, height, width, channels,
                       rows.const_data_ptr<float>(), kernel_h, kernel_w, stride[0], stride[1], padding[0], padding[1],
                       b ? b->const_data_ptr<float>() : nullptr, out.data_ptr<float>(), cout, out_h, out_w, threads);
  return {out, events};
}

}  // namespace

TORCH_LIBRARY_IMPL(spikeconv, CPU, m) {
  m.impl("if_scan_", &if_scan_cpu);
  m.impl("event_conv2d", &event_conv2d_cpu);
}

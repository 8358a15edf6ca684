/* The C functions of kernels.c, as ops.cpp calls them (one declaration, checked against both files by the
   compiler). */
#ifndef SPIKECONV_KERNELS_H
#define SPIKECONV_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

int spikeconv_if_scan(const float *x, int64_t x_step, float *v, void *buffer, int buffer_int8, void *out,
                      int out_int8, int64_t out_step, int64_t steps, int64_t n, int64_t max_strength,
                      int is_signed, int subtract, int threads);

int64_t spikeconv_event_lists(const void *x, int is_int8, int64_t positions, int64_t channels, int64_t *offsets,
                              uint16_t *index, float *values, int *unit, int threads);

void spikeconv_event_conv(const int64_t *offsets, const uint16_t *index, const float *values, int64_t frames,
                          int64_t height, int64_t width, int64_t channels, const float *rows, int64_t kernel_h,
                          int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                          const float *bias, float *out, int64_t cout, int64_t out_h, int64_t out_w, int threads);

#ifdef __cplusplus
}
#endif

#endif

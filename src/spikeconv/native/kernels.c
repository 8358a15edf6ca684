/* spikeconv's CPU kernels, compiled with ops.cpp into one library by build.py, which registers them as the CPU
   implementations of the operators spikeconv::if_scan_ and spikeconv::event_conv2d: the IF scan of one chunk,
   every step in one call, and the event-driven convolution (section at the end).

   The IF scan. Per neuron, with V_th = 1 (what the converter emits), for t = 0 .. steps-1:
       V' = V + x[t];   S = clamp(floor(V'), lower, S^max)   (lower = -S^max signed, 0 unsigned)
       S = max(S, -V^b)                                      (signed: negative spikes only from the buffer)
       S = sign(S) * A(|S|)                                  (adjust: Eq. 3, the largest power of two <= |S|)
       -V^b -= S                                             (signed, Eq. 12)
       V = V' - S (reset by subtraction)  or  V = (S != 0 ? 0 : V') (reset to zero)
   Tiles of neurons (2048 for chunks of 1-2 steps, 16384 for longer ones) run step after step, so the tile's
   membrane and -V^b stay in L1/L2 across the steps while each step reads its currents and writes its spikes
   as one long stream; each current is read and each spike written once (blocks of 256 neurons with all
   steps inside measured 15-20% slower overall: many short streams; benchmarks/neuron_scan.py and a sweep
   of tile sizes). Only V + x[t] rounds (one IEEE single
   addition, as in PyTorch's eager step); the rest acts on small integers (signed and multi-bit neurons: as
   int32, -V^b read and written as such), so the result is bit-identical to the eager scan (a membrane of
   -0.0 may come out as +0.0: equal values). Each step writes its spikes, float32 or int8, in the same pass
   (storing int8 spikes through a float block of 256 made the plain IF scan take ~1.4x as long at chunks of
   1-2 steps, benchmarks/neuron_scan.py). Build flags: no contraction into multiply-adds
   (-ffp-contract=off), IEEE semantics otherwise (-fno-trapping-math only lets float-to-int8 conversions
   vectorize: results do not change).

   Memory: x, v, the buffer and the spikes are dense and laid out alike (any one permutation of the axes,
   e.g. channels-last), so neuron i is element i of each; x[t] starts at x + t * x_step (0: the same current
   every step), the spikes of step t at out + t * out_step (elements). */

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

enum { RANGE_ALIGN = 256, MAX_TILE = 16384 }; /* threads' ranges start at multiples of RANGE_ALIGN */

/* One step over n neurons. -V^b is nb (float) or, with int8_buffer, nb8 (int8, read and written in place);
   the spikes go to s_out (float) or, with int8_out, s8_out (int8), in the same pass. */
static inline __attribute__((always_inline)) void step_block(
    const float *restrict x, float *restrict v, float *restrict nb, int8_t *restrict nb8, float *restrict s_out,
    int8_t *restrict s8_out, int64_t n, float lower, float smax, const int is_signed, const int subtract,
    const int adjust, const int int8_buffer, const int int8_out) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const float vv = v[j] + x[j];
    float s = vv > lower ? vv : lower;
    s = s < smax ? s : smax;
    s = floorf(s); /* clamp then floor = floor then clamp: the bounds are integers */
    int32_t si = (int32_t)s; /* S as an integer: what the int8 spikes store */
    if (is_signed || adjust) { /* on integers: S, -V^b and A(|S|) are small whole numbers */
      int32_t bound = 0;
      if (is_signed) {
        bound = int8_buffer ? nb8[j] : (int32_t)nb[j]; /* -V^b */
        si = si > bound ? si : bound;
      }
      if (adjust) {
        int32_t a = si < 0 ? -si : si; /* |S| <= 64 */
        a |= a >> 1;
        a |= a >> 2;
        a |= a >> 4;
        const int32_t p = a - (a >> 1);
        si = si < 0 ? -p : p;
      }
      if (is_signed) {
        if (int8_buffer)
          nb8[j] = (int8_t)(bound - si);
        else
          nb[j] = (float)(bound - si);
      }
      s = (float)si;
    }
    v[j] = subtract ? vv - s : (s != 0.f ? 0.f : vv);
    if (int8_out) /* from the integer S: GCC packs it once for -V^b and the spikes (converting the float S
                     back took 7 more of ~70 vector instructions a step: the buffered scan 14% faster) */
      s8_out[j] = (int8_t)si;
    else
      s_out[j] = s;
  }
}

/* every variant (flags: 1 signed, 2 subtract, 4 adjust, 8 int8 -V^b in place, 16 int8 spikes), each inlined
   with its flags constant */
#define STEP_CASE(F)                                                                                            \
  case F:                                                                                                       \
    step_block(x, v, nb, nb8, s, s8, n, lower, smax, (F) & 1, ((F) >> 1) & 1, ((F) >> 2) & 1, ((F) >> 3) & 1, \
               ((F) >> 4) & 1);                                                                                 \
    break;
static void step_variant(int flags, const float *x, float *v, float *nb, int8_t *nb8, float *s, int8_t *s8,
                         int64_t n, float lower, float smax) {
  switch (flags) {
    STEP_CASE(0) STEP_CASE(1) STEP_CASE(2) STEP_CASE(3) STEP_CASE(4) STEP_CASE(5) STEP_CASE(6) STEP_CASE(7)
    STEP_CASE(9) STEP_CASE(11) STEP_CASE(13) STEP_CASE(15)
    STEP_CASE(16) STEP_CASE(17) STEP_CASE(18) STEP_CASE(19) STEP_CASE(20) STEP_CASE(21) STEP_CASE(22) STEP_CASE(23)
    STEP_CASE(25) STEP_CASE(27) STEP_CASE(29) STEP_CASE(31)
    default: break; /* an int8 buffer without a sign: never asked for */
  }
}
#undef STEP_CASE

static void scan_range(const float *x, int64_t x_step, float *v, void *buffer, int buffer_int8, void *out,
                       int out_int8, int64_t out_step, int64_t steps, int64_t begin, int64_t end, int is_signed,
                       int variant, float lower, float smax) {
  float bt[MAX_TILE] __attribute__((aligned(64))); /* -V^b of an int8 buffer, as float, for one tile */
  const int64_t tile = steps <= 2 ? MAX_TILE / 8 : MAX_TILE;
  const int in_place_int8 = is_signed && buffer_int8 && steps <= 2; /* -V^b read and written as int8 */
  const int flags = variant | (in_place_int8 ? 8 : 0) | (out_int8 ? 16 : 0);
  for (int64_t i0 = begin; i0 < end; i0 += tile) {
    const int64_t n = end - i0 < tile ? end - i0 : tile;
    float *vt = v + i0;
    float *nb = bt;
    if (is_signed && !in_place_int8) {
      if (buffer_int8) {
        const int8_t *b = (const int8_t *)buffer + i0;
        for (int64_t j = 0; j < n; ++j) bt[j] = (float)b[j];
      } else {
        nb = (float *)buffer + i0;
      }
    }
    int8_t *nb8 = in_place_int8 ? (int8_t *)buffer + i0 : 0;
    for (int64_t t = 0; t < steps; ++t)
      step_variant(flags, x + t * x_step + i0, vt, nb, nb8, out_int8 ? 0 : (float *)out + t * out_step + i0,
                   out_int8 ? (int8_t *)out + t * out_step + i0 : 0, n, lower, smax);
    if (is_signed && buffer_int8 && !in_place_int8) {
      int8_t *b = (int8_t *)buffer + i0;
      for (int64_t j = 0; j < n; ++j) b[j] = (int8_t)bt[j];
    }
  }
}

/* The whole chunk: n neurons, `steps` steps, on up to `threads` threads (OpenMP; one thread per range of
   neurons, each a multiple of RANGE_ALIGN long but the last). Returns 0. */
int spikeconv_if_scan(const float *x, int64_t x_step, float *v, void *buffer, int buffer_int8, void *out,
                      int out_int8, int64_t out_step, int64_t steps, int64_t n, int64_t max_strength,
                      int is_signed, int subtract, int threads) {
  const float smax = (float)max_strength, lower = is_signed ? -(float)max_strength : 0.f;
  const int variant = (is_signed ? 1 : 0) + (subtract ? 2 : 0) + (max_strength > 2 ? 4 : 0);
  const int64_t min_per_thread = 16 * RANGE_ALIGN;
  int64_t parts = threads < 1 ? 1 : threads;
  if (parts > n / min_per_thread) parts = n / min_per_thread > 0 ? n / min_per_thread : 1;
  int64_t size = (n + parts - 1) / parts;
  size = (size + RANGE_ALIGN - 1) / RANGE_ALIGN * RANGE_ALIGN;
#pragma omp parallel for num_threads((int)parts) schedule(static) if (parts > 1)
  for (int64_t begin = 0; begin < n; begin += size) {
    const int64_t end = begin + size < n ? begin + size : n;
    scan_range(x, x_step, v, buffer, buffer_int8, out, out_int8, out_step, steps, begin, end, is_signed,
               variant, lower, smax);
  }
  return 0;
}

/* Event-driven convolution, gathered per output position.

   A weight layer fed by spikes, y = W * S + b, needs only the nonzero spikes. spikeconv_event_lists lists them
   per input position (NHWC: one position = the C channels of one pixel of one frame): the channel index of
   each nonzero value, and the value itself unless every one is 1. spikeconv_event_conv then computes, for
   every output position and every block of output channels,

       y[n, oy, ox, :] = ( sum over taps (ky, kx) in bounds, over listed (c, s) of input (n, oy*sy - py + ky,
                           ox*sx - px + kx):  s * rows[ky, kx, c, :] ) + b

   with rows = W permuted to [kH, kW, C, C_out] (each (ky, kx, c) one contiguous row of C_out weights). Work
   goes in tiles of up to 32 positions of one output line x 64 output channels (the last block 32 + 16 + the
   rest), taps outermost: the tile's sums stay in L1 and one tap's weight rows in cache while the tile's
   positions add them (1.0-1.5x faster than all taps per position with the sums in registers, which
   re-read every tap's rows from L2 for each position; throwaway measurement). The work is proportional to
   the number of spikes times C_out. The sum runs in a fixed order per output position (taps in order; per
   tap the listed channels in order, alternating between two partial sums that are then added to the running
   sum; the bias last), independent of the other frames of the call: chunks of frames give the same bits as
   the whole. It differs from a dense convolution's order, so float results equal the dense layer's up to
   float rounding. */

/* Pass 1 (index == NULL): offsets[p + 1] = number of nonzero values of position p, then the running sum
   (offsets[0] = 0); returns the total and sets *unit to 1 if every nonzero value is 1. Pass 2: writes each
   position's channel indices (uint16) and, with values != NULL, the values as floats, from offsets[p]. x is
   int8 (is_int8) or float32, `positions` rows of `channels` dense values. */
int64_t spikeconv_event_lists(const void *x, int is_int8, int64_t positions, int64_t channels, int64_t *offsets,
                              uint16_t *index, float *values, int *unit, int threads) {
  int not_unit = 0;
  if (!index) {
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1) reduction(| : not_unit)
    for (int64_t p = 0; p < positions; ++p) {
      int64_t k = 0;
      int other = 0;
      if (is_int8) {
        const int8_t *row = (const int8_t *)x + p * channels;
        for (int64_t c = 0; c < channels; ++c) {
          k += row[c] != 0;
          other |= row[c] != 0 && row[c] != 1;
        }
      } else {
        const float *row = (const float *)x + p * channels;
        for (int64_t c = 0; c < channels; ++c) {
          k += row[c] != 0.f;
          other |= row[c] != 0.f && row[c] != 1.f;
        }
      }
      offsets[p + 1] = k;
      not_unit |= other;
    }
    offsets[0] = 0;
    for (int64_t p = 0; p < positions; ++p) offsets[p + 1] += offsets[p];
    *unit = !not_unit;
    return offsets[positions];
  }
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t p = 0; p < positions; ++p) {
    uint16_t *out = index + offsets[p];
    float *val = values ? values + offsets[p] : 0;
    int64_t k = 0;
    for (int64_t c0 = 0; c0 < channels; c0 += 64) { /* a bit mask of 64 channels, then its set bits */
      const int64_t m = channels - c0 < 64 ? channels - c0 : 64;
      uint64_t mask = 0;
      if (is_int8) {
        const int8_t *row = (const int8_t *)x + p * channels + c0;
        for (int64_t c = 0; c < m; ++c) mask |= (uint64_t)(row[c] != 0) << c;
      } else {
        const float *row = (const float *)x + p * channels + c0;
        for (int64_t c = 0; c < m; ++c) mask |= (uint64_t)(row[c] != 0.f) << c;
      }
      while (mask) {
        const int64_t c = c0 + __builtin_ctzll(mask);
        mask &= mask - 1;
        out[k] = (uint16_t)c;
        if (val) val[k] = is_int8 ? (float)((const int8_t *)x)[p * channels + c] : ((const float *)x)[p * channels + c];
        ++k;
      }
    }
  }
  return offsets[positions];
}

/* One native vector of floats: the widest the build's target has. A group of 16 channels is VPER native vectors;
   GCC's generic 64-byte vectors on an AVX2 target are lowered through the stack (one thread: 2-3 G additions/s
   against 15-31 G with 32-byte vectors). Each lane's additions run in the same order at every width,
   so every build gives the same bits. */
#if defined(__AVX512F__)
typedef float vnat __attribute__((vector_size(64), aligned(4)));
#elif defined(__AVX__)
typedef float vnat __attribute__((vector_size(32), aligned(4)));
#else
typedef float vnat __attribute__((vector_size(16), aligned(4)));
#endif
enum { VLANES = (int)(sizeof(vnat) / 4), VPER = 16 / VLANES }; /* floats per native vector; native vectors
                                                                   per group of 16 channels */

enum { EVENT_TILE = 32 }; /* output positions of one line whose accumulators stay in L1 across the taps */

/* acc[0 .. nv VPER) += the weight rows (channels [cb, cb + 16 nv)) of the spikes listed in [begin, end): two
   partial sums alternating over the list (more additions in flight), a = acc + even entries, b = odd
   entries, then acc = a + b. nv and unit are constants after inlining. */
static inline __attribute__((always_inline)) void add_rows(vnat *acc, const uint16_t *index, const float *values,
                                                          int64_t begin, int64_t end, const float *base,
                                                          int64_t cout, const int nv, const int unit) {
  vnat a[4 * VPER], b[4 * VPER];
  const int n = nv * VPER;
  for (int j = 0; j < n; ++j) {
    a[j] = acc[j];
    b[j] = (vnat){0};
  }
  int64_t e = begin;
  for (; e + 1 < end; e += 2) {
    const vnat *r = (const vnat *)(base + (int64_t)index[e] * cout);
    const vnat *q = (const vnat *)(base + (int64_t)index[e + 1] * cout);
    const float s = unit ? 1.f : values[e], u = unit ? 1.f : values[e + 1];
    for (int j = 0; j < n; ++j) {
      a[j] += unit ? r[j] : s * r[j];
      b[j] += unit ? q[j] : u * q[j];
    }
  }
  if (e < end) {
    const vnat *r = (const vnat *)(base + (int64_t)index[e] * cout);
    const float s = unit ? 1.f : values[e];
    for (int j = 0; j < n; ++j) a[j] += unit ? r[j] : s * r[j];
  }
  for (int j = 0; j < n; ++j) acc[j] = a[j] + b[j];
}

/* The same sum for the last `width` < 16 channels, in scalars, with the same order of additions. */
static inline __attribute__((always_inline)) void add_rows_tail(float *acc, const uint16_t *index,
                                                               const float *values, int64_t begin, int64_t end,
                                                               const float *base, int64_t cout, int64_t width) {
  float a[16], b[16] = {0};
  for (int64_t j = 0; j < width; ++j) a[j] = acc[j];
  for (int64_t e = begin; e < end; ++e) {
    const float *r = base + (int64_t)index[e] * cout;
    float *sum = (e - begin) % 2 ? b : a;
    for (int64_t j = 0; j < width; ++j) sum[j] += values ? values[e] * r[j] : r[j];
  }
  for (int64_t j = 0; j < width; ++j) acc[j] = a[j] + b[j];
}

/* One tile: output positions (n, oy, ox0 .. ox0 + m) of channels [cb, cb + 16 nv) (tail > 0: the last `tail`
   < 16 channels, in scalars), taps outermost (the tap's weight rows stay in cache while the tile's positions use
   them), then + bias, stored. nv, unit and whether tail > 0 are constants after inlining. */
static inline __attribute__((always_inline)) void event_tile(
    const int64_t *offsets, const uint16_t *index, const float *values, int64_t n, int64_t oy, int64_t ox0,
    int64_t m, int64_t height, int64_t width, int64_t channels, const float *rows, int64_t kernel_h,
    int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w, const float *bias,
    float *out, int64_t cout, int64_t cb, const int nv, const int unit, const int64_t tail) {
  vnat tile[EVENT_TILE * 4 * VPER]; /* nv groups of 16 channels per position; one (its first `tail` lanes) for the tail */
  const int slots = (tail ? 1 : nv) * VPER;
  for (int64_t i = 0; i < m * slots; ++i) tile[i] = (vnat){0};
  for (int64_t ky = 0; ky < kernel_h; ++ky) {
    const int64_t iy = oy * stride_h - pad_h + ky;
    if (iy < 0 || iy >= height) continue;
    for (int64_t kx = 0; kx < kernel_w; ++kx) {
      const float *base = rows + (ky * kernel_w + kx) * channels * cout + cb;
      for (int64_t i = 0; i < m; ++i) {
        const int64_t ix = (ox0 + i) * stride_w - pad_w + kx;
        if (ix < 0 || ix >= width) continue;
        const int64_t p = (n * height + iy) * width + ix;
        if (tail)
          add_rows_tail((float *)(tile + i * VPER), index, values, offsets[p], offsets[p + 1], base, cout, tail);
        else
          add_rows(tile + i * nv * VPER, index, values, offsets[p], offsets[p + 1], base, cout, nv, unit);
      }
    }
  }
  for (int64_t i = 0; i < m; ++i) {
    float *o = out + (ox0 + i) * cout + cb; /* out: the line's first position */
    if (tail) {
      const float *sum = (const float *)(tile + i * VPER);
      for (int64_t j = 0; j < tail; ++j) o[j] = bias ? sum[j] + bias[cb + j] : sum[j];
      continue;
    }
    for (int j = 0; j < nv * VPER; ++j) {
      vnat y = tile[i * nv * VPER + j];
      if (bias) {
        vnat c;
        __builtin_memcpy(&c, bias + cb + j * VLANES, sizeof(vnat));
        y += c;
      }
      __builtin_memcpy(o + j * VLANES, &y, sizeof(vnat));
    }
  }
}

/* y (NHWC float32, frames x out_h x out_w x cout) from the lists of spikeconv_event_lists over frames x height x
   width positions; rows = [kernel_h, kernel_w, channels, cout] float32; values == NULL: every spike is 1.
   Work items: (block of 64 output channels, output line, tile of EVENT_TILE positions); the last block runs
   32 + 16 + the rest. */
void spikeconv_event_conv(const int64_t *offsets, const uint16_t *index, const float *values, int64_t frames,
                          int64_t height, int64_t width, int64_t channels, const float *rows, int64_t kernel_h,
                          int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
                          const float *bias, float *out, int64_t cout, int64_t out_h, int64_t out_w,
                          int threads) {
  const int64_t blocks = (cout + 63) / 64, lines = frames * out_h, tiles = (out_w + EVENT_TILE - 1) / EVENT_TILE;
  const int unit = values == 0;
#pragma omp parallel for num_threads(threads) schedule(static) collapse(3) if (threads > 1)
  for (int64_t block = 0; block < blocks; ++block) {
    for (int64_t line = 0; line < lines; ++line) {
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t n = line / out_h, oy = line % out_h, ox0 = t * EVENT_TILE;
        const int64_t m = out_w - ox0 < EVENT_TILE ? out_w - ox0 : EVENT_TILE;
        float *o = out + (n * out_h + oy) * out_w * cout; /* the line */
        int64_t cb = block * 64;
#define EVENT_TILE_CALL(nv, u)                                                                                 \
  event_tile(offsets, index, values, n, oy, ox0, m, height, width, channels, rows, kernel_h, kernel_w, stride_h, \
             stride_w, pad_h, pad_w, bias, o, cout, cb, nv, u, 0)
        if (cout - cb >= 64) {
          if (unit) EVENT_TILE_CALL(4, 1); else EVENT_TILE_CALL(4, 0);
          continue;
        }
        if (cout - cb >= 32) {
          if (unit) EVENT_TILE_CALL(2, 1); else EVENT_TILE_CALL(2, 0);
          cb += 32;
        }
        if (cout - cb >= 16) {
          if (unit) EVENT_TILE_CALL(1, 1); else EVENT_TILE_CALL(1, 0);
          cb += 16;
        }
#undef EVENT_TILE_CALL
        if (cout > cb)
          event_tile(offsets, index, values, n, oy, ox0, m, height, width, channels, rows, kernel_h, kernel_w,
                     stride_h, stride_w, pad_h, pad_w, bias, o, cout, cb, 1, 0, cout - cb);
      }
    }
  }
}

// Direct convolution kernels (NCHW, any stride, dilation, padding, groups), templated on T.
//
// One thread per output element with the padding implicit in the index math (no padded copy),
// as the CPU engine's kernels/cpu/direct.py. A 1-D convolution arrives as a 2-D one of height 1.
// These are the right tool where the reduction per output is short (depthwise, few channels);
// elsewhere the GEMM formulations in im2col.cu / implicit_gemm.cu win.
//
// Index conventions (shared with the CPU engine):
//   x (N, C, H, W), w (O, C/groups, KH, KW), y (N, O, Ho, Wo)
//   y[n, o, yo, xo] = sum_{c', i, j} w[o, c', i, j] * x[n, g*Cg + c', yo*sh - ph + i*dh, xo*sw - pw + j*dw]
//   with g = o / Og, Cg = C / groups, Og = O / groups; ph, pw are the LOW paddings (the high
//   paddings only shape Ho, Wo, which the caller passes).
#include "common.cuh"

// Forward, general case.
template <typename T>
__global__ void conv2d_direct_fwd(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y,
                                  int N, int C, int H, int W, int O, int Ho, int Wo, int KH, int KW,
                                  int sh, int sw, int dh, int dw, int ph, int pw, int groups) {
    const int Cg = C / groups, Og = O / groups;
    const long long total = (long long)N * O * Ho * Wo;
    fc_grid_loop(total, [&](auto idx) {
        const int xo = (int)(idx % Wo);
        auto t = idx / Wo;
        const int yo = (int)(t % Ho);
        t /= Ho;
        const int o = (int)(t % O);
        const int n = (int)(t / O);
        const T* xp = x + ((long long)n * C + (long long)(o / Og) * Cg) * H * W;
        const T* wp = w + (long long)o * Cg * KH * KW;
        const int iy0 = yo * sh - ph, ix0 = xo * sw - pw;
        T acc = T(0);
        for (int c = 0; c < Cg; ++c, xp += (long long)H * W, wp += KH * KW) {
            for (int i = 0; i < KH; ++i) {
                const int iy = iy0 + i * dh;
                if (!fc_in_range(iy, H)) continue;
                const T* row = xp + (long long)iy * W;
                for (int j = 0; j < KW; ++j) {
                    const int ix = ix0 + j * dw;
                    if (fc_in_range(ix, W)) acc += wp[i * KW + j] * row[ix];
                }
            }
        }
        y[idx] = acc;
    });
}

// Forward, depthwise (C/groups == 1, any channel multiplier O/groups). KH_/KW_ > 0 fix the
// kernel size at compile time so the tap loops unroll and the weights stay in registers
// (3x3 is by far the most common depthwise kernel); 0 means "given at run time".
// Launch: gridDim.x blocks step over the N*O output planes, gridDim.y blocks share a plane's
// pixels. A block reads its plane's filter once, and a thread decodes its pixel with one 32-bit
// division (the flat one-thread-per-element decode cost more than the 9 multiply-adds).
template <typename T, int KH_, int KW_>
__global__ void conv2d_depthwise_fwd(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y,
                                     int N, int C, int H, int W, int O, int Ho, int Wo, int KH, int KW,
                                     int sh, int sw, int dh, int dw, int ph, int pw) {
    // A 3x3 filter is held in registers; larger ones are read through the read-only cache
    // (25 doubles in registers pushed the 5x5 kernel past the register budget).
    constexpr bool IN_REGS = KH_ * KW_ > 0 && KH_ * KW_ <= 9;
    constexpr int KMAX = IN_REGS ? KH_ * KW_ : 1;
    const int kh = KH_ > 0 ? KH_ : KH, kw = KW_ > 0 ? KW_ : KW;
    const int mult = O / C;
    const int plane = Ho * Wo;  // < 2^31: checked by the caller
    fc_plane_loop((long long)N * O, [&](auto pl) {
        const int o = (int)(pl % O);
        const T* xp = x + ((long long)(pl / O) * C + o / mult) * H * W;
        const T* wp = w + (long long)o * kh * kw;
        T* yp = y + (long long)pl * plane;
        T wr[KMAX];
        if (IN_REGS) {
#pragma unroll
            for (int t = 0; t < KMAX; ++t) wr[t] = __ldg(wp + t);
        }
        for (int q = blockIdx.y * blockDim.x + threadIdx.x; q < plane; q += gridDim.y * blockDim.x) {
            const int yo = q / Wo, xo = q - yo * Wo;
            const int iy0 = yo * sh - ph, ix0 = xo * sw - pw;
            T acc = T(0);
            // kh, kw are compile-time constants when KH_, KW_ > 0, so these loops unroll fully.
#pragma unroll
            for (int i = 0; i < kh; ++i) {
                const int iy = iy0 + i * dh;
                if (!fc_in_range(iy, H)) continue;
                const T* row = xp + (long long)iy * W;
#pragma unroll
                for (int j = 0; j < kw; ++j) {
                    const int ix = ix0 + j * dw;
                    const T wij = IN_REGS ? wr[(i * kw + j) % KMAX] : __ldg(wp + i * kw + j);
                    if (fc_in_range(ix, W)) acc += wij * row[ix];
                }
            }
            yp[q] = acc;
        }
    });
}

// Input gradient dx = C^T dy (= the transposed convolution) in the gather form: one thread per
// dx element loops over the taps that reach it, so every element has exactly one writer (no
// atomics, bit-for-bit deterministic).
template <typename T>
__global__ void conv2d_direct_bwd_input(const T* __restrict__ dy, const T* __restrict__ w, T* __restrict__ dx,
                                        int N, int C, int H, int W, int O, int Ho, int Wo, int KH, int KW,
                                        int sh, int sw, int dh, int dw, int ph, int pw, int groups) {
    const int Cg = C / groups, Og = O / groups;
    const long long total = (long long)N * C * H * W;
    const long long plane = (long long)Ho * Wo;
    fc_grid_loop(total, [&](auto idx) {
        const int xi = (int)(idx % W);
        auto t = idx / W;
        const int yi = (int)(t % H);
        t /= H;
        const int c = (int)(t % C);
        const int n = (int)(t / C);
        const int g = c / Cg, cg = c % Cg;
        const T* dyp = dy + ((long long)n * O + (long long)g * Og) * plane;
        const T* wp = w + ((long long)g * Og * Cg + cg) * KH * KW;
        T acc = T(0);
        for (int i = 0; i < KH; ++i) {
            int yo;
            if (!fc_tap_source(yi, ph, i, dh, sh, Ho, yo)) continue;
            for (int j = 0; j < KW; ++j) {
                int xo;
                if (!fc_tap_source(xi, pw, j, dw, sw, Wo, xo)) continue;
                const T* src = dyp + (long long)yo * Wo + xo;
                const T* wt = wp + i * KW + j;
                for (int o = 0; o < Og; ++o) acc += wt[(long long)o * Cg * KH * KW] * src[o * plane];
            }
        }
        dx[idx] = acc;
    });
}

// Weight gradient as a reduction: one block per weight element (o, c', i, j) sums
// dy[n, o, yo, xo] * x[n, c, yo*sh - ph + i*dh, xo*sw - pw + j*dw] over (n, yo, xo) with a
// fixed-order block reduction (deterministic). Launch with gridDim.x = O*Cg*KH*KW and
// blockDim.x a multiple of 32. Suited to depthwise and small weights; large ones take the GEMM.
template <typename T>
__global__ void conv2d_direct_bwd_weight(const T* __restrict__ x, const T* __restrict__ dy, T* __restrict__ dw_out,
                                         int N, int C, int H, int W, int O, int Ho, int Wo, int KH, int KW,
                                         int sh, int sw, int dh, int dw, int ph, int pw, int groups) {
    __shared__ T scratch[32];
    const int Cg = C / groups, Og = O / groups;
    const int widx = blockIdx.x;
    const int j = widx % KW, i = (widx / KW) % KH;
    const int cg = (widx / (KW * KH)) % Cg, o = widx / (KW * KH * Cg);
    const int c = (o / Og) * Cg + cg;
    const int plane = Ho * Wo;
    T acc = T(0);
    for (int n = 0; n < N; ++n) {
        const T* xp = x + ((long long)n * C + c) * H * W;
        const T* dyp = dy + ((long long)n * O + o) * plane;
        for (int q = threadIdx.x; q < plane; q += blockDim.x) {
            const int yo = q / Wo, xo = q - yo * Wo;
            const int iy = yo * sh - ph + i * dh, ix = xo * sw - pw + j * dw;
            if (fc_in_range(iy, H) && fc_in_range(ix, W)) acc += dyp[q] * xp[(long long)iy * W + ix];
        }
    }
    acc = fc_block_sum(acc, scratch);
    if (threadIdx.x == 0) dw_out[widx] = acc;
}

// 2-D max and average pooling, forward and backward, templated on T.
//
// Pooling is a depthwise window scan, so it reuses the convolution's geometry: x (NC, H, W)
// planes, window KH x KW, stride, dilation and LOW padding (ph, pw); Ho, Wo come from
// fastconv.geometry. Padding never wins a max and counts for the average only when
// count_include_pad (PyTorch's semantics). Both backward kernels are in the gather form: one
// thread per input element visits the windows that contain it (no atomics, deterministic).
#include "common.cuh"

template <typename T> __device__ __forceinline__ T fc_neg_inf();
template <> __device__ __forceinline__ float fc_neg_inf<float>() { return -__int_as_float(0x7f800000); }
template <> __device__ __forceinline__ double fc_neg_inf<double>() {
    return -__longlong_as_double(0x7ff0000000000000LL);
}

// Max pooling forward: y = max over the window; idx = flat index yi*W + xi of the first
// maximum in scan order (PyTorch's tie rule), -1 for a window that lies in the padding only.
// A NaN wins, as in PyTorch, so a NaN input is never hidden by pooling.
template <typename T>
__global__ void max_pool2d_fwd(const T* __restrict__ x, T* __restrict__ y, int* __restrict__ arg,
                               int NC, int H, int W, int Ho, int Wo, int KH, int KW,
                               int sh, int sw, int dh, int dw, int ph, int pw) {
    const long long total = (long long)NC * Ho * Wo;
    fc_grid_loop(total, [&](auto idx) {
        const int xo = (int)(idx % Wo);
        auto t = idx / Wo;
        const int yo = (int)(t % Ho);
        const long long nc = t / Ho;
        const T* xp = x + nc * H * W;
        T best = T(0);
        int best_i = -1;
        for (int i = 0; i < KH; ++i) {
            const int iy = yo * sh - ph + i * dh;
            if (!fc_in_range(iy, H)) continue;
            for (int j = 0; j < KW; ++j) {
                const int ix = xo * sw - pw + j * dw;
                if (!fc_in_range(ix, W)) continue;
                const T v = xp[iy * W + ix];
                if (best_i < 0 || v > best || (v != v && best == best)) {
                    best = v;
                    best_i = iy * W + ix;
                }
            }
        }
        y[idx] = best_i < 0 ? fc_neg_inf<T>() : best;
        arg[idx] = best_i;
    });
}

// Max pooling backward: dx[yi, xi] = sum of dy over the windows whose argmax is (yi, xi).
template <typename T>
__global__ void max_pool2d_bwd(const T* __restrict__ dy, const int* __restrict__ arg, T* __restrict__ dx,
                               int NC, int H, int W, int Ho, int Wo, int KH, int KW,
                               int sh, int sw, int dh, int dw, int ph, int pw) {
    const long long total = (long long)NC * H * W;
    fc_grid_loop(total, [&](auto idx) {
        const int xi = (int)(idx % W);
        auto t = idx / W;
        const int yi = (int)(t % H);
        const long long nc = t / H;
        const int self = yi * W + xi;
        const long long base = nc * Ho * Wo;
        T acc = T(0);
        for (int i = 0; i < KH; ++i) {
            int yo;
            if (!fc_tap_source(yi, ph, i, dh, sh, Ho, yo)) continue;
            for (int j = 0; j < KW; ++j) {
                int xo;
                if (!fc_tap_source(xi, pw, j, dw, sw, Wo, xo)) continue;
                const long long o = base + yo * Wo + xo;
                if (arg[o] == self) acc += dy[o];
            }
        }
        dx[idx] = acc;
    });
}

// Number of window taps that fall inside the image (the divisor without count_include_pad).
__device__ __forceinline__ int fc_window_count(int yo, int xo, int H, int W, int KH, int KW,
                                               int sh, int sw, int dh, int dw, int ph, int pw) {
    int ny = 0, nx = 0;
    for (int i = 0; i < KH; ++i) ny += fc_in_range(yo * sh - ph + i * dh, H);
    for (int j = 0; j < KW; ++j) nx += fc_in_range(xo * sw - pw + j * dw, W);
    return ny * nx;
}

// Average pooling forward: the window sum over the divisor (KH*KW with count_include_pad,
// else the taps inside the image).
template <typename T>
__global__ void avg_pool2d_fwd(const T* __restrict__ x, T* __restrict__ y,
                               int NC, int H, int W, int Ho, int Wo, int KH, int KW,
                               int sh, int sw, int dh, int dw, int ph, int pw, int count_include_pad) {
    const long long total = (long long)NC * Ho * Wo;
    fc_grid_loop(total, [&](auto idx) {
        const int xo = (int)(idx % Wo);
        auto t = idx / Wo;
        const int yo = (int)(t % Ho);
        const T* xp = x + (long long)(t / Ho) * H * W;
        T acc = T(0);
        for (int i = 0; i < KH; ++i) {
            const int iy = yo * sh - ph + i * dh;
            if (!fc_in_range(iy, H)) continue;
            for (int j = 0; j < KW; ++j) {
                const int ix = xo * sw - pw + j * dw;
                if (fc_in_range(ix, W)) acc += xp[iy * W + ix];
            }
        }
        const int div = count_include_pad ? KH * KW : fc_window_count(yo, xo, H, W, KH, KW, sh, sw, dh, dw, ph, pw);
        y[idx] = div > 0 ? acc / T(div) : T(0);
    });
}

// Average pooling backward (gather): dx[yi, xi] = sum over windows containing it of dy / divisor.
template <typename T>
__global__ void avg_pool2d_bwd(const T* __restrict__ dy, T* __restrict__ dx,
                               int NC, int H, int W, int Ho, int Wo, int KH, int KW,
                               int sh, int sw, int dh, int dw, int ph, int pw, int count_include_pad) {
    const long long total = (long long)NC * H * W;
    fc_grid_loop(total, [&](auto idx) {
        const int xi = (int)(idx % W);
        auto t = idx / W;
        const int yi = (int)(t % H);
        const T* dyp = dy + (long long)(t / H) * Ho * Wo;
        T acc = T(0);
        for (int i = 0; i < KH; ++i) {
            int yo;
            if (!fc_tap_source(yi, ph, i, dh, sh, Ho, yo)) continue;
            for (int j = 0; j < KW; ++j) {
                int xo;
                if (!fc_tap_source(xi, pw, j, dw, sw, Wo, xo)) continue;
                const int div = count_include_pad ? KH * KW
                                                  : fc_window_count(yo, xo, H, W, KH, KW, sh, sw, dh, dw, ph, pw);
                acc += dyp[yo * Wo + xo] / T(div);
            }
        }
        dx[idx] = acc;
    });
}

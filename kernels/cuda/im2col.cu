// im2col / col2im for the GEMM formulation of convolution (Chellapilla, Puri & Simard 2006,
// "High performance convolutional neural networks for document processing"; the layout of
// Caffe and of fastconv's CPU engine).
//
// The column matrix of images n0 .. n0+B-1 has shape (B, C*KH*KW, Ho*Wo); row
// r = (c*KH + i)*KW + j holds tap (i, j) of channel c for every output pixel, so the rows of a
// group are contiguous and a grouped convolution is one batched GEMM
//   w (G, Og, Cg*KH*KW) @ cols (B, G, Cg*KH*KW, Ho*Wo)  ->  y (B, G, Og, Ho*Wo).
// The caller passes x, cols, dx already offset to image n0.
#include "common.cuh"

// One block row per column-matrix row (b, r): gridDim.x steps over the B*C*KH*KW rows, gridDim.y
// blocks share a row's Ho*Wo pixels; consecutive threads write consecutive pixels (coalesced).
// The row's channel and tap are decoded once per row (in 32 bits where the row count fits), a
// pixel with one 32-bit division, and the launch gives each thread several pixels of its row:
// one thread per element decoding its whole index in 64 bits was bound by integer division
// (0.68 ms for a1's 267 MB of columns on an H200, about 0.4 TB/s).
template <typename T>
__global__ void im2col_kernel(const T* __restrict__ x, T* __restrict__ cols, int B, int C, int H, int W,
                              int Ho, int Wo, int KH, int KW, int sh, int sw, int dh, int dw, int ph, int pw) {
    const int P = Ho * Wo, R = C * KH * KW;  // P < 2^31: checked by the caller
    fc_plane_loop((long long)B * R, [&](auto row) {
        const int r = (int)(row % R);
        const auto b = row / R;
        const int j = r % KW, i = (r / KW) % KH, c = r / (KW * KH);
        const T* xp = x + ((long long)b * C + c) * H * W;
        T* dst = cols + (long long)row * P;
        const int dy0 = i * dh - ph, dx0 = j * dw - pw;
        for (int q = blockIdx.y * blockDim.x + threadIdx.x; q < P; q += gridDim.y * blockDim.x) {
            const int yo = q / Wo, xo = q - yo * Wo;
            const int iy = yo * sh + dy0, ix = xo * sw + dx0;
            dst[q] = (fc_in_range(iy, H) && fc_in_range(ix, W)) ? xp[(long long)iy * W + ix] : T(0);
        }
    });
}

// col2im in the gather form: one thread per dx element sums the column entries of every tap
// that reads it, dx[b, c, yi, xi] = sum_{i, j valid} cols[b, (c*KH+i)*KW+j, yo*Wo+xo].
// Each element has one writer, so no atomics, no zero-fill and a deterministic result; this
// is the adjoint of im2col_kernel (the input gradient / transposed convolution).
template <typename T>
__global__ void col2im_gather(const T* __restrict__ cols, T* __restrict__ dx, int B, int C, int H, int W,
                              int Ho, int Wo, int KH, int KW, int sh, int sw, int dh, int dw, int ph, int pw) {
    const int P = Ho * Wo;
    const long long total = (long long)B * C * H * W;
    fc_grid_loop(total, [&](auto idx) {
        const int xi = (int)(idx % W);
        auto t = idx / W;
        const int yi = (int)(t % H);
        const long long bc = t / H;  // b*C + c: the first column row of this channel is bc*KH*KW
        const T* src = cols + bc * KH * KW * (long long)P;
        T acc = T(0);
        for (int i = 0; i < KH; ++i) {
            int yo;
            if (!fc_tap_source(yi, ph, i, dh, sh, Ho, yo)) continue;
            for (int j = 0; j < KW; ++j) {
                int xo;
                if (!fc_tap_source(xi, pw, j, dw, sw, Wo, xo)) continue;
                acc += src[(long long)(i * KW + j) * P + yo * Wo + xo];
            }
        }
        dx[idx] = acc;
    });
}

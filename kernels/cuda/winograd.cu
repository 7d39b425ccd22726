// Winograd F(2x2, 3x3) for dense 3x3 convolutions at stride 1 (Lavin & Gray 2016, "Fast
// Algorithms for Convolutional Neural Networks"): each 2x2 output tile is
//
//   Y = AT [ sum_c (G g_oc GT) .* (BT d_c B) ] A
//
// with d_c the 4x4 input patch of channel c. The sum over channels is, for each of the 16
// positions xi of the 4x4 transformed tile, a GEMM: M[xi] (O x T) = U[xi] (O x C) @ V[xi] (C x T)
// over the T tiles, which the caller runs as one batched cuBLAS GEMM (cupy.matmul) between the
// three kernels below: 16 GEMMs of 2.25x fewer multiply-adds than the direct convolution's.
//
//   BT = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]    G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
//   AT = [1 1 1 0; 0 1 -1 -1]
//
// Layouts: U (16, O, C), V (16, C, T), M (16, O, T), tile t = (b * th + ty) * tw + tx of the
// th x tw tiles per image; tile (ty, tx) reads input rows 2*ty - ph .. +3 and writes output
// rows 2*ty, 2*ty + 1 (those inside Ho, Wo). The input gradient is the same computation on dy,
// with the filters transposed (C <-> O) and flipped, and the padding 2 - ph.
//
// The weight gradient is F(3x3, 2x2), the transposition of F(2x2, 3x3) (Lavin & Gray, section
// 5): the 3x3 correlation of the 4x4 patch d_ct with the 2x2 tile g_ot of dy is
//
//   dW_oc = GT [ sum_t (A g_ot AT) .* (BT d_ct B) ] G,
//
// the same V as the forward's, Y (16, O, T) from dy's tiles (winograd_dy), and per position xi
// one GEMM M[xi] (O x C) = Y[xi] (O x T) @ V[xi]^T (T x C) reducing over the tiles
// (winograd_dw transforms M back to dw).
#include "common.cuh"

// Element idx of a (lead, B * th * tw) grid -> lead index, flat tile t and its (b, ty, tx).
// Divides in idx's own type: 32 bits whenever fc_grid_loop runs in 32 bits.
struct FcWinogradTile {
    int lead, b, ty, tx;
    long long t;
};
template <typename I>
__device__ __forceinline__ FcWinogradTile fc_winograd_tile(I idx, long long Tn, int th, int tw) {
    FcWinogradTile p;
    const I n = (I)Tn;  // Tn <= total, which fits I
    p.lead = (int)(idx / n);
    const I t = idx - (I)p.lead * n;
    const int r = (int)(t % (th * tw));
    p.t = t;
    p.b = (int)(t / (th * tw));
    p.ty = r / tw;
    p.tx = r - p.ty * tw;
    return p;
}

// One thread per (o, c): U[xi][o][c] = (G g GT)[xi] for g = w[o][c] (transposed = 0) or
// g = flip(w[c][o]) (transposed = 1, the input gradient's filters; w is then (C, O, 3, 3)).
template <typename T>
__global__ void winograd_weight(const T* __restrict__ w, T* __restrict__ U, int O, int C, int transposed) {
    const long long total = (long long)O * C;
    fc_grid_loop(total, [&](auto idx) {
        const int o = (int)(idx / C), c = (int)(idx % C);
        T g[3][3];
        const T* src = w + (transposed ? (long long)c * O + o : (long long)o * C + c) * 9;
#pragma unroll
        for (int i = 0; i < 3; ++i)
#pragma unroll
            for (int j = 0; j < 3; ++j) g[i][j] = transposed ? src[(2 - i) * 3 + (2 - j)] : src[i * 3 + j];
        T t[4][3];  // G g
#pragma unroll
        for (int j = 0; j < 3; ++j) {
            t[0][j] = g[0][j];
            t[1][j] = T(0.5) * (g[0][j] + g[1][j] + g[2][j]);
            t[2][j] = T(0.5) * (g[0][j] - g[1][j] + g[2][j]);
            t[3][j] = g[2][j];
        }
        const long long plane = (long long)O * C;
#pragma unroll
        for (int r = 0; r < 4; ++r) {  // (G g) GT
            const T u[4] = {t[r][0], T(0.5) * (t[r][0] + t[r][1] + t[r][2]),
                            T(0.5) * (t[r][0] - t[r][1] + t[r][2]), t[r][2]};
#pragma unroll
            for (int s = 0; s < 4; ++s) U[(r * 4 + s) * plane + idx] = u[s];
        }
    });
}

// One thread per (c, t): V[xi][c][t] = (BT d B)[xi] for the 4x4 patch d of channel c under tile
// t (zeros outside the image). Consecutive threads take consecutive tiles: coalesced stores.
template <typename T>
__global__ void winograd_input(const T* __restrict__ x, T* __restrict__ V, int B, int C, int H, int W,
                               int th, int tw, int ph, int pw) {
    const long long Tn = (long long)B * th * tw, total = (long long)C * Tn;
    fc_grid_loop(total, [&](auto idx) {
        const FcWinogradTile p = fc_winograd_tile(idx, Tn, th, tw);
        const int c = p.lead, b = p.b;
        const long long t = p.t;
        const int y0 = 2 * p.ty - ph, x0 = 2 * p.tx - pw;
        const T* xp = x + ((long long)b * C + c) * H * W;
        T d[4][4];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j)
                d[i][j] = (fc_in_range(y0 + i, H) && fc_in_range(x0 + j, W)) ? xp[(long long)(y0 + i) * W + x0 + j]
                                                                              : T(0);
        T e[4][4];  // BT d
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            e[0][j] = d[0][j] - d[2][j];
            e[1][j] = d[1][j] + d[2][j];
            e[2][j] = d[2][j] - d[1][j];
            e[3][j] = d[1][j] - d[3][j];
        }
        const long long plane = (long long)C * Tn;
        T* dst = V + (long long)c * Tn + t;
#pragma unroll
        for (int i = 0; i < 4; ++i) {  // (BT d) B
            dst[(i * 4 + 0) * plane] = e[i][0] - e[i][2];
            dst[(i * 4 + 1) * plane] = e[i][1] + e[i][2];
            dst[(i * 4 + 2) * plane] = e[i][2] - e[i][1];
            dst[(i * 4 + 3) * plane] = e[i][1] - e[i][3];
        }
    });
}

// One thread per (o, t): the 2x2 output tile AT m A of M[.][o][t], written where it lies inside
// y (B, O, Ho, Wo).
template <typename T>
__global__ void winograd_output(const T* __restrict__ Mt, T* __restrict__ y, int B, int O, int Ho, int Wo,
                                int th, int tw) {
    const long long Tn = (long long)B * th * tw, total = (long long)O * Tn;
    fc_grid_loop(total, [&](auto idx) {
        const FcWinogradTile p = fc_winograd_tile(idx, Tn, th, tw);
        const int o = p.lead, b = p.b, ty = p.ty, tx = p.tx;
        const long long plane = (long long)O * Tn;
        const T* src = Mt + idx;
        T m[4][4];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j) m[i][j] = src[(i * 4 + j) * plane];
        T a[2][4];  // AT m
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            a[0][j] = m[0][j] + m[1][j] + m[2][j];
            a[1][j] = m[1][j] - m[2][j] - m[3][j];
        }
        T* yp = y + ((long long)b * O + o) * Ho * Wo;
#pragma unroll
        for (int i = 0; i < 2; ++i) {  // (AT m) A
            const int yo = 2 * ty + i;
            if (yo >= Ho) continue;
            const T v0 = a[i][0] + a[i][1] + a[i][2], v1 = a[i][1] - a[i][2] - a[i][3];
            yp[(long long)yo * Wo + 2 * tx] = v0;
            if (2 * tx + 1 < Wo) yp[(long long)yo * Wo + 2 * tx + 1] = v1;
        }
    });
}

// One thread per (o, t): Y[xi][o][t] = (A g AT)[xi] for the 2x2 tile g of dy's channel o under
// tile t (zeros past Ho, Wo), A = AT^T.
template <typename T>
__global__ void winograd_dy(const T* __restrict__ dy, T* __restrict__ Y, int B, int O, int Ho, int Wo,
                            int th, int tw) {
    const long long Tn = (long long)B * th * tw, total = (long long)O * Tn;
    fc_grid_loop(total, [&](auto idx) {
        const FcWinogradTile p = fc_winograd_tile(idx, Tn, th, tw);
        const T* src = dy + ((long long)p.b * O + p.lead) * Ho * Wo;
        const int y0 = 2 * p.ty, x0 = 2 * p.tx;
        T g[2][2];
#pragma unroll
        for (int i = 0; i < 2; ++i)
#pragma unroll
            for (int j = 0; j < 2; ++j)
                g[i][j] = (y0 + i < Ho && x0 + j < Wo) ? src[(long long)(y0 + i) * Wo + x0 + j] : T(0);
        const T a[4][2] = {{g[0][0], g[0][1]}, {g[0][0] + g[1][0], g[0][1] + g[1][1]},  // A g
                           {g[0][0] - g[1][0], g[0][1] - g[1][1]}, {-g[1][0], -g[1][1]}};
        const long long plane = (long long)O * Tn;
        T* dst = Y + idx;
#pragma unroll
        for (int r = 0; r < 4; ++r) {  // (A g) AT
            dst[(r * 4 + 0) * plane] = a[r][0];
            dst[(r * 4 + 1) * plane] = a[r][0] + a[r][1];
            dst[(r * 4 + 2) * plane] = a[r][0] - a[r][1];
            dst[(r * 4 + 3) * plane] = -a[r][1];
        }
    });
}

// One thread per (o, c): dw[o][c] = GT m G (3x3) for the 4x4 m = M[.][o][c].
template <typename T>
__global__ void winograd_dw(const T* __restrict__ Mt, T* __restrict__ dw, int O, int C) {
    const long long total = (long long)O * C;
    fc_grid_loop(total, [&](auto idx) {
        T m[4][4];
#pragma unroll
        for (int i = 0; i < 4; ++i)
#pragma unroll
            for (int j = 0; j < 4; ++j) m[i][j] = Mt[(i * 4 + j) * total + idx];
        T t[3][4];  // GT m
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            t[0][j] = m[0][j] + T(0.5) * (m[1][j] + m[2][j]);
            t[1][j] = T(0.5) * (m[1][j] - m[2][j]);
            t[2][j] = T(0.5) * (m[1][j] + m[2][j]) + m[3][j];
        }
        T* dst = dw + (long long)idx * 9;
#pragma unroll
        for (int i = 0; i < 3; ++i) {  // (GT m) G
            dst[i * 3 + 0] = t[i][0] + T(0.5) * (t[i][1] + t[i][2]);
            dst[i * 3 + 1] = T(0.5) * (t[i][1] - t[i][2]);
            dst[i * 3 + 2] = T(0.5) * (t[i][1] + t[i][2]) + t[i][3];
        }
    });
}

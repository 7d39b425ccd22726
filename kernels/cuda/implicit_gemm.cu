// Implicit-GEMM convolution: the GEMM of the im2col formulation computed tile by tile in
// shared memory, gathering the column matrix on the fly instead of writing it to memory
// (Chetlur et al. 2014, "cuDNN: Efficient Primitives for Deep Learning", section 3).
// The tiling is the classic SGEMM one (Volkov & Demmel 2008; CUTLASS's SIMT GEMM): a block
// computes a BM x BN tile of C = A @ B stepping through K by BK, with A and B tiles double
// buffered in shared memory (one barrier per step; the next tile's global loads are issued
// before the current tile's multiply-adds so they overlap) and a TM x TN register tile per
// thread (each shared-memory value read feeds TN or TM multiply-adds).
//
// One kernel serves two problems; both read their "input" through a gather described by a
// per-k table precomputed in Python, so the inner loop has no integer division:
//
//   forward     C = y (per group: Og x N*Ho*Wo),  A = w (Og x Cg*KH*KW),  B = im2col(x)
//   grad input  C = dx (per group: Cg x N*H*W),   A = w^T,                B = the dy taps
//
// For the input gradient of a strided convolution most (i, yo) pairs never meet: only taps
// with (yi + ph - i*dh) % sh == 0 reach row yi. The output is therefore split into sh*sw
// phases (yi = y0 + a*sh, xi = x0 + b*sw), each a dense GEMM over its own tap subset (the
// stride decomposition of transposed convolution; Dumoulin & Visin 2016, section 4.5;
// Shi et al. 2016 "sub-pixel convolution"), so no multiply-add is spent on a structural zero.
//
// Per-k table entry (int4): .x offset of the tap in the input image relative to the pixel's
// base, .y/.z the row/column shift used for the bounds check, .w the offset of A's element in
// row m of the weight (A[m][k] = w[m * w_m + .w]).
// Phase table (6 ints per phase): first k-table entry, K, PU, PV (the phase's pixel grid per
// image), and the output row/column of its pixel (0, 0).
// A pixel p = (n, u, v) of a phase reads input row ya = u*su + ou (+ .y), column xa = v*sv + ov
// (+ .z) and writes output row u*tu + oy0, column v*tv + ox0.
#include "common.cuh"

// Two blocks per SM (<= 128 registers) except for the 8x8 register tile, whose 64
// accumulators plus prefetch registers need 145 (BK=8) to 191 (BK=16); capping at 128 spills.
template <typename T, int BM, int BN, int BK, int TM, int TN>
__global__ void __launch_bounds__((BM / TM) * (BN / TN), (TM * TN >= 64 ? 1 : 2))
igemm_conv(const T* __restrict__ in, const T* __restrict__ w, T* __restrict__ out,
           const int4* __restrict__ ktab, const int* __restrict__ phases,
           int M, int Nimg, long long in_img, long long in_grp, int Hin, int Win,
           int su, int ou, int sv, int ov,
           long long w_grp, int w_m, long long out_img, long long out_grp, int out_plane, int Wout,
           int tu, int tv, int nphase) {
    constexpr int NT = (BM / TM) * (BN / TN);
    constexpr int A_PER = BM * BK / NT;  // A-tile elements each thread loads per K step
    constexpr int B_PER = BK * BN / NT;
    constexpr int B_ROWS = NT / BN;      // B-tile rows between two loads of one thread
    constexpr int PAD = 4;               // breaks the bank pattern of the transposed A store
    static_assert(NT % BN == 0 && (BM * BK) % NT == 0 && BK % B_ROWS == 0, "tile shape");
    static_assert(TM % 2 == 0 && TN % 2 == 0, "register tile is split in two halves");

    __shared__ __align__(16) T As[2][BK][BM + PAD];
    __shared__ __align__(16) T Bs[2][BK][BN + PAD];

    const int g = blockIdx.z / nphase;
    const int* ph = phases + 6 * (blockIdx.z % nphase);
    const int kstart = ph[0], K = ph[1], PU = ph[2], PV = ph[3], oy0 = ph[4], ox0 = ph[5];
    const int P_img = PU * PV;
    const int P = Nimg * P_img;  // < 2^31, checked by the caller
    const int p0 = blockIdx.x * BN;
    if (p0 >= P) return;         // the grid covers the largest phase; uniform per block
    const int m0 = blockIdx.y * BM;
    const int tid = threadIdx.x;

    in += g * in_grp;
    w += g * w_grp;
    out += g * out_grp;
    ktab += kstart;

    // This thread's B column is fixed for the whole K loop: decode its pixel once.
    const int pb = tid % BN, kb = tid / BN;
    const int p = p0 + pb;
    const bool p_ok = p < P;
    int ya = 0, xa = 0;
    long long base = 0;
    if (p_ok) {
        const int n = p / P_img, r = p - n * P_img;
        const int u = r / PV, v = r - u * PV;
        ya = u * su + ou;
        xa = v * sv + ov;
        base = n * in_img + (long long)ya * Win + xa;
    }

    T a_reg[A_PER], b_reg[B_PER];
    auto load = [&](int k0) {
#pragma unroll
        for (int r = 0; r < A_PER; ++r) {
            const int e = tid + r * NT, am = e / BK, ak = e % BK;
            const int m = m0 + am, k = k0 + ak;
            a_reg[r] = (m < M && k < K) ? w[(long long)m * w_m + ktab[k].w] : T(0);
        }
#pragma unroll
        for (int r = 0; r < B_PER; ++r) {
            const int k = k0 + kb + r * B_ROWS;
            T v = T(0);
            if (p_ok && k < K) {
                const int4 t = ktab[k];
                if (fc_in_range(ya + t.y, Hin) && fc_in_range(xa + t.z, Win)) v = in[base + t.x];
            }
            b_reg[r] = v;
        }
    };
    auto store = [&](int buf) {
#pragma unroll
        for (int r = 0; r < A_PER; ++r) {
            const int e = tid + r * NT;
            As[buf][e % BK][e / BK] = a_reg[r];
        }
#pragma unroll
        for (int r = 0; r < B_PER; ++r) Bs[buf][kb + r * B_ROWS][pb] = b_reg[r];
    };

    // Thread (tr, tc) owns rows tr*TM/2 + [0, TM/2) and BM/2 + tr*TM/2 + [0, TM/2), and the
    // columns likewise: the halves keep a warp's shared-memory reads on consecutive addresses.
    const int tr = tid / (BN / TN), tc = tid % (BN / TN);
    T acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

    const int nk = (K + BK - 1) / BK;
    if (nk > 0) {
        load(0);
        store(0);
    }
    __syncthreads();
    for (int kt = 0; kt < nk; ++kt) {
        const int buf = kt & 1;
        if (kt + 1 < nk) load((kt + 1) * BK);  // in flight during the multiply-adds below
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            T a[TM], b[TN];
#pragma unroll
            for (int i = 0; i < TM / 2; ++i) {
                a[i] = As[buf][kk][tr * (TM / 2) + i];
                a[TM / 2 + i] = As[buf][kk][BM / 2 + tr * (TM / 2) + i];
            }
#pragma unroll
            for (int j = 0; j < TN / 2; ++j) {
                b[j] = Bs[buf][kk][tc * (TN / 2) + j];
                b[TN / 2 + j] = Bs[buf][kk][BN / 2 + tc * (TN / 2) + j];
            }
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];
        }
        // The other buffer was last read before the previous barrier: safe to overwrite now.
        if (kt + 1 < nk) store(buf ^ 1);
        __syncthreads();
    }

#pragma unroll
    for (int j = 0; j < TN; ++j) {
        const int col = j < TN / 2 ? tc * (TN / 2) + j : BN / 2 + tc * (TN / 2) + (j - TN / 2);
        const int pj = p0 + col;
        if (pj >= P) continue;
        const int n = pj / P_img, r = pj - n * P_img;
        const int u = r / PV, v = r - u * PV;
        T* dst = out + n * out_img + (long long)(u * tu + oy0) * Wout + (v * tv + ox0);
#pragma unroll
        for (int i = 0; i < TM; ++i) {
            const int row = i < TM / 2 ? tr * (TM / 2) + i : BM / 2 + tr * (TM / 2) + (i - TM / 2);
            const int m = m0 + row;
            if (m < M) dst[(long long)m * out_plane] = acc[i][j];
        }
    }
}

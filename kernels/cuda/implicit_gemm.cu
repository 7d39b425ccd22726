// Implicit-GEMM convolution: the GEMM of the im2col formulation computed tile by tile in
// shared memory, gathering the column matrix on the fly instead of writing it to memory
// (Chetlur et al. 2014, "cuDNN: Efficient Primitives for Deep Learning", section 3).
// The tiling is the classic SGEMM one (Volkov & Demmel 2008; CUTLASS's SIMT GEMM): a block
// computes a BM x BN tile of C = A @ B stepping through K by BK, with A and B tiles double
// buffered in shared memory (one barrier per step; the next tile's global loads are issued
// before the current tile's multiply-adds so they overlap) and a TM x TN register tile per
// thread (each shared-memory value read feeds TN or TM multiply-adds); igemm_conv writes its
// tile out through shared memory, in coalesced rows.
//
// igemm_conv serves two problems; both read their "input" through a gather described by a
// per-k table precomputed in Python, so the inner loop has no integer division:
//
//   forward     C = y (per group: Og x N*Ho*Wo),  A = w (Og x Cg*KH*KW),  B = im2col(x)
//   grad input  C = dx (per group: Cg x N*H*W),   A = w^T,                B = the dy taps
//
// igemm_wgrad computes the weight gradient with the forward's tables, reducing over the pixels:
//
//   grad weight C = dw (per group: Og x Cg*KH*KW) = dy (Og x N*Ho*Wo) @ im2col(x)^T
//
// Its reduction (N*Ho*Wo, 200704 on a1) is split into `nsplit` chunks, one per block, each
// writing its partial tile to a workspace that the caller sums in a fixed order: no atomics,
// and blocks enough to fill the GPU although dw has few tiles (a1's is 64 x 576).
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

// The shared-memory GEMM both kernels run: nk steps of BK, with the A and B tiles double
// buffered (As[buf][k][m], Bs[buf][k][n]); load(k0) fetches step k0's elements into the
// caller's registers, store(buf) writes them to buffer buf. acc[i][j] ends holding C at row
// fc_igemm_row<BM, TM>(tr, i) and column fc_igemm_row<BN, TN>(tc, j) of the tile, with
// (tr, tc) = (tid / (BN / TN), tid % (BN / TN)).
constexpr int FC_IGEMM_PAD = 4;  // breaks the bank pattern of the transposed A store

// Thread t owns rows t*R/2 + [0, R/2) and TILE/2 + t*R/2 + [0, R/2) of a TILE-wide side, R = its
// register count on that side: the halves keep a warp's shared-memory reads on consecutive
// addresses.
template <int TILE, int R>
__device__ __forceinline__ int fc_igemm_row(int t, int i) {
    return i < R / 2 ? t * (R / 2) + i : TILE / 2 + t * (R / 2) + (i - R / 2);
}

template <typename T, int BM, int BN, int BK, int TM, int TN, typename Load, typename Store>
__device__ __forceinline__ void fc_igemm_mainloop(int nk, const T (&As)[2][BK][BM + FC_IGEMM_PAD],
                                                  const T (&Bs)[2][BK][BN + FC_IGEMM_PAD],
                                                  T (&acc)[TM][TN], Load&& load, Store&& store) {
    static_assert(TM % 2 == 0 && TN % 2 == 0, "register tile is split in two halves");
    const int tid = threadIdx.x;
    const int tr = tid / (BN / TN), tc = tid % (BN / TN);
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

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
            for (int i = 0; i < TM; ++i) a[i] = As[buf][kk][fc_igemm_row<BM, TM>(tr, i)];
#pragma unroll
            for (int j = 0; j < TN; ++j) b[j] = Bs[buf][kk][fc_igemm_row<BN, TN>(tc, j)];
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] += a[i] * b[j];
        }
        // The other buffer was last read before the previous barrier: safe to overwrite now.
        if (kt + 1 < nk) store(buf ^ 1);
        __syncthreads();
    }
}

// Two blocks per SM (<= 128 registers) except for the 8x8 register tile, whose 64
// accumulators plus prefetch registers need 145 (BK=8) to 191 (BK=16); capping at 128 spills.
#define FC_IGEMM_BOUNDS __launch_bounds__((BM / TM) * (BN / TN), (TM * TN >= 64 ? 1 : 2))

template <typename T, int BM, int BN, int BK, int TM, int TN>
__global__ void FC_IGEMM_BOUNDS
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
    static_assert(NT % BN == 0 && (BM * BK) % NT == 0 && BK % B_ROWS == 0, "tile shape");

    // One shared buffer: the main loop's A and B tiles, then half the output tile at a time.
    constexpr int A_SIZE = 2 * BK * (BM + FC_IGEMM_PAD), B_SIZE = 2 * BK * (BN + FC_IGEMM_PAD);
    constexpr int S_SIZE = (BM / 2) * (BN + FC_IGEMM_PAD);
    __shared__ __align__(16) T smem[A_SIZE + B_SIZE > S_SIZE ? A_SIZE + B_SIZE : S_SIZE];
    auto& As = *reinterpret_cast<T(*)[2][BK][BM + FC_IGEMM_PAD]>(smem);
    auto& Bs = *reinterpret_cast<T(*)[2][BK][BN + FC_IGEMM_PAD]>(smem + A_SIZE);

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

    T acc[TM][TN];
    fc_igemm_mainloop<T, BM, BN, BK, TM, TN>((K + BK - 1) / BK, As, Bs, acc, load, store);

    // The tile goes out through shared memory, half its rows at a time: a warp then writes 32
    // consecutive pixels of one output row (coalesced), where stores from the register tile put
    // a warp's lanes TN / 2 pixels apart; and each thread decodes one pixel, not TN. On an H200
    // this took a2's 64x128 tile from 1.07 to 0.76 ms, b's from 0.73 to 0.65 (gpu_sweep.py).
    const int tr = tid / (BN / TN), tc = tid % (BN / TN);
    auto& S = *reinterpret_cast<T(*)[BM / 2][BN + FC_IGEMM_PAD]>(smem);
    constexpr int S_ROWS = NT / BN;  // output rows one pass of the block writes
    T* dst = nullptr;
    if (p_ok) {
        const int n = p / P_img, r = p - n * P_img;
        const int u = r / PV, v = r - u * PV;
        dst = out + n * out_img + (long long)(u * tu + oy0) * Wout + (v * tv + ox0);
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
#pragma unroll
        for (int i = 0; i < TM / 2; ++i)
#pragma unroll
            for (int j = 0; j < TN; ++j) S[tr * (TM / 2) + i][fc_igemm_row<BN, TN>(tc, j)] = acc[h * (TM / 2) + i][j];
        __syncthreads();
        if (dst) {
#pragma unroll 4
            for (int r = kb; r < BM / 2; r += S_ROWS) {
                const int m = m0 + h * (BM / 2) + r;
                if (m < M) dst[(long long)m * out_plane] = S[r][pb];
            }
        }
        __syncthreads();
    }
}

// Weight gradient: block (x, y, z) computes the BM x BN tile (rows o = y*BM.., columns k = x*BN..)
// of group z / nsplit's dw, summed over pixels [s*chunk, min(P, (s+1)*chunk)) of the
// reduction, s = z % nsplit, and writes it to ws + s*ws_split at dw's own offsets. Arguments
// are the forward plan's (one phase), plus nsplit, chunk (a multiple of BK) and ws_split.
// Both tiles are gathered pixel-major: thread t loads pixel t % BK of each step for rows
// t / BK + r * (NT / BK), so a step decodes one pixel per thread.
template <typename T, int BM, int BN, int BK, int TM, int TN>
__global__ void FC_IGEMM_BOUNDS
igemm_wgrad(const T* __restrict__ in, const T* __restrict__ dy, T* __restrict__ ws,
            const int4* __restrict__ ktab, const int* __restrict__ phases,
            int M, int Nimg, long long in_img, long long in_grp, int Hin, int Win,
            int su, int ou, int sv, int ov,
            long long w_grp, int w_m, long long out_img, long long out_grp, int out_plane, int Wout,
            int tu, int tv, int nphase, int nsplit, int chunk, long long ws_split) {
    constexpr int NT = (BM / TM) * (BN / TN);
    constexpr int ROWS = NT / BK;        // tile rows one pass of the block loads
    constexpr int A_PER = BM / ROWS, B_PER = BN / ROWS;
    static_assert(NT % BK == 0 && BM % ROWS == 0 && BN % ROWS == 0, "tile shape");

    __shared__ __align__(16) T As[2][BK][BM + FC_IGEMM_PAD];
    __shared__ __align__(16) T Bs[2][BK][BN + FC_IGEMM_PAD];

    const int g = blockIdx.z / nsplit, s = blockIdx.z % nsplit;
    const int K = phases[1], PU = phases[2], PV = phases[3], oy0 = phases[4], ox0 = phases[5];
    const int P_img = PU * PV;
    const int P = Nimg * P_img;  // < 2^31, checked by the caller
    const int r0 = s * chunk, r1 = min(P, r0 + chunk);
    const int n0 = blockIdx.x * BN, m0 = blockIdx.y * BM;
    const int tid = threadIdx.x;
    const int pb = tid % BK, rb = tid / BK;

    in += g * in_grp;
    dy += g * out_grp;

    T a_reg[A_PER], b_reg[B_PER];
    auto load = [&](int k0) {
        const int p = r0 + k0 + pb;
        const bool ok = p < r1;
        int n = 0, u = 0, v = 0;
        if (ok) {
            n = p / P_img;
            const int r = p - n * P_img;
            u = r / PV;
            v = r - u * PV;
        }
        const T* dyp = dy + n * out_img + (long long)(u * tu + oy0) * Wout + (v * tv + ox0);
        const int ya = u * su + ou, xa = v * sv + ov;
        const T* inp = in + n * in_img + (long long)ya * Win + xa;
#pragma unroll
        for (int r = 0; r < A_PER; ++r) {
            const int m = m0 + rb + r * ROWS;
            a_reg[r] = (ok && m < M) ? dyp[(long long)m * out_plane] : T(0);
        }
#pragma unroll
        for (int r = 0; r < B_PER; ++r) {
            const int k = n0 + rb + r * ROWS;
            T val = T(0);
            if (ok && k < K) {
                const int4 t = ktab[k];
                if (fc_in_range(ya + t.y, Hin) && fc_in_range(xa + t.z, Win)) val = inp[t.x];
            }
            b_reg[r] = val;
        }
    };
    auto store = [&](int buf) {
#pragma unroll
        for (int r = 0; r < A_PER; ++r) As[buf][pb][rb + r * ROWS] = a_reg[r];
#pragma unroll
        for (int r = 0; r < B_PER; ++r) Bs[buf][pb][rb + r * ROWS] = b_reg[r];
    };

    T acc[TM][TN];
    fc_igemm_mainloop<T, BM, BN, BK, TM, TN>(r1 > r0 ? (r1 - r0 + BK - 1) / BK : 0, As, Bs, acc, load, store);

    const int tr = tid / (BN / TN), tc = tid % (BN / TN);
    T* dst = ws + s * ws_split + g * w_grp;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
        const int k = n0 + fc_igemm_row<BN, TN>(tc, j);
        if (k >= K) continue;
        const int wk = ktab[k].w;
#pragma unroll
        for (int i = 0; i < TM; ++i) {
            const int m = m0 + fc_igemm_row<BM, TM>(tr, i);
            if (m < M) dst[(long long)m * w_m + wk] = acc[i][j];
        }
    }
}

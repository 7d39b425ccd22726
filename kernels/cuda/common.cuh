// Shared helpers of the fastconv CUDA kernels.
//
// This header is inlined textually by fastconv.backends._cuda_src.kernel_source() before the
// source reaches NVRTC (and nvcc in the compile check), so CuPy's on-disk kernel cache, which
// hashes only the source string, can never serve a module built from a stale header.
// NVRTC has no standard library headers: only builtins are used here.
#ifndef FASTCONV_COMMON_CUH
#define FASTCONV_COMMON_CUH

// Grid-stride loop over [0, total) calling body(idx): the launch config (computed in Python)
// may cap the grid. The index is 32-bit whenever total (plus one grid's stride) fits, else
// 64-bit, so tensors of more than 2^31 elements stay correct. The body decodes idx with
// divisions by run-time sizes; in 32 bits each is a few instructions, in 64 bits a call of
// about 70, which made the one-thread-per-element kernels (im2col, direct, pooling)
// integer-bound. `body` is a generic lambda: it is compiled once for each index type.
template <typename F>
__device__ __forceinline__ void fc_grid_loop(long long total, F&& body) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    if (total + stride <= 0x7fffffffLL) {
        const int n = (int)total, step = (int)stride;
        for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += step) body(idx);
    } else {
        for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride)
            body(idx);
    }
}

// Block-stride loop over the planes [0, nplanes) of a per-plane kernel (gridDim.x blocks step
// over the planes, gridDim.y blocks share one plane's pixels), calling body(pl): 32-bit like
// fc_grid_loop whenever nplanes (plus one grid's stride) fits, so decoding the plane's indices
// costs a few instructions instead of two 64-bit divisions per thread.
template <typename F>
__device__ __forceinline__ void fc_plane_loop(long long nplanes, F&& body) {
    if (nplanes + gridDim.x <= 0x7fffffffLL) {
        const int n = (int)nplanes;
        for (int pl = blockIdx.x; pl < n; pl += gridDim.x) body(pl);
    } else {
        for (long long pl = blockIdx.x; pl < nplanes; pl += gridDim.x) body(pl);
    }
}

// 0 <= v < n in one comparison (a negative int becomes a huge unsigned).
__device__ __forceinline__ bool fc_in_range(int v, int n) { return (unsigned)v < (unsigned)n; }

// The output index yo that reads input row yi through tap i, if there is one:
//   yo * stride - pad + i * dil == yi   <=>   yo = (yi + pad - i * dil) / stride, exactly.
// This is the gather form of col2im / the transposed convolution (one writer per element).
__device__ __forceinline__ bool fc_tap_source(int yi, int pad, int i, int dil, int stride, int n_out,
                                              int& yo) {
    const int t = yi + pad - i * dil;
    if (t < 0) return false;
    yo = t / stride;
    return yo * stride == t && yo < n_out;
}

// Sum of one value per thread over the block, in a fixed order: warp shuffles, then the warp
// partials through shared memory. Deterministic for a fixed blockDim (no atomics).
// `scratch` holds at least 32 T; blockDim.x is a multiple of 32, at most 1024.
template <typename T>
__device__ __forceinline__ T fc_block_sum(T v, T* scratch) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    const int nwarps = blockDim.x >> 5;
    v = (threadIdx.x < nwarps) ? scratch[threadIdx.x] : T(0);
    if (warp == 0)
        for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    return v;  // valid in thread 0
}

#endif  // FASTCONV_COMMON_CUH

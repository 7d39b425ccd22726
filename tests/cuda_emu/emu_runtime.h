// A CPU runtime for fastconv's CUDA kernels: compile a .cu source with g++ against this header
// and its __global__ functions run on the host, one block at a time, with CUDA's semantics for
// what the kernels use: threadIdx / blockIdx / blockDim / gridDim, __shared__ memory (one copy,
// shared by the threads of the running block), __syncthreads(), __shfl_down_sync and the bit
// casts.
//
// The threads of a block are fibers (ucontext) scheduled round-robin: each runs until it waits
// at a barrier (block or warp), so every barrier really separates what comes before it from
// what comes after it. A round in which no thread moves is a deadlock (a barrier some threads
// never reach, a full-mask shuffle with lanes missing) and fails the launch with a message.
// FASTCONV_EMU_ORDER=reverse runs the threads of each round in reverse order: a kernel whose
// result changes with the order reads memory another thread writes without a barrier between.
// When the first block of a launch never waits, the other blocks run their threads as plain
// calls (a kernel without barriers needs no fibers); a barrier met there fails the launch.
//
// Not emulated: warp-synchronous execution without __syncwarp, atomics, textures, streams.
// Used by tests/cuda_emu/cupy/_raw.py (the RawModule of the NumPy-backed CuPy stand-in).
#pragma once
#include <setjmp.h>
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
struct alignas(16) int4 {
    int x, y, z, w;
};

namespace fcemu {

// Switching: makecontext/setcontext start a fiber; after that _setjmp/_longjmp move between the
// scheduler and the fibers (no signal-mask system call per switch, unlike swapcontext, which is
// ~3x slower here). AddressSanitizer builds keep swapcontext, which ASan knows how to follow.
#if defined(__SANITIZE_ADDRESS__)
#define FCEMU_SWAPCONTEXT 1
#endif

struct Fiber {
    ucontext_t ctx;
    jmp_buf jump;
    bool started = false;
    dim3 idx;
    int linear = 0;
    bool done = false;
};
struct Warp {
    int size = 0, arrived = 0;
    long generation = 0;
    unsigned long long slot[32];
};
struct LaunchError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

inline dim3 block_idx, block_dim, grid_dim;
inline std::vector<Fiber> fibers;
inline std::vector<std::vector<char>> stacks;
inline std::vector<Warp> warps;
inline Fiber* current = nullptr;
inline ucontext_t scheduler;
inline jmp_buf scheduler_jump;
inline bool fiber_mode = false, waited = false, progress = false, reverse_order = false;
inline int alive = 0, arrived = 0;
inline long generation = 0;
inline const std::function<void()>* body = nullptr;
inline std::string last_error, fiber_error;
constexpr std::size_t STACK_BYTES = 256 * 1024;

// From the running fiber back to the scheduler; returns when the scheduler resumes it.
inline void yield() {
#ifdef FCEMU_SWAPCONTEXT
    swapcontext(&current->ctx, &scheduler);
#else
    if (_setjmp(current->jump) == 0) _longjmp(scheduler_jump, 1);
#endif
}

// From the scheduler into fiber f; returns when f yields or finishes.
inline void resume(Fiber& f) {
#ifdef FCEMU_SWAPCONTEXT
    swapcontext(&scheduler, &f.ctx);
#else
    if (_setjmp(scheduler_jump) == 0) {
        if (!f.started) {
            f.started = true;
            setcontext(&f.ctx);
        }
        _longjmp(f.jump, 1);
    }
#endif
}

inline void need_fibers(const char* what) {
    if (!fiber_mode)
        throw LaunchError(std::string(what) + " reached in a block run without fibers: the first block "
                                              "of this launch never waited, so the barrier is data-dependent");
    waited = true;
    progress = true;
}

// __syncthreads(): the last of the live threads to arrive releases the others.
inline void syncthreads() {
    need_fibers("__syncthreads()");
    const long gen = generation;
    if (++arrived == alive) {
        arrived = 0;
        ++generation;
        return;
    }
    while (generation == gen) yield();
}

// All lanes of the current warp meet here (a full-mask warp operation).
inline void warp_barrier(Warp& w) {
    need_fibers("a warp shuffle");
    const long gen = w.generation;
    if (++w.arrived == w.size) {
        w.arrived = 0;
        ++w.generation;
        return;
    }
    while (w.generation == gen) yield();
}

template <typename T>
inline T shfl_down(unsigned mask, T v, unsigned delta) {
    static_assert(sizeof(T) <= sizeof(unsigned long long), "shuffle of a type wider than 64 bits");
    if (mask != 0xffffffffu) throw LaunchError("only full-mask shuffles are emulated");
    Warp& w = warps[current->linear >> 5];
    const int lane = current->linear & 31;
    std::memcpy(&w.slot[lane], &v, sizeof(T));
    warp_barrier(w);
    T r = v;
    if (lane + (int)delta < w.size) std::memcpy(&r, &w.slot[lane + delta], sizeof(T));
    warp_barrier(w);
    return r;
}

inline void fiber_main() {
    try {
        (*body)();
    } catch (const LaunchError& e) {  // an exception must not unwind past the fiber's first frame
        fiber_error = e.what();
    }
    current->done = true;
    --alive;
    progress = true;
    if (arrived > 0 && arrived == alive) {  // the threads still waiting were waiting for this one
        arrived = 0;
        ++generation;
    }
#ifndef FCEMU_SWAPCONTEXT
    _longjmp(scheduler_jump, 1);
#endif
}  // (with swapcontext: returns to `scheduler` through uc_link)

inline void run_block_with_fibers(int n) {
    if ((int)stacks.size() < n) stacks.resize(n);
    for (int t = 0; t < n; ++t) {
        Fiber& f = fibers[t];
        if (stacks[t].empty()) stacks[t].resize(STACK_BYTES);
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = stacks[t].data();
        f.ctx.uc_stack.ss_size = stacks[t].size();
        f.ctx.uc_link = &scheduler;
        makecontext(&f.ctx, fiber_main, 0);
        f.done = false;
        f.started = false;
    }
    for (int w = 0; w < (int)warps.size(); ++w) {
        warps[w].size = std::min(32, n - 32 * w);
        warps[w].arrived = 0;
    }
    alive = n;
    arrived = 0;
    while (alive > 0) {
        progress = false;
        for (int k = 0; k < n; ++k) {
            Fiber& f = fibers[reverse_order ? n - 1 - k : k];
            if (f.done) continue;
            current = &f;
            resume(f);
            if (!fiber_error.empty()) throw LaunchError(fiber_error);
        }
        if (!progress && alive > 0)
            throw LaunchError("deadlock: " + std::to_string(alive) + " threads of block (" +
                              std::to_string(block_idx.x) + ", " + std::to_string(block_idx.y) + ", " +
                              std::to_string(block_idx.z) + ") wait at a barrier the others never reach");
    }
}

inline void run_block_directly(int n) {
    for (int k = 0; k < n; ++k) {
        current = &fibers[reverse_order ? n - 1 - k : k];
        (*body)();
    }
}

// Runs the grid; 0 on success, else 1 with the reason in last_error.
inline int run_grid(dim3 grid, dim3 block, const std::function<void()>& kernel_call) {
    const unsigned long long n = (unsigned long long)block.x * block.y * block.z;
    if (n == 0 || n > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x == 0 ||
        grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
        last_error = "invalid configuration argument: grid (" + std::to_string(grid.x) + ", " +
                     std::to_string(grid.y) + ", " + std::to_string(grid.z) + "), block (" +
                     std::to_string(block.x) + ", " + std::to_string(block.y) + ", " +
                     std::to_string(block.z) + ")";
        return 1;
    }
    const char* order = std::getenv("FASTCONV_EMU_ORDER");
    reverse_order = order && std::string(order) == "reverse";
    body = &kernel_call;
    fiber_error.clear();
    grid_dim = grid;
    block_dim = block;
    fibers.assign(n, Fiber());
    warps.assign((n + 31) / 32, Warp());
    for (unsigned t = 0; t < n; ++t) {
        fibers[t].linear = (int)t;
        fibers[t].idx = dim3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
    }
    try {
        bool first = true, use_fibers = true;
        for (unsigned z = 0; z < grid.z; ++z)
            for (unsigned y = 0; y < grid.y; ++y)
                for (unsigned x = 0; x < grid.x; ++x) {
                    block_idx = dim3{x, y, z};
                    fiber_mode = use_fibers;
                    waited = false;
                    if (use_fibers)
                        run_block_with_fibers((int)n);
                    else
                        run_block_directly((int)n);
                    if (first) use_fibers = waited;
                    first = false;
                }
    } catch (const LaunchError& e) {
        last_error = e.what();
        return 1;
    }
    return 0;
}

// ---- argument marshalling: the kernel's own parameter types unpack the void* array
template <typename A>
constexpr char type_code() {
    using U = std::remove_cv_t<A>;
    if constexpr (std::is_pointer_v<U>) {
        using E = std::remove_cv_t<std::remove_pointer_t<U>>;
        if constexpr (std::is_same_v<E, float>) return 'F';
        else if constexpr (std::is_same_v<E, double>) return 'D';
        else if constexpr (std::is_same_v<E, int>) return 'I';
        else if constexpr (std::is_same_v<E, int4>) return '4';
        else return '?';
    } else if constexpr (std::is_same_v<U, int>) return 'i';
    else if constexpr (std::is_same_v<U, long long>) return 'l';
    else if constexpr (std::is_same_v<U, float>) return 'f';
    else if constexpr (std::is_same_v<U, double>) return 'd';
    else if constexpr (std::is_same_v<U, bool>) return 'b';
    else return '?';
}

template <typename... A>
const char* signature(void (*)(A...)) {
    static const char codes[] = {type_code<A>()..., '\0'};
    return codes;
}

template <typename... A, std::size_t... I>
void call(void (*k)(A...), void** args, std::index_sequence<I...>) {
    k(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(args[I])...);
}

template <typename... A>
int launch(void (*k)(A...), const unsigned* dims, void** args) {
    const std::function<void()> f = [&] { call(k, args, std::index_sequence_for<A...>{}); };
    return run_grid(dim3{dims[0], dims[1], dims[2]}, dim3{dims[3], dims[4], dims[5]}, f);
}

template <typename To, typename From>
inline To bit_cast(From v) {
    static_assert(sizeof(To) == sizeof(From), "bit cast between types of different sizes");
    To r;
    std::memcpy(&r, &v, sizeof(To));
    return r;
}

}  // namespace fcemu

// ---- the CUDA spellings the kernels use
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define threadIdx (fcemu::current->idx)
#define blockIdx (fcemu::block_idx)
#define blockDim (fcemu::block_dim)
#define gridDim (fcemu::grid_dim)
inline void __syncthreads() { fcemu::syncthreads(); }
template <typename T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    if (width != 32) throw fcemu::LaunchError("only 32-wide shuffles are emulated");
    return fcemu::shfl_down(mask, v, delta);
}
template <typename T>
inline T __ldg(const T* p) { return *p; }
inline float __int_as_float(int v) { return fcemu::bit_cast<float>(v); }
inline double __longlong_as_double(long long v) { return fcemu::bit_cast<double>(v); }
using std::isnan;
using std::isinf;
using std::min;
using std::max;

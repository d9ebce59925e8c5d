// Fused CPU kernels for CARAFE reassembly (forward, grad w.r.t. x and kernels), NCHW contiguous, and
// the pointwise (1x1) convolution with few output or input channels that feeds FADE's kernel
// generators, and the gradients of the gate's blend that involve the encoder feature.
//
// out[b,c,y,x] = sum_{i,j<K} x[b,c, sy+i-r, sx+j-r] * k[b, i*K+j, y, x],  r = K/2,
// sy = min(y/s, H-1), sx = min(x/s, W-1), zero outside x.
//
// Vectorisable form: let u_t be source row t of x upsampled s times along the width by nearest
// neighbour and zero-padded by r*s on each side, u_t[q] = x[.., t, q/s - r] (zero rows for t
// outside [0, H)). For columns x < min(W_out, s*W), where sx = x/s, tap (i, j) of output row y
// reads u_{sy+i-r}[x + j*s], so an output row is a sum of K*K contiguous products
// k_ij[y, :] * u_{sy+i-r}[j*s : j*s + W_out]. Tiles cover whole vectors of columns; the last
// columns of a row, fewer than a vector, are one tile with masked loads and stores (Lanes). The
// few floor-mode columns x >= s*W (sx = W-1 there) are computed by the definition.
//
// grad_k[ij,y,x] = sum_c grad[c,y,x] * u_{sy+i-r}[c][x + j*s] uses the same rows. grad_x of
// source row h gathers g_u[q] = sum over the output rows y that reach h through tap row i
// (sy = h+r-i) and over j of grad[y][x] * k_ij[y][x] at x = q + (r-j)*s, then folds it:
// grad_x[h][w] = sum_{t<s} g_u[w*s + t].
//
// Source rows are walked in order, so each upsampled row (and each padded gradient row) is built
// once into a small ring buffer and read K times. Every task writes its own rows of the result,
// so threads never write the same memory.
//
// Threads: an entry point given `runner`, the address of the OpenMP runtime's GOMP_parallel
// (fn, data, num_threads, flags), runs its tasks on that runtime's threads: torch's own, which
// spin for a while after each torch op and would otherwise hold the cores that threads started
// here need. Given null, it starts its threads itself. Either way the result is the same.
//
// Plain C++17 without torch headers; called through ctypes. Entry points return 0 on success,
// 1 when scratch memory cannot be allocated, 2 when the shape is invalid or an element count
// derived from it would exceed kMaxElements (sizes_fit; the Python caller checks the same first).
// Taps outside x multiply zero, so a NaN or inf kernel weight there propagates as on the
// pure-PyTorch path.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <iterator>
#include <numeric>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

using i64 = int64_t;

// Largest element count an entry point accepts: byte offsets of 8-byte elements still fit int64.
constexpr i64 kMaxElements = INT64_MAX / 8;
constexpr int kChannelBlock = 4;   // channels sharing one pass over the kernels
constexpr i64 kGroupChannels = 16;  // channels per forward / grad_x task (they share kernel rows in cache)

// Vectors of the widest registers the target has (GCC/Clang vector extensions): 64 bytes with
// AVX-512, else 32 (AVX2 registers, or pairs of SSE ones). Wider than the registers would double
// the register count of every tile, and the accumulators of the tiles below would spill.
#if defined(__AVX512F__)
constexpr int kVectorBytes = 64, kVectorRegisters = 32;
#else
constexpr int kVectorBytes = 32, kVectorRegisters = 16;
#endif

// Whether a tile that keeps `vectors` vectors live, plus the one it streams through, fits in the
// registers.
constexpr bool fits_registers(int vectors) { return vectors + 1 <= kVectorRegisters; }

// Elements every scratch buffer has after its last row (more than a vector's lanes; see Lanes).
constexpr i64 kScratchSlack = kVectorBytes;

// Wider channel blocks, tiled one vector of columns wide only (R x CB accumulators or gradient
// vectors in registers; two vectors wide would spill them): they fit AVX-512's 32 registers, and
// each kernel vector (forward) or running sum (kernels' gradient) loaded serves twice the channels.
#if defined(__AVX512F__)
constexpr int kWideChannelBlock = 8;
#else
constexpr int kWideChannelBlock = kChannelBlock;
#endif

template <typename T>
struct Simd {
    typedef T vec __attribute__((vector_size(kVectorBytes)));
    static constexpr i64 lanes = kVectorBytes / sizeof(T);
};
template <typename T>
using Vec = typename Simd<T>::vec;

#if !defined(__AVX512F__) && defined(__AVX2__)
// AVX2's mask of the first n lanes of a vector of T: all bits set in those lanes.
template <typename T>
inline __m256i first_lanes_mask(i64 n) {
    if constexpr (sizeof(T) == 4) return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    else return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}
#endif

template <typename T>
inline Vec<T> loadu(const T* p) {
    Vec<T> v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

template <typename T>
inline void storeu(T* p, const Vec<T>& v) {
    std::memcpy(p, &v, sizeof v);
}

// The n < lanes values at p in the first lanes of a vector (the others zero); reads nothing past
// p + n. Masked moves where the target has them (a vector loaded from scalars just stored would
// wait for them: a store-forwarding stall on every load).
template <typename T>
inline Vec<T> load_first(const T* p, i64 n) {
#if defined(__AVX512F__)
    if constexpr (sizeof(T) == 4) return Vec<T>(_mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1), p));
    else return Vec<T>(_mm512_maskz_loadu_pd(static_cast<__mmask8>((1u << n) - 1), p));
#elif defined(__AVX2__)
    if constexpr (sizeof(T) == 4) return Vec<T>(_mm256_maskload_ps(p, first_lanes_mask<T>(n)));
    else return Vec<T>(_mm256_maskload_pd(p, first_lanes_mask<T>(n)));
#else
    T lanes[Simd<T>::lanes] = {};
    std::copy(p, p + n, lanes);
    return loadu(lanes);
#endif
}

// Store the first n < lanes lanes of v at p; writes nothing past p + n.
template <typename T>
inline void store_first(T* p, const Vec<T>& v, i64 n) {
#if defined(__AVX512F__)
    if constexpr (sizeof(T) == 4) _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1), __m512(v));
    else _mm512_mask_storeu_pd(p, static_cast<__mmask8>((1u << n) - 1), __m512d(v));
#elif defined(__AVX2__)
    if constexpr (sizeof(T) == 4) _mm256_maskstore_ps(p, first_lanes_mask<T>(n), __m256(v));
    else _mm256_maskstore_pd(p, first_lanes_mask<T>(n), __m256d(v));
#else
    T lanes[Simd<T>::lanes];
    storeu(lanes, v);
    std::copy(lanes, lanes + n, p);
#endif
}

// A tile's loads and stores of a tensor's rows: whole vectors, or (Partial) only the first n lanes
// of one vector, for the last columns of a row. Scratch rows are read whole in both cases: a partial
// tile's lanes are independent, so values read past the row's end only reach lanes it discards
// (every scratch buffer has kScratchSlack elements after its last row for them).
template <typename T, bool Partial>
struct Lanes {
    i64 n;

    Vec<T> load(const T* p) const {
        if constexpr (Partial) return load_first(p, n);
        return loadu(p);
    }
    void store(T* p, const Vec<T>& v) const {
        if constexpr (Partial) return store_first(p, v, n);
        storeu(p, v);
    }
};

struct Shape {
    i64 B, C, H, W, Ho, Wo, K, s;

    i64 r() const { return K / 2; }
    i64 kk() const { return K * K; }
    i64 plane() const { return Ho * Wo; }
    // Columns [0, vec_cols()) follow the shifted-row form; the rest (at most s-1) read column W-1.
    i64 vec_cols() const { return std::min(Wo, s * W); }
    // Length of one upsampled, zero-padded row.
    i64 row_len() const { return (W + 2 * r()) * s; }
    i64 rows_begin(i64 sy) const { return sy * s; }
    i64 rows_end(i64 sy) const { return sy == H - 1 ? Ho : std::min(Ho, sy * s + s); }
    // Source column of output column x.
    i64 source_col(i64 x) const { return std::min(x / s, W - 1); }
    // Most output rows that share one source row (the last one takes the floor-mode rows).
    i64 max_group_rows() const { return std::max(std::min(s, Ho), Ho - s * (H - 1)); }
};

// GOMP_parallel's signature: run fn(data) on a team of up to num_threads threads, the caller included.
using Runner = void (*)(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags);

// Run fn(task, buf, idx) for task in [0, ntasks) on up to nthreads threads (the caller is one of
// them), on runner's team when given, else on threads started here; each thread gets buf_len
// elements of T and idx_len indices of scratch, allocated up front.
template <typename T, typename Fn>
int parallel_tasks(i64 ntasks, int nthreads, Runner runner, i64 buf_len, i64 idx_len, const Fn& fn) {
    if (ntasks <= 0) return 0;
    const i64 workers = std::max<i64>(1, std::min<i64>(nthreads, ntasks));
    buf_len = std::max<i64>(buf_len, 1);
    idx_len = std::max<i64>(idx_len, 1);
    std::vector<T> buf;
    std::vector<i64> idx;
    try {
        buf.resize(static_cast<size_t>(workers * buf_len));
        idx.resize(static_cast<size_t>(workers * idx_len));
    } catch (const std::exception&) {  // bad_alloc, or length_error beyond the vector's max_size
        return 1;
    }
    std::atomic<i64> next{0};
    auto body = [&](i64 worker) {
        for (i64 t = next.fetch_add(1); t < ntasks; t = next.fetch_add(1))
            fn(t, buf.data() + worker * buf_len, idx.data() + worker * idx_len);
    };
    if (workers > 1 && runner != nullptr) {
        // Each team member takes the next scratch slot (a team has at most `workers` members; any
        // beyond would find no slot, and the shared task counter covers every task without them).
        using Body = decltype(body);
        struct Team {
            Body* work;
            i64 workers;
            std::atomic<i64> slot;
        } team{&body, workers, {0}};
        auto member = [](void* data) {
            auto* t = static_cast<Team*>(data);
            const i64 slot = t->slot.fetch_add(1);
            if (slot < t->workers) (*t->work)(slot);
        };
        runner(member, &team, static_cast<unsigned>(workers), 0);
        return 0;
    }
    std::vector<std::thread> pool;
    for (i64 w = 1; w < workers; ++w) {
        try {
            pool.emplace_back(body, w);
        } catch (const std::system_error&) {
            break;  // fewer threads: the shared task counter still covers every task
        }
    }
    body(0);
    for (auto& th : pool) th.join();
    return 0;
}

// Number of parts to split n rows into so that outer * parts tasks keep the threads busy.
i64 row_parts(i64 outer, i64 n, int nthreads) {
    if (nthreads <= 1) return 1;
    const i64 wanted = (4 * static_cast<i64>(nthreads) + outer - 1) / std::max<i64>(outer, 1);
    return std::max<i64>(1, std::min(n, wanted));
}

// Repeat each of the n values of row S times into dst (S fixed, so the loop vectorises).
template <typename T, int S>
void repeat_fixed(const T* row, i64 n, T* dst) {
    for (i64 w = 0; w < n; ++w)
        for (int t = 0; t < S; ++t) dst[w * S + t] = row[w];
}

// dst[w] = the sum of the S values src[w*S .. w*S + S) for w < n (S fixed, so the loop vectorises).
template <typename T, int S>
void sum_runs_fixed(const T* src, i64 n, T* dst) {
    for (i64 w = 0; w < n; ++w) {
        T acc = src[w * S];
        for (int t = 1; t < S; ++t) acc += src[w * S + t];
        dst[w] = acc;
    }
}

// The sum of each run of s values, the inverse pattern of repeat: dst[w] = sum_t src[w*s + t].
template <typename T>
void sum_runs(const T* src, i64 n, i64 s, T* dst) {
    switch (s) {
        case 1: std::copy(src, src + n, dst); return;
        case 2: sum_runs_fixed<T, 2>(src, n, dst); return;
        case 3: sum_runs_fixed<T, 3>(src, n, dst); return;
        case 4: sum_runs_fixed<T, 4>(src, n, dst); return;
        default:
            for (i64 w = 0; w < n; ++w) dst[w] = std::accumulate(src + w * s + 1, src + w * s + s, src[w * s]);
    }
}

template <typename T>
void repeat(const T* row, i64 n, i64 s, T* dst) {
    switch (s) {
        case 1: std::copy(row, row + n, dst); return;
        case 2: repeat_fixed<T, 2>(row, n, dst); return;
        case 3: repeat_fixed<T, 3>(row, n, dst); return;
        case 4: repeat_fixed<T, 4>(row, n, dst); return;
        default:
            for (i64 w = 0; w < n; ++w) std::fill(dst + w * s, dst + w * s + s, row[w]);
    }
}

// u[q] = row[q/s - r] for q in [0, row_len()), zero where q/s - r is outside [0, W) or row is null.
template <typename T>
void upsample_row(const T* row, const Shape& sh, T* u) {
    const i64 pad = sh.r() * sh.s, len = sh.row_len();
    if (row == nullptr) {
        std::fill(u, u + len, T(0));
        return;
    }
    std::fill(u, u + pad, T(0));
    repeat(row, sh.W, sh.s, u + pad);
    std::fill(u + pad + sh.s * sh.W, u + len, T(0));
}

// Ring of upsampled source rows for `channels` channels: row t lives in slot t mod K, laid out
// [slot][channel][row_len]. rows(sy) gives the K rows sy-r .. sy+r.
template <typename T>
struct RowRing {
    T* buf;
    i64 channels;
    const Shape& sh;

    i64 slot(i64 t) const { return ((t % sh.K) + sh.K) % sh.K; }
    T* row(i64 ch, i64 t) const { return buf + (slot(t) * channels + ch) * sh.row_len(); }
    // Upsample source row t of channel plane xc (zero row outside [0, H)) into its slot.
    void load(const T* xc, i64 ch, i64 t) const {
        upsample_row((t < 0 || t >= sh.H) ? nullptr : xc + t * sh.W, sh, row(ch, t));
    }
};

// The K upsampled rows around one source row for a block of channels: at(i, cc) = u_{sy+i-r}[cc].
template <typename T>
struct TapRows {
    const T* base;  // ring buffer at channel ch0
    i64 slot_stride, first_slot, K, len;

    const T* at(i64 i, i64 cc) const {
        i64 slot = first_slot + i;
        if (slot >= K) slot -= K;
        return base + slot * slot_stride + cc * len;
    }
};

template <typename T>
TapRows<T> tap_rows(const RowRing<T>& ring, i64 ch0, i64 sy) {
    const i64 len = ring.sh.row_len();
    return TapRows<T>{ring.buf + ch0 * len, ring.channels * len, ring.slot(sy - ring.sh.r()), ring.sh.K, len};
}

// The output values of CB channels at one pixel by the definition (used for floor-mode columns
// x >= s*W), one accumulator per channel. xc: plane (H, W) of the first channel; kp: kernels at
// (b, 0, y, x), tap stride = Ho*Wo.
template <typename T, int CB>
void direct_values(const T* xc, const T* kp, const Shape& sh, i64 sy, i64 sx, T (&acc)[CB]) {
    const i64 r = sh.r(), K = sh.K, plane = sh.plane(), hw = sh.H * sh.W;
    for (int cc = 0; cc < CB; ++cc) acc[cc] = T(0);
    for (i64 i = 0; i < K; ++i) {
        const i64 yy = sy + i - r;
        for (i64 j = 0; j < K; ++j) {
            const i64 xx = sx + j - r;
            const bool inside = yy >= 0 && yy < sh.H && xx >= 0 && xx < sh.W;
            const T kv = kp[(i * K + j) * plane];
            for (int cc = 0; cc < CB; ++cc) acc[cc] += (inside ? xc[cc * hw + yy * sh.W + xx] : T(0)) * kv;
        }
    }
}

// Channels [c0, c1) in blocks of kWideChannelBlock, then of kChannelBlock, then one at a time:
// block(c, std::integral_constant<int, CB>{}) for each block of CB channels from c.
template <typename BlockFn>
void channel_blocks(i64 c0, i64 c1, const BlockFn& block) {
    i64 c = c0;
    for (; c + kWideChannelBlock <= c1; c += kWideChannelBlock) block(c, std::integral_constant<int, kWideChannelBlock>{});
    for (; c + kChannelBlock <= c1; c += kChannelBlock) block(c, std::integral_constant<int, kChannelBlock>{});
    for (; c < c1; ++c) block(c, std::integral_constant<int, 1>{});
}

// Task t of B * groups * parts: (b, channel range, source row range).
struct TaskRange {
    i64 b, c0, c1, h0, h1;
};

TaskRange task_range(const Shape& sh, i64 task, i64 groups, i64 parts) {
    const i64 part = task % parts, group = (task / parts) % groups, b = task / (parts * groups);
    const i64 c0 = group * kGroupChannels;
    return TaskRange{b, c0, std::min(sh.C, c0 + kGroupChannels), part * sh.H / parts, (part + 1) * sh.H / parts};
}

// ---------------------------------------------------------------------------------------------
// Forward: tasks over (b, channel group, source row range); out[cc][y][x] = sum_ij k_ij[y][x] *
// u_{sy+i-r}[cc][x + j*s]. The output rows of one source row share their taps, so tiles cover R
// rows at once. kp: kernels at (b, 0, y, 0); op: out at (b, c, y, 0); tap and channel stride
// Ho*Wo, row stride W_out. With a blend (en and gate given), each value v is written as
// v + g * (e - v), torch.lerp(v, e, g): ep is en at (b, c, y, 0), gp the gate at (b, 0, y, 0).
// ---------------------------------------------------------------------------------------------

// The blend of the forward: en (B, C, Ho, Wo) and gate (B, 1, Ho, Wo), both null for none.
template <typename T>
struct Blend {
    const T* en;
    const T* gate;
};

// v blended with e = ep[e_at] by g = gp[g_at]; v itself without a blend (ep null).
template <typename T>
T blend_value(T v, const T* ep, const T* gp, i64 e_at, i64 g_at) {
    return ep == nullptr ? v : v + gp[g_at] * (ep[e_at] - v);
}

// One tile: R rows x CB channels x NV vectors of columns from x0 (Partial: one vector, its first
// io.n columns).
template <typename T, int R, int CB, int NV, bool Partial = false>
void forward_tile(const TapRows<T>& u, const T* kp, T* op, const T* ep, const T* gp, const Shape& sh, i64 x0,
                  const Lanes<T, Partial>& io) {
    constexpr i64 L = Simd<T>::lanes;
    const i64 K = sh.K, s = sh.s, plane = sh.plane(), wo = sh.Wo;
    Vec<T> acc[R][CB][NV];
    for (int rr = 0; rr < R; ++rr)
        for (int cc = 0; cc < CB; ++cc)
            for (int n = 0; n < NV; ++n) acc[rr][cc][n] = Vec<T>{};
    for (i64 i = 0; i < K; ++i) {
        for (i64 j = 0; j < K; ++j) {
            const T* kv = kp + (i * K + j) * plane + x0;
            Vec<T> kvec[R][NV];
            for (int rr = 0; rr < R; ++rr)
                for (int n = 0; n < NV; ++n) kvec[rr][n] = io.load(kv + rr * wo + n * L);
            for (int cc = 0; cc < CB; ++cc) {
                const T* uv = u.at(i, cc) + x0 + j * s;
                for (int n = 0; n < NV; ++n) {
                    const Vec<T> uvec = loadu(uv + n * L);
                    for (int rr = 0; rr < R; ++rr) acc[rr][cc][n] += kvec[rr][n] * uvec;
                }
            }
        }
    }
    for (int rr = 0; rr < R; ++rr)
        for (int cc = 0; cc < CB; ++cc)
            for (int n = 0; n < NV; ++n) {
                const i64 at = rr * wo + x0 + n * L;
                Vec<T> v = acc[rr][cc][n];
                if (ep != nullptr) v += io.load(gp + at) * (io.load(ep + cc * plane + at) - v);
                io.store(op + cc * plane + at, v);
            }
}

// Whole tiles of NV vectors over columns [x0, x1); returns the first column not done.
template <typename T, int R, int CB, int NV>
i64 forward_tiles(const TapRows<T>& u, const T* kp, T* op, const T* ep, const T* gp, const Shape& sh, i64 x0,
                  i64 x1) {
    for (; x0 + NV * Simd<T>::lanes <= x1; x0 += NV * Simd<T>::lanes)
        forward_tile<T, R, CB, NV>(u, kp, op, ep, gp, sh, x0, Lanes<T, false>{});
    return x0;
}

// The floor-mode columns x >= s*W of R rows (they read source column W-1), by the definition.
template <typename T, int R, int CB>
void forward_floor_columns(const T* x, const T* kp, T* op, const T* ep, const T* gp, const Shape& sh, i64 b, i64 sy,
                           i64 c) {
    const i64 plane = sh.plane(), wo = sh.Wo;
    for (int rr = 0; rr < R; ++rr)
        for (i64 xo = sh.vec_cols(); xo < wo; ++xo) {
            T values[CB];
            direct_values(x + (b * sh.C + c) * sh.H * sh.W, kp + rr * wo + xo, sh, sy, sh.W - 1, values);
            for (int cc = 0; cc < CB; ++cc) {
                const i64 at = cc * plane + rr * wo + xo;
                op[at] = blend_value(values[cc], ep, gp, at, rr * wo + xo);
            }
        }
}

template <typename T, int R, int CB>
void forward_rows(const T* x, const T* k, T* out, const Blend<T>& blend, const Shape& sh, i64 b, i64 sy, i64 c, i64 y,
                  const TapRows<T>& u) {
    const T* kp = k + (b * sh.kk() * sh.Ho + y) * sh.Wo;
    const i64 at = ((b * sh.C + c) * sh.Ho + y) * sh.Wo;
    T* op = out + at;
    const T* ep = blend.en == nullptr ? nullptr : blend.en + at;
    const T* gp = blend.en == nullptr ? nullptr : blend.gate + (b * sh.Ho + y) * sh.Wo;
    i64 x0 = 0;
    if constexpr (CB <= kChannelBlock) x0 = forward_tiles<T, R, CB, 2>(u, kp, op, ep, gp, sh, 0, sh.vec_cols());
    x0 = forward_tiles<T, R, CB, 1>(u, kp, op, ep, gp, sh, x0, sh.vec_cols());
    if (x0 < sh.vec_cols())
        forward_tile<T, R, CB, 1, true>(u, kp, op, ep, gp, sh, x0, Lanes<T, true>{sh.vec_cols() - x0});
    forward_floor_columns<T, R, CB>(x, kp, op, ep, gp, sh, b, sy, c);
}

template <typename T, int CB>
void forward_block(const T* x, const T* k, T* out, const Blend<T>& blend, const Shape& sh, i64 b, i64 sy, i64 c,
                   const TapRows<T>& u) {
    i64 y = sh.rows_begin(sy);
    for (; y + 2 <= sh.rows_end(sy); y += 2) forward_rows<T, 2, CB>(x, k, out, blend, sh, b, sy, c, y, u);
    if (y < sh.rows_end(sy)) forward_rows<T, 1, CB>(x, k, out, blend, sh, b, sy, c, y, u);
}

template <typename T>
int forward(const T* x, const T* k, T* out, const Blend<T>& blend, const Shape& sh, int nthreads, Runner runner) {
    const i64 groups = (sh.C + kGroupChannels - 1) / kGroupChannels;
    const i64 parts = row_parts(sh.B * groups, sh.H, nthreads);
    const i64 r = sh.r();
    return parallel_tasks<T>(
        sh.B * groups * parts, nthreads, runner, kGroupChannels * sh.K * sh.row_len() + kScratchSlack, 0, [&](i64 task, T* buf, i64*) {
            const TaskRange t = task_range(sh, task, groups, parts);
            const RowRing<T> ring{buf, kGroupChannels, sh};
            const auto plane = [&](i64 c) { return x + (t.b * sh.C + c) * sh.H * sh.W; };
            for (i64 c = t.c0; c < t.c1; ++c)
                for (i64 row = t.h0 - r; row < t.h0 + r; ++row) ring.load(plane(c), c - t.c0, row);
            for (i64 sy = t.h0; sy < t.h1; ++sy) {
                for (i64 c = t.c0; c < t.c1; ++c) ring.load(plane(c), c - t.c0, sy + r);
                channel_blocks(t.c0, t.c1, [&](i64 c, auto cb) {
                    forward_block<T, cb()>(x, k, out, blend, sh, t.b, sy, c, tap_rows(ring, c - t.c0, sy));
                });
            }
        });
}

// ---------------------------------------------------------------------------------------------
// Gradient w.r.t. the kernels: tasks over (b, source row range) with all channels (each owns its
// output rows of grad_k); gk_ij[y][x] = sum_c g[c][y][x] * u_{sy+i-r}[c][x + j*s]. The R output
// rows of one source row share their taps. For one vector tile of columns, a block of J taps of one
// tap row keeps J x R x NV sums in registers while c runs over every channel, and stores each sum
// once. The gradient rows of the R rows are first copied vector-major into scratch,
// gt[v][c][rr][lanes] for the v-th vector of columns (zero past the last column), so the channel
// loop reads them contiguously (in place, channels are a whole plane apart and share cache sets).
// ---------------------------------------------------------------------------------------------

// Taps per register block, and how many vectors of columns a tile of R rows takes.
constexpr int kTapBlock = 5;
template <int R>
constexpr int grad_kernel_vectors() { return fits_registers(kTapBlock * R * 2 + R * 2) ? 2 : 1; }

// Taps (i, j0 .. j0 + J - 1) at R rows x NV vectors of columns from vector v (Partial: one vector,
// its first io.n columns stored). gkp: grad_k at (b, 0, y, 0).
template <typename T, int R, int J, int NV, bool Partial = false>
void grad_kernel_taps(const TapRows<T>& u, const T* gt, T* gkp, const Shape& sh, i64 i, i64 j0, i64 v,
                      const Lanes<T, Partial>& io) {
    constexpr i64 L = Simd<T>::lanes;
    const i64 s = sh.s, x0 = v * L, vstride = sh.C * R * L;
    Vec<T> acc[J][R][NV];
    for (int j = 0; j < J; ++j)
        for (int rr = 0; rr < R; ++rr)
            for (int n = 0; n < NV; ++n) acc[j][rr][n] = Vec<T>{};
    const T* gv = gt + v * vstride;
    for (i64 c = 0; c < sh.C; ++c, gv += R * L) {
        Vec<T> g[R][NV];
        for (int rr = 0; rr < R; ++rr)
            for (int n = 0; n < NV; ++n) g[rr][n] = loadu(gv + n * vstride + rr * L);
        const T* uv = u.at(i, c) + x0 + j0 * s;
        for (int j = 0; j < J; ++j)
            for (int n = 0; n < NV; ++n) {
                const Vec<T> uvec = loadu(uv + j * s + n * L);
                for (int rr = 0; rr < R; ++rr) acc[j][rr][n] += g[rr][n] * uvec;
            }
    }
    for (int j = 0; j < J; ++j)
        for (int rr = 0; rr < R; ++rr)
            for (int n = 0; n < NV; ++n)
                io.store(gkp + (i * sh.K + j0 + j) * sh.plane() + rr * sh.Wo + x0 + n * L, acc[j][rr][n]);
}

// The taps of tap row i at R rows x NV vectors from vector v, in blocks of kTapBlock taps (a tile
// per width).
template <typename T, int R, int NV, bool Partial = false, int J = kTapBlock>
void grad_kernel_tile(const TapRows<T>& u, const T* gt, T* gkp, const Shape& sh, i64 i, i64 v,
                      const Lanes<T, Partial>& io, i64 j0 = 0) {
    i64 j = j0;
    for (; j + J <= sh.K; j += J) grad_kernel_taps<T, R, J, NV, Partial>(u, gt, gkp, sh, i, j, v, io);
    if constexpr (J > 1)  // fewer than J taps left
        if (j < sh.K) grad_kernel_tile<T, R, NV, Partial, J - 1>(u, gt, gkp, sh, i, v, io, j);
}

// The floor-mode columns x >= s*W of R rows (they read source column W-1), by the definition.
template <typename T, int R, int CB>
void grad_kernel_floor_columns(const T* x, const T* gp, T* gkp, const Shape& sh, i64 b, i64 sy, i64 c) {
    const i64 K = sh.K, plane = sh.plane(), wo = sh.Wo, r = sh.r();
    for (int rr = 0; rr < R; ++rr) {
        T* gkr = gkp + rr * wo;
        const T* gr = gp + rr * wo;
        for (i64 xo = sh.vec_cols(); xo < wo; ++xo) {
            T g[CB];  // read once for all taps
            for (int cc = 0; cc < CB; ++cc) g[cc] = gr[cc * plane + xo];
            const T* xc = x + (b * sh.C + c) * sh.H * sh.W;
            for (i64 i = 0; i < K; ++i) {
                const i64 yy = sy + i - r;
                for (i64 j = 0; j < K; ++j) {
                    const i64 xx = sh.W - 1 + j - r;
                    const bool inside = yy >= 0 && yy < sh.H && xx >= 0 && xx < sh.W;
                    T acc = 0;
                    for (int cc = 0; cc < CB; ++cc) acc += g[cc] * (inside ? xc[(cc * sh.H + yy) * sh.W + xx] : T(0));
                    gkr[(i * K + j) * plane + xo] += acc;
                }
            }
        }
    }
}

// Rows y .. y + R - 1 of source row sy: the gradient rows into gt, then every tile.
template <typename T, int R>
void grad_kernel_rows(const T* grad, const T* x, T* gk, T* gt, const Shape& sh, i64 b, i64 sy, i64 y,
                      const TapRows<T>& u) {
    constexpr i64 L = Simd<T>::lanes;
    constexpr int NV = grad_kernel_vectors<R>();
    const i64 cols = sh.vec_cols(), nvec = (cols + L - 1) / L;
    for (i64 c = 0; c < sh.C; ++c)
        for (int rr = 0; rr < R; ++rr) {
            const T* row = grad + ((b * sh.C + c) * sh.Ho + y + rr) * sh.Wo;
            for (i64 v = 0; v < nvec; ++v) {
                T* dst = gt + ((v * sh.C + c) * R + rr) * L;
                const i64 n = std::min(L, cols - v * L);
                std::copy(row + v * L, row + v * L + n, dst);
                std::fill(dst + n, dst + L, T(0));
            }
        }
    T* gkp = gk + (b * sh.kk() * sh.Ho + y) * sh.Wo;
    for (i64 i = 0; i < sh.K; ++i) {  // tap rows outside: one tap row of every channel stays in cache
        i64 v = 0;
        for (; (v + NV) * L <= cols; v += NV) grad_kernel_tile<T, R, NV>(u, gt, gkp, sh, i, v, Lanes<T, false>{});
        for (; (v + 1) * L <= cols; ++v) grad_kernel_tile<T, R, 1>(u, gt, gkp, sh, i, v, Lanes<T, false>{});
        if (v * L < cols) grad_kernel_tile<T, R, 1, true>(u, gt, gkp, sh, i, v, Lanes<T, true>{cols - v * L});
    }
    if (cols < sh.Wo)
        channel_blocks(0, sh.C, [&](i64 c, auto cb) {
            grad_kernel_floor_columns<T, R, cb()>(x, grad + ((b * sh.C + c) * sh.Ho + y) * sh.Wo, gkp, sh, b, sy, c);
        });
}

template <typename T>
int grad_kernels(const T* grad, const T* x, T* gk, const Shape& sh, int nthreads, Runner runner) {
    const i64 parts = row_parts(sh.B, sh.H, nthreads);
    const i64 r = sh.r(), ring_len = sh.C * sh.K * sh.row_len();
    const i64 scratch = ring_len + 2 * sh.C * (sh.Wo + kScratchSlack) + kScratchSlack;
    return parallel_tasks<T>(sh.B * parts, nthreads, runner, scratch, 0, [&](i64 task, T* buf, i64*) {
        const i64 part = task % parts, b = task / parts;
        const i64 h0 = part * sh.H / parts, h1 = (part + 1) * sh.H / parts;
        const RowRing<T> ring{buf, sh.C, sh};
        T* gt = buf + ring_len;
        const auto plane = [&](i64 c) { return x + (b * sh.C + c) * sh.H * sh.W; };
        for (i64 ij = 0; ij < sh.kk(); ++ij)
            std::fill(gk + ((b * sh.kk() + ij) * sh.Ho + sh.rows_begin(h0)) * sh.Wo,
                      gk + ((b * sh.kk() + ij) * sh.Ho + sh.rows_end(h1 - 1)) * sh.Wo, T(0));
        for (i64 c = 0; c < sh.C; ++c)
            for (i64 row = h0 - r; row < h0 + r; ++row) ring.load(plane(c), c, row);
        for (i64 sy = h0; sy < h1; ++sy) {
            for (i64 c = 0; c < sh.C; ++c) ring.load(plane(c), c, sy + r);
            const TapRows<T> u = tap_rows(ring, 0, sy);
            i64 y = sh.rows_begin(sy);
            for (; y + 2 <= sh.rows_end(sy); y += 2) grad_kernel_rows<T, 2>(grad, x, gk, gt, sh, b, sy, y, u);
            if (y < sh.rows_end(sy)) grad_kernel_rows<T, 1>(grad, x, gk, gt, sh, b, sy, y, u);
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Gradient w.r.t. x: tasks over (b, channel group, source row range), each owns its rows of
// grad_x. Output row y of source row sy = h + r - i reaches row h through tap row i ("pair" (i, y)).
// The gradient rows are kept zero-padded (columns -r*s .. s*W + r*s) in a ring indexed by y, and
// the kernel rows of the current pairs are copied the same way, so every tile reads full vectors.
// ---------------------------------------------------------------------------------------------

// Copy columns [0, vec_cols()) of a row into dst at offset r*s; zero the rest of dst[0, row_len()).
template <typename T>
void padded_copy(const T* src, const Shape& sh, T* dst) {
    const i64 pad = sh.r() * sh.s, len = sh.row_len(), vec = sh.vec_cols();
    std::fill(dst, dst + pad, T(0));
    std::copy(src, src + vec, dst + pad);
    std::fill(dst + pad + vec, dst + len, T(0));
}

// The pairs of source row h: fn(p, i, y) for p = 0, 1, ...; returns their number.
template <typename Fn>
i64 for_each_pair(const Shape& sh, i64 h, const Fn& fn) {
    i64 p = 0;
    for (i64 i = 0; i < sh.K; ++i) {
        const i64 sy = h + sh.r() - i;
        if (sy < 0 || sy >= sh.H) continue;
        for (i64 y = sh.rows_begin(sy); y < sh.rows_end(sy); ++y) fn(p++, i, y);
    }
    return p;
}

// Padded gradient rows of pair p, channel cc: base + pair_slot[p] * slot_stride + cc * len.
template <typename T>
struct PairRows {
    const T* base;
    const i64* pair_slot;
    i64 npairs, slot_stride, len;

    const T* at(i64 p, int cc) const { return base + pair_slot[p] * slot_stride + cc * len; }
};

// g_u[cc][q] = sum_{p, j} kbuf[p][j][at] * g[p][cc][at] with at = q + (2r - j)*s, the padded
// position of column x = q + (r - j)*s; tiles in [q0, q1), returns the first q not done.
// One tile: CB channels x NV vectors from q0 (Partial: one vector, of which only the first io.n
// columns are stored; kbuf and g are scratch rows, read whole).
template <typename T, int CB, int NV, bool Partial = false>
void grad_x_tile(const T* kbuf, const PairRows<T>& g, T* gu, const Shape& sh, i64 q0, const Lanes<T, Partial>& io) {
    constexpr i64 L = Simd<T>::lanes;
    const i64 K = sh.K, s = sh.s, len = sh.row_len(), r = sh.r(), stride = s * sh.W;
    Vec<T> acc[CB][NV];
    for (int cc = 0; cc < CB; ++cc)
        for (int n = 0; n < NV; ++n) acc[cc][n] = Vec<T>{};
    for (i64 p = 0; p < g.npairs; ++p) {
        for (i64 j = 0; j < K; ++j) {
            const i64 at = q0 + (2 * r - j) * s;
            const T* kv = kbuf + (p * K + j) * len + at;
            Vec<T> kvec[NV];
            for (int n = 0; n < NV; ++n) kvec[n] = loadu(kv + n * L);
            for (int cc = 0; cc < CB; ++cc) {
                const T* gv = g.at(p, cc) + at;
                for (int n = 0; n < NV; ++n) acc[cc][n] += kvec[n] * loadu(gv + n * L);
            }
        }
    }
    for (int cc = 0; cc < CB; ++cc)
        for (int n = 0; n < NV; ++n) io.store(gu + cc * stride + q0 + n * L, acc[cc][n]);
}

// Whole tiles of NV vectors over [q0, q1); returns the first q not done.
template <typename T, int CB, int NV>
i64 grad_x_tiles(const T* kbuf, const PairRows<T>& g, T* gu, const Shape& sh, i64 q0, i64 q1) {
    for (; q0 + NV * Simd<T>::lanes <= q1; q0 += NV * Simd<T>::lanes)
        grad_x_tile<T, CB, NV>(kbuf, g, gu, sh, q0, Lanes<T, false>{});
    return q0;
}

// Rows h of grad_x for CB channels from c. gu: CB x s*W scratch.
template <typename T, int CB>
void grad_x_block(const T* grad, const T* k, T* gx, const Shape& sh, i64 b, i64 h, i64 c, const T* kbuf,
                  const PairRows<T>& g, T* gu) {
    const i64 K = sh.K, vec = sh.vec_cols(), r = sh.r(), s = sh.s, plane = sh.plane();
    const i64 stride = s * sh.W;
    i64 q0 = grad_x_tiles<T, CB, 2>(kbuf, g, gu, sh, 0, stride);
    q0 = grad_x_tiles<T, CB, 1>(kbuf, g, gu, sh, q0, stride);
    if (q0 < stride) grad_x_tile<T, CB, 1, true>(kbuf, g, gu, sh, q0, Lanes<T, true>{stride - q0});
    // Floor-mode columns x >= s*W read source column W-1+j-r.
    for_each_pair(sh, h, [&](i64, i64 i, i64 y) {
        const T* kp = k + ((b * sh.kk() + i * K) * sh.Ho + y) * sh.Wo;
        for (i64 xo = vec; xo < sh.Wo; ++xo)
            for (i64 j = 0; j < K; ++j) {
                const i64 w = sh.W - 1 + j - r;
                if (w < 0 || w >= sh.W) continue;
                for (int cc = 0; cc < CB; ++cc)
                    gu[cc * stride + w * s] += grad[((b * sh.C + c + cc) * sh.Ho + y) * sh.Wo + xo] * kp[j * plane + xo];
            }
    });
    for (int cc = 0; cc < CB; ++cc) sum_runs(gu + cc * stride, sh.W, s, gx + ((b * sh.C + c + cc) * sh.H + h) * sh.W);
}

template <typename T>
int grad_x(const T* grad, const T* k, T* gx, const Shape& sh, int nthreads, Runner runner) {
    const i64 groups = (sh.C + kGroupChannels - 1) / kGroupChannels;
    const i64 parts = row_parts(sh.B * groups, sh.H, nthreads);
    const i64 len = sh.row_len(), r = sh.r(), ring_rows = sh.K * sh.max_group_rows();
    const i64 ring_len = ring_rows * kGroupChannels * len, kbuf_len = ring_rows * sh.K * len;
    const i64 scratch = ring_len + kbuf_len + kWideChannelBlock * sh.s * sh.W + kScratchSlack;
    return parallel_tasks<T>(sh.B * groups * parts, nthreads, runner, scratch, ring_rows, [&](i64 task, T* buf, i64* slots) {
        const TaskRange t = task_range(sh, task, groups, parts);
        T *ring = buf, *kbuf = buf + ring_len, *gu = kbuf + kbuf_len;
        // Padded gradient rows of every output row of source row sy, in slot y mod ring_rows.
        const auto load_rows = [&](i64 sy) {
            if (sy < 0 || sy >= sh.H) return;
            for (i64 y = sh.rows_begin(sy); y < sh.rows_end(sy); ++y)
                for (i64 c = t.c0; c < t.c1; ++c)
                    padded_copy(grad + ((t.b * sh.C + c) * sh.Ho + y) * sh.Wo, sh,
                                ring + ((y % ring_rows) * kGroupChannels + c - t.c0) * len);
        };
        for (i64 sy = t.h0 - r; sy < t.h0 + r; ++sy) load_rows(sy);
        for (i64 h = t.h0; h < t.h1; ++h) {
            load_rows(h + r);
            const i64 npairs = for_each_pair(sh, h, [&](i64 p, i64 i, i64 y) {
                slots[p] = y % ring_rows;
                for (i64 j = 0; j < sh.K; ++j)
                    padded_copy(k + ((t.b * sh.kk() + i * sh.K + j) * sh.Ho + y) * sh.Wo, sh, kbuf + (p * sh.K + j) * len);
            });
            const auto rows = [&](i64 c) { return PairRows<T>{ring + (c - t.c0) * len, slots, npairs, kGroupChannels * len, len}; };
            channel_blocks(t.c0, t.c1, [&](i64 c, auto cb) {
                grad_x_block<T, cb()>(grad, k, gx, sh, t.b, h, c, kbuf, rows(c), gu);
            });
        }
    });
}

template <typename T>
int backward(const T* grad, const T* x, const T* k, T* gx, T* gk, const Shape& sh, int nthreads, Runner runner) {
    const int status = grad_x(grad, k, gx, sh, nthreads, runner);
    return status != 0 ? status : grad_kernels(grad, x, gk, sh, nthreads, runner);
}

// a * b and a + b of non-negative counts, or -1 when an operand is -1 or the result would exceed
// kMaxElements.
i64 checked_mul(i64 a, i64 b) {
    i64 r;
    return (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r) || r > kMaxElements) ? -1 : r;
}

i64 checked_add(i64 a, i64 b) {
    return (a < 0 || b < 0 || a > kMaxElements || b > kMaxElements || a + b > kMaxElements) ? -1 : a + b;
}

// True when the kernels handle this shape (positive spatial extents, K odd, s >= 1) and every
// element count they derive from it is at most kMaxElements, so no index arithmetic overflows:
// the tensors, the scaled rows, the row split and the scratch of nthreads workers in each phase.
bool sizes_fit(const Shape& sh, int nthreads) {
    if (sh.B < 0 || sh.C < 0 || sh.H < 1 || sh.W < 1 || sh.Ho < 1 || sh.Wo < 1 || sh.K < 1 || sh.K % 2 == 0 ||
        sh.s < 1)
        return false;
    const i64 workers = std::max(nthreads, 1);
    const i64 kk = checked_mul(sh.K, sh.K);
    const i64 row_len = checked_mul(checked_add(sh.W, sh.K - 1), sh.s);
    const i64 ring_rows = checked_mul(sh.K, sh.Ho);  // at least K * max_group_rows()
    const i64 grad_x_scratch = checked_add(checked_mul(checked_mul(ring_rows, kGroupChannels + sh.K), row_len),
                                           checked_mul(checked_mul(kWideChannelBlock, sh.s), sh.W) + kScratchSlack);
    const i64 counts[] = {
        checked_mul(checked_mul(checked_mul(sh.B, sh.C), sh.H), sh.W),
        checked_mul(checked_mul(checked_mul(sh.B, kk), sh.Ho), sh.Wo),
        checked_mul(checked_mul(checked_mul(sh.B, sh.C), sh.Ho), sh.Wo),
        checked_mul(sh.s, checked_add(sh.H, 1)),
        checked_mul(checked_mul(4, workers), checked_add(sh.H, 1)),  // part * H in task_range
        checked_mul(sh.s, checked_add(sh.W, sh.K)),
        checked_mul(workers, checked_add(checked_mul(checked_mul(kGroupChannels, sh.K), row_len), kScratchSlack)),
        checked_mul(workers, checked_add(checked_add(checked_mul(checked_mul(sh.C, sh.K), row_len), kScratchSlack),
                                         checked_mul(checked_mul(2, sh.C), checked_add(sh.Wo, kScratchSlack)))),
        checked_mul(workers, grad_x_scratch),
        checked_mul(workers, ring_rows),
    };
    return std::all_of(std::begin(counts), std::end(counts), [](i64 n) { return n >= 0; });
}

// ---------------------------------------------------------------------------------------------
// Pointwise (1x1) convolution with few output channels (FADE's compressors, C_out = K*K or d) or
// few input channels (the input gradients of the compressors, C_in = d):
// out[b, o, p] = bias[o] + sum_c wt[c, o] * x[b, c, p] over the P = H*W pixels of x, wt being the
// weight transposed to (C, O). A general matrix product packs all of x first, which costs about as
// much as the product itself when O or C is small. Here a task is a run of consecutive pixels of
// one image. It copies them a panel at a time (every channel of kPointwisePanel tiles of NV vectors
// of pixels) into the worker's scratch, where they stay in cache: read in place, channels a whole
// plane apart would share cache sets. Then, block by block of OB outputs, it keeps OB x NV vectors
// in registers while c runs over the channels, for each tile of the panel in turn (so a block's
// weights and output rows stay in cache too). The weights are packed once per call by block, so a
// block reads them contiguously. x is NCHW or channels-last (x[b, p, c], transposed into the
// scratch); the output is NCHW, or channels-last (out[b, p, o]) when asked.
// ---------------------------------------------------------------------------------------------

#if defined(__AVX512F__)
constexpr int kPointwiseOutputs = 6, kPointwiseVectors = 4;  // 24 accumulators in 32 registers
#else
constexpr int kPointwiseOutputs = 6, kPointwiseVectors = 2;  // 12 accumulators + 2 pixel vectors + 1 weight in 16
#endif
// Tiles per task, and per panel copied into scratch at once.
constexpr i64 kPointwiseRun = 16, kPointwisePanel = 4;

struct PointwiseShape {
    i64 B, C, O, P;
    bool x_channels_last, channels_last;

    i64 at(i64 b, i64 o, i64 p) const { return channels_last ? (b * P + p) * O + o : (b * O + o) * P + p; }
};

// The outputs in as few blocks of at most kPointwiseOutputs as there can be, of near-equal widths
// (25 = 5 x 5, not 4 x 6 + 1: a block costs a pass over the tile's channels whatever its width):
// the first `wider` blocks have base + 1 outputs, the others base.
struct OutputBlocks {
    i64 count, base, wider;

    explicit OutputBlocks(i64 O)
        : count((O + kPointwiseOutputs - 1) / kPointwiseOutputs), base(O / count), wider(O % count) {}
    i64 start(i64 k) const { return k * base + std::min(k, wider); }
    i64 width(i64 k) const { return base + (k < wider ? 1 : 0); }
    i64 of(i64 o) const {  // the block holding output o
        const i64 split = wider * (base + 1);
        return o < split ? o / (base + 1) : wider + (o - split) / base;
    }
};

// The pixels of one task: xp points at channel 0 of its first pixel, channels `stride` apart.
template <typename T>
struct PixelTile {
    const T* xp;
    i64 stride, b, p0;
};

// wt (C, O) by output block: block k holds packed[start * C + c * width + (o - start)].
template <typename T>
void pack_weights(const T* wt, T* packed, i64 C, i64 O) {
    const OutputBlocks blocks(O);
    for (i64 k = 0; k < blocks.count; ++k) {
        const i64 o0 = blocks.start(k), width = blocks.width(k);
        for (i64 c = 0; c < C; ++c)
            for (i64 o = 0; o < width; ++o) packed[o0 * C + c * width + o] = wt[c * O + o0 + o];
    }
}

// Outputs [o0, o0 + OB) at the NV * lanes pixels from `at` pixels into the tile.
template <typename T, int OB, int NV>
void pointwise_tile(const PixelTile<T>& t, const T* wt, const T* bias, T* out, const PointwiseShape& sh, i64 o0,
                    i64 at) {
    constexpr i64 L = Simd<T>::lanes;
    Vec<T> acc[OB][NV];
    for (int o = 0; o < OB; ++o)
        for (int n = 0; n < NV; ++n) acc[o][n] = Vec<T>{} + (bias != nullptr ? bias[o0 + o] : T(0));
    const T* xp = t.xp + at;
    const T* w = wt + o0 * sh.C;  // this block's packed weights, OB per channel
    for (i64 c = 0; c < sh.C; ++c, xp += t.stride, w += OB) {
        Vec<T> xv[NV];
        for (int n = 0; n < NV; ++n) xv[n] = loadu(xp + n * L);
        for (int o = 0; o < OB; ++o)
            for (int n = 0; n < NV; ++n) acc[o][n] += w[o] * xv[n];
    }
    const i64 p0 = t.p0 + at;
    if (!sh.channels_last) {
        for (int o = 0; o < OB; ++o)
            for (int n = 0; n < NV; ++n) storeu(out + sh.at(t.b, o0 + o, p0 + n * L), acc[o][n]);
        return;
    }
    T tile[OB][NV * L];
    for (int o = 0; o < OB; ++o)
        for (int n = 0; n < NV; ++n) storeu(tile[o] + n * L, acc[o][n]);
    for (i64 p = 0; p < NV * L; ++p)
        for (int o = 0; o < OB; ++o) out[sh.at(t.b, o0 + o, p0 + p)] = tile[o][p];
}

// Outputs [o0, o0 + width) at the NV * lanes pixels from `at`, width <= OB (a tile per width).
template <typename T, int NV, int OB = kPointwiseOutputs>
void pointwise_block(const PixelTile<T>& t, const T* wt, const T* bias, T* out, const PointwiseShape& sh, i64 o0,
                     i64 width, i64 at) {
    if constexpr (OB > 1)
        if (width < OB) return pointwise_block<T, NV, OB - 1>(t, wt, bias, out, sh, o0, width, at);
    pointwise_tile<T, OB, NV>(t, wt, bias, out, sh, o0, at);
}

// Every output at the NV * lanes pixels from `at`, block by block.
template <typename T, int NV>
void pointwise_outputs(const PixelTile<T>& t, const T* wt, const T* bias, T* out, const PointwiseShape& sh, i64 at) {
    const OutputBlocks blocks(sh.O);
    for (i64 k = 0; k < blocks.count; ++k)
        pointwise_block<T, NV>(t, wt, bias, out, sh, blocks.start(k), blocks.width(k), at);
}

// One output value, c in the same order as the tiles.
template <typename T>
T pointwise_value(const PixelTile<T>& t, const T* wt, const T* bias, const PointwiseShape& sh, i64 o, i64 at) {
    const OutputBlocks blocks(sh.O);
    const i64 k = blocks.of(o), o0 = blocks.start(k), width = blocks.width(k);
    const T* w = wt + o0 * sh.C + (o - o0);
    T acc = bias != nullptr ? bias[o] : T(0);
    for (i64 c = 0; c < sh.C; ++c) acc += w[c * width] * t.xp[c * t.stride + at];
    return acc;
}

// Every output at the first n pixels of a partial tile (n < NV * lanes): one vector of pixels at a
// time, then one pixel at a time.
template <typename T>
void pointwise_pixels(const PixelTile<T>& t, i64 n, const T* wt, const T* bias, T* out, const PointwiseShape& sh) {
    constexpr i64 L = Simd<T>::lanes;
    i64 at = 0;
    for (; at + L <= n; at += L) pointwise_outputs<T, 1>(t, wt, bias, out, sh, at);
    for (; at < n; ++at)
        for (i64 o = 0; o < sh.O; ++o) out[sh.at(t.b, o, t.p0 + at)] = pointwise_value(t, wt, bias, sh, o, at);
}

template <typename T>
int pointwise(const T* x, const T* wt, const T* bias, T* out, const PointwiseShape& sh, int nthreads, Runner runner) {
    constexpr i64 tile = kPointwiseVectors * Simd<T>::lanes;
    const i64 tiles = (sh.P + tile - 1) / tile;
    if (sh.B == 0) return 0;
    std::vector<T> packed;
    try {
        packed.resize(static_cast<size_t>(sh.C * sh.O));
    } catch (const std::exception&) {
        return 1;
    }
    pack_weights(wt, packed.data(), sh.C, sh.O);
    wt = packed.data();
    const i64 runs = (tiles + kPointwiseRun - 1) / kPointwiseRun;
    constexpr i64 panel = kPointwisePanel * tile;
    const OutputBlocks blocks(sh.O);
    return parallel_tasks<T>(sh.B * runs, nthreads, runner, sh.C * panel, 0, [&](i64 task, T* buf, i64*) {
        const i64 b = task / runs, first = task % runs * kPointwiseRun * tile;
        const i64 last = std::min(sh.P, first + kPointwiseRun * tile);
        for (i64 q0 = first; q0 < last; q0 += panel) {
            const i64 m = std::min(last - q0, panel);
            if (sh.x_channels_last) {  // x[b, q0 + i, c] -> buf[c * panel + i]
                const T* src = x + (b * sh.P + q0) * sh.C;
                for (i64 i = 0; i < m; ++i)
                    for (i64 c = 0; c < sh.C; ++c) buf[c * panel + i] = src[i * sh.C + c];
            } else {  // x[b, c, q0 + i] -> buf[c * panel + i]
                const T* src = x + b * sh.C * sh.P + q0;
                for (i64 c = 0; c < sh.C; ++c) std::memcpy(buf + c * panel, src + c * sh.P, m * sizeof(T));
            }
            const i64 whole = m / tile * tile;
            for (i64 k = 0; k < blocks.count; ++k)
                for (i64 i = 0; i < whole; i += tile)
                    pointwise_block<T, kPointwiseVectors>(PixelTile<T>{buf + i, panel, b, q0 + i}, wt, bias, out, sh,
                                                          blocks.start(k), blocks.width(k), 0);
            if (whole < m) pointwise_pixels(PixelTile<T>{buf + whole, panel, b, q0 + whole}, m - whole, wt, bias, out, sh);
        }
    });
}

// True when the shape is valid (B >= 0, C, O, P >= 1) and x, out, wt and the scratch hold at most kMaxElements.
bool pointwise_fits(const PointwiseShape& sh, int nthreads) {
    if (sh.B < 0 || sh.C < 1 || sh.O < 1 || sh.P < 1) return false;
    const i64 counts[] = {checked_mul(checked_mul(sh.B, sh.C), sh.P), checked_mul(checked_mul(sh.B, sh.O), sh.P),
                          checked_mul(sh.C, sh.O),
                          checked_mul(std::max(nthreads, 1), checked_mul(sh.C, kPointwisePanel * kPointwiseVectors * Simd<float>::lanes))};
    return std::all_of(std::begin(counts), std::end(counts), [](i64 n) { return n >= 0; });
}

// ---------------------------------------------------------------------------------------------
// Gradients of the blend out = up + w * (end - up) that involve `end` (B, C, P), in one pass over
// the output gradient: grad_end = grad * w, and dot[b, p] = sum_c grad * end, the part of w's
// gradient that the reassembly does not give. Tasks are (b, tile of pixels); c runs in order.
// ---------------------------------------------------------------------------------------------

constexpr i64 kBlendTile = 1024;  // pixels per task: a row of each operand per channel, from L1

template <typename T>
int blend_grads(const T* grad, const T* end, const T* w, T* grad_end, T* dot, i64 B, i64 C, i64 P, int nthreads,
                Runner runner) {
    constexpr i64 L = Simd<T>::lanes;
    constexpr int CB = 4;  // channels per sweep of the tile: four rows of each operand in flight
    const i64 tiles = (P + kBlendTile - 1) / kBlendTile;
    return parallel_tasks<T>(B * tiles, nthreads, runner, 0, 0, [&](i64 task, T*, i64*) {
        const i64 b = task / tiles, p0 = task % tiles * kBlendTile, n = std::min(P - p0, kBlendTile);
        const i64 vec_end = n / L * L;
        const T* wp = w + b * P + p0;
        T* dp = dot + b * P + p0;
        std::fill(dp, dp + n, T(0));
        for (i64 c0 = 0; c0 < C; c0 += CB) {
            const int cb = static_cast<int>(std::min<i64>(CB, C - c0));
            const i64 at = (b * C + c0) * P + p0;
            const T *gp = grad + at, *ep = end + at;
            T* op = grad_end + at;
            if (cb == CB) {
                for (i64 i = 0; i < vec_end; i += L) {
                    const Vec<T> wv = loadu(wp + i);
                    Vec<T> acc = loadu(dp + i);
                    for (int j = 0; j < CB; ++j) {
                        const Vec<T> g = loadu(gp + j * P + i);
                        storeu(op + j * P + i, g * wv);
                        acc += g * loadu(ep + j * P + i);
                    }
                    storeu(dp + i, acc);
                }
            }
            for (i64 i = cb == CB ? vec_end : 0; i < n; ++i)
                for (int j = 0; j < cb; ++j) {
                    op[j * P + i] = gp[j * P + i] * wp[i];
                    dp[i] += gp[j * P + i] * ep[j * P + i];
                }
        }
    });
}

// True when the shape is valid (B >= 0, C, P >= 1) and the operands hold at most kMaxElements.
bool blend_fits(i64 B, i64 C, i64 P) {
    return B >= 0 && C >= 1 && P >= 1 && checked_mul(checked_mul(B, C), P) >= 0;
}

// ---------------------------------------------------------------------------------------------
// The semi-shift generators' kernels: out[b, t, y, x] = softmax over t of high[b, t, y, x] +
// low[b, t, sy, sx] (sy = min(y/s, H-1), sx likewise: the shared nearest mapping), and its
// gradient. high and low are channels-last (high[b, y, x, t], what the content encoder's conv gives
// from a channels-last input), out and its gradient contiguous (what the reassembly reads and
// writes). Tasks are (b, source row sy) and own its output rows, and row sy of low's gradient.
// Each output row goes through a scratch block of n rows (one per t, padded to whole vectors):
// transposed in or out there, everything else runs along the row in vectors. The shape is the
// reassembly's (Shape, and so its mapping) with C = n channels and K = 1.
// ---------------------------------------------------------------------------------------------

// n rounded up to whole vectors of T.
template <typename T>
i64 whole_vectors(i64 n) {
    return (n + Simd<T>::lanes - 1) / Simd<T>::lanes * Simd<T>::lanes;
}

// e^x for x <= 0 (softmax's shifted logits), NaN for NaN. float: Cephes' expf (about 1 ulp; 0 below
// the smallest normal's logarithm); double: std::exp per lane.
template <typename T>
Vec<T> exp_nonpositive(Vec<T> x) {
    if constexpr (sizeof(T) == 4) {
        using Bits = int32_t __attribute__((vector_size(kVectorBytes)));
        const Vec<T> lowest = Vec<T>{} - 87.33654475f;  // log(FLT_MIN)
        const Bits under = x < lowest, nan = x != x;
        x = under ? lowest : x;
        Vec<T> k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(x / log 2)
        k = nan ? Vec<T>{} : k;
        const Vec<T> r = (x - k * 0.693359375f) - k * -2.12194440e-4f;
        Vec<T> p = Vec<T>{} + 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        const Vec<T> e = p * (r * r) + r + 1.0f;
        const Bits pow2_bits = (__builtin_convertvector(k, Bits) + 127) << 23;  // 2^k
        Vec<T> pow2;
        std::memcpy(&pow2, &pow2_bits, sizeof pow2);
        return under ? Vec<T>{} : e * pow2;
    } else {
        for (i64 l = 0; l < Simd<T>::lanes; ++l) x[l] = std::exp(x[l]);
        return x;
    }
}

// The softmax over the n scratch rows of logits (their exponentials left there) at one vector of
// columns, into the n output rows.
template <typename T, bool Partial>
void softmax_tile(T* logits, i64 stride, T* out, i64 plane, i64 n, const Lanes<T, Partial>& io) {
    Vec<T> m = loadu(logits);
    for (i64 t = 1; t < n; ++t) {
        const Vec<T> v = loadu(logits + t * stride);
        m = (v > m) | (v != v) ? v : m;  // a NaN logit makes the maximum NaN
    }
    Vec<T> sum{};
    for (i64 t = 0; t < n; ++t) {
        const Vec<T> e = exp_nonpositive<T>(loadu(logits + t * stride) - m);
        storeu(logits + t * stride, e);
        sum += e;
    }
    const Vec<T> inv = T(1) / sum;
    for (i64 t = 0; t < n; ++t) io.store(out + t * plane, loadu(logits + t * stride) * inv);
}

template <typename T>
int semi_shift_softmax(const T* high, const T* low, T* out, const Shape& sh, int nthreads, Runner runner) {
    constexpr i64 L = Simd<T>::lanes;
    const i64 stride = whole_vectors<T>(sh.Wo), n = sh.C, plane = sh.plane();
    return parallel_tasks<T>(sh.B * sh.H, nthreads, runner, n * stride, 0, [&](i64 task, T* buf, i64*) {
        const i64 b = task / sh.H, sy = task % sh.H;
        for (i64 y = sh.rows_begin(sy); y < sh.rows_end(sy); ++y) {
            for (i64 x = 0; x < sh.Wo; ++x) {  // logits, transposed to buf[t][x]
                const T* hp = high + ((b * sh.Ho + y) * sh.Wo + x) * n;
                const T* lp = low + ((b * sh.H + sy) * sh.W + sh.source_col(x)) * n;
                for (i64 t = 0; t < n; ++t) buf[t * stride + x] = hp[t] + lp[t];
            }
            T* op = out + b * n * plane + y * sh.Wo;
            i64 x0 = 0;
            for (; x0 + L <= sh.Wo; x0 += L) softmax_tile(buf + x0, stride, op + x0, plane, n, Lanes<T, false>{});
            if (x0 < sh.Wo) softmax_tile(buf + x0, stride, op + x0, plane, n, Lanes<T, true>{sh.Wo - x0});
        }
    });
}

// grad_logits[t] = k[t] * (g[t] - sum_t' k[t'] * g[t']) at one vector of columns, into buf[t][.].
template <typename T, bool Partial>
void softmax_grad_tile(const T* kp, const T* gp, i64 plane, i64 n, T* buf, i64 stride, const Lanes<T, Partial>& io) {
    Vec<T> dot{};
    for (i64 t = 0; t < n; ++t) dot += io.load(kp + t * plane) * io.load(gp + t * plane);
    for (i64 t = 0; t < n; ++t) {
        const Vec<T> k = io.load(kp + t * plane);
        storeu(buf + t * stride, k * (io.load(gp + t * plane) - dot));
    }
}

template <typename T>
int semi_shift_softmax_backward(const T* grad, const T* k, T* grad_high, T* grad_low, const Shape& sh, int nthreads,
                                Runner runner) {
    constexpr i64 L = Simd<T>::lanes;
    const i64 stride = whole_vectors<T>(sh.Wo), n = sh.C, plane = sh.plane();
    return parallel_tasks<T>(sh.B * sh.H, nthreads, runner, n * stride, 0, [&](i64 task, T* buf, i64*) {
        const i64 b = task / sh.H, sy = task % sh.H;
        T* lp = grad_low + (b * sh.H + sy) * sh.W * n;
        std::fill(lp, lp + sh.W * n, T(0));
        for (i64 y = sh.rows_begin(sy); y < sh.rows_end(sy); ++y) {
            const i64 at = b * n * plane + y * sh.Wo;
            i64 x0 = 0;
            for (; x0 + L <= sh.Wo; x0 += L)
                softmax_grad_tile(k + at + x0, grad + at + x0, plane, n, buf + x0, stride, Lanes<T, false>{});
            if (x0 < sh.Wo)
                softmax_grad_tile(k + at + x0, grad + at + x0, plane, n, buf + x0, stride, Lanes<T, true>{sh.Wo - x0});
            for (i64 x = 0; x < sh.Wo; ++x) {  // transposed out: high's gradient, summed into low's
                T* hp = grad_high + ((b * sh.Ho + y) * sh.Wo + x) * n;
                T* gl = lp + sh.source_col(x) * n;
                for (i64 t = 0; t < n; ++t) {
                    hp[t] = buf[t * stride + x];
                    gl[t] += buf[t * stride + x];
                }
            }
        }
    });
}

// True when the shape is valid (B >= 0, C = n, H, W >= 1, output within s - 1 of s times the input)
// and the tensors and the scratch of nthreads workers hold at most kMaxElements.
bool softmax_fits(const Shape& sh, int nthreads) {
    if (sh.B < 0 || sh.C < 1 || sh.H < 1 || sh.W < 1 || sh.s < 1 || sh.Ho < 1 || sh.Wo < 1) return false;
    const i64 high_rows = checked_mul(sh.s, sh.H), high_cols = checked_mul(sh.s, sh.W);
    if (high_rows < 0 || high_cols < 0 || std::abs(sh.Ho - high_rows) >= sh.s || std::abs(sh.Wo - high_cols) >= sh.s)
        return false;
    const i64 counts[] = {checked_mul(checked_mul(checked_mul(sh.B, sh.C), sh.Ho), sh.Wo),
                          checked_mul(checked_mul(checked_mul(sh.B, sh.C), sh.H), sh.W),
                          checked_mul(std::max(nthreads, 1), checked_mul(sh.C, checked_add(sh.Wo, kScratchSlack)))};
    return std::all_of(std::begin(counts), std::end(counts), [](i64 c) { return c >= 0; });
}

}  // namespace

#define FADE_SHAPE_ARGS i64 B, i64 C, i64 H, i64 W, i64 Ho, i64 Wo, i64 K, i64 s
#define FADE_SHAPE Shape{B, C, H, W, Ho, Wo, K, s}

extern "C" {

// en and gate: the blend of the forward (both null for none).
int fade_carafe_forward_f32(const float* x, const float* k, float* out, const float* en, const float* gate,
                            FADE_SHAPE_ARGS, int nthreads, void* runner) {
    const Blend<float> blend{en, gate};
    return sizes_fit(FADE_SHAPE, nthreads) ? forward(x, k, out, blend, FADE_SHAPE, nthreads, reinterpret_cast<Runner>(runner))
                                           : 2;
}

int fade_carafe_forward_f64(const double* x, const double* k, double* out, const double* en, const double* gate,
                            FADE_SHAPE_ARGS, int nthreads, void* runner) {
    const Blend<double> blend{en, gate};
    return sizes_fit(FADE_SHAPE, nthreads) ? forward(x, k, out, blend, FADE_SHAPE, nthreads, reinterpret_cast<Runner>(runner))
                                           : 2;
}

int fade_carafe_backward_f32(const float* grad, const float* x, const float* k, float* gx, float* gk,
                             FADE_SHAPE_ARGS, int nthreads, void* runner) {
    return sizes_fit(FADE_SHAPE, nthreads) ? backward(grad, x, k, gx, gk, FADE_SHAPE, nthreads, reinterpret_cast<Runner>(runner)) : 2;
}

int fade_carafe_backward_f64(const double* grad, const double* x, const double* k, double* gx, double* gk,
                             FADE_SHAPE_ARGS, int nthreads, void* runner) {
    return sizes_fit(FADE_SHAPE, nthreads) ? backward(grad, x, k, gx, gk, FADE_SHAPE, nthreads, reinterpret_cast<Runner>(runner)) : 2;
}

#define FADE_POINTWISE_ARGS \
    i64 B, i64 C, i64 O, i64 P, int x_channels_last, int channels_last, int nthreads, void* runner
#define FADE_POINTWISE(x, wt, bias, out)                                                             \
    const PointwiseShape sh{B, C, O, P, x_channels_last != 0, channels_last != 0};                   \
    return pointwise_fits(sh, nthreads) ? pointwise(x, wt, bias, out, sh, nthreads, reinterpret_cast<Runner>(runner)) : 2

int fade_pointwise_f32(const float* x, const float* wt, const float* bias, float* out, FADE_POINTWISE_ARGS) {
    FADE_POINTWISE(x, wt, bias, out);
}

int fade_pointwise_f64(const double* x, const double* wt, const double* bias, double* out, FADE_POINTWISE_ARGS) {
    FADE_POINTWISE(x, wt, bias, out);
}

#define FADE_BLEND_ARGS i64 B, i64 C, i64 P, int nthreads, void* runner
#define FADE_BLEND_GRADS                                                                             \
    return blend_fits(B, C, P) ? blend_grads(grad, end, w, grad_end, dot, B, C, P, nthreads,       \
                                             reinterpret_cast<Runner>(runner))                      \
                               : 2

int fade_blend_grads_f32(const float* grad, const float* end, const float* w, float* grad_end, float* dot,
                         FADE_BLEND_ARGS) {
    FADE_BLEND_GRADS;
}

int fade_blend_grads_f64(const double* grad, const double* end, const double* w, double* grad_end, double* dot,
                         FADE_BLEND_ARGS) {
    FADE_BLEND_GRADS;
}

#define FADE_SOFTMAX_ARGS i64 B, i64 n, i64 H, i64 W, i64 Ho, i64 Wo, i64 s, int nthreads, void* runner
#define FADE_SOFTMAX(call, ...)                                                                    \
    const Shape sh{B, n, H, W, Ho, Wo, 1, s};                                                      \
    return softmax_fits(sh, nthreads) ? call(__VA_ARGS__, sh, nthreads, reinterpret_cast<Runner>(runner)) : 2

int fade_semi_shift_softmax_f32(const float* high, const float* low, float* out, FADE_SOFTMAX_ARGS) {
    FADE_SOFTMAX(semi_shift_softmax, high, low, out);
}

int fade_semi_shift_softmax_f64(const double* high, const double* low, double* out, FADE_SOFTMAX_ARGS) {
    FADE_SOFTMAX(semi_shift_softmax, high, low, out);
}

int fade_semi_shift_softmax_backward_f32(const float* grad, const float* k, float* grad_high, float* grad_low,
                                         FADE_SOFTMAX_ARGS) {
    FADE_SOFTMAX(semi_shift_softmax_backward, grad, k, grad_high, grad_low);
}

int fade_semi_shift_softmax_backward_f64(const double* grad, const double* k, double* grad_high, double* grad_low,
                                         FADE_SOFTMAX_ARGS) {
    FADE_SOFTMAX(semi_shift_softmax_backward, grad, k, grad_high, grad_low);
}

}  // extern "C"

// nvcuda::wmma for 16x16x16 tiles as the emulator runs it. A real fragment is spread over the
// warp's lanes in an unspecified layout; here every lane holds the whole tile, so element-wise
// work on `x[]` (which CUDA allows only where it does not depend on the layout) gives the same
// tile. Each *_sync operation is a warp-wide meeting point, as CUDA requires: every lane arrives
// before any lane touches memory, and leaves only after all have, so no lane runs ahead into
// memory that another lane's load or store has yet to reach. Work that would be the same in every
// lane (the load, the product, the store) is done once, by lane 0, and copied to the others.
// Alignment rules (256-bit pointers, ldm a multiple of 16 bytes) are checked, because the
// hardware faults or misreads without them.
#pragma once

#include "yoco_emu/device.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
    static_assert(M == 16 && N == 16 && K == 16, "the emulator supports 16x16x16 tiles");
    static constexpr int num_elements = 256;
    T x[256];  // the whole tile, row-major (row = M or K index as the Use implies)
};

namespace detail {
inline void check_pointer(const void* p, unsigned ldm, size_t element_bytes) {
    if (reinterpret_cast<uintptr_t>(p) % 32 != 0) yoco_emu::trap("wmma pointer not 256-bit aligned");
    if ((ldm * element_bytes) % 16 != 0) yoco_emu::trap("wmma ldm not a multiple of 16 bytes");
}
// Element (r, c) of a tile stored at p with leading dimension ldm, row- or column-major.
template <typename T>
inline T& at(T* p, unsigned ldm, bool row_major, int r, int c) {
    return row_major ? p[static_cast<size_t>(r) * ldm + c] : p[static_cast<size_t>(c) * ldm + r];
}
}  // namespace detail

namespace detail {
// What each lane passes to a load or store: CUDA requires the same pointer and ldm in every lane.
struct Args {
    const void* p;
    unsigned ldm;
    void* fragment;  // the lane's own fragment (loads)
};

// The warp meets, lane 0 checks the arguments and runs `body` (its load or store, and for a
// load the copy of its fragment into every lane's), then the warp meets again: the other lanes
// neither read their fragment nor touch the memory until lane 0 is done.
template <typename Body>
inline void leader_does(const Args& mine, yoco_emu::WarpOp op, size_t element_bytes, Body body) {
    const Args* all = yoco_emu::exchange(mine, op, 0xffffffffu);
    if (yoco_emu::current().lane == 0) {
        for (int lane = 0; lane < 32; ++lane) {
            const Args& a = yoco_emu::slot(all, lane);
            if (a.p != mine.p || a.ldm != mine.ldm) yoco_emu::trap("wmma load/store with different pointers or ldm across the warp");
        }
        check_pointer(mine.p, mine.ldm, element_bytes);
        body(all);
    }
    yoco_emu::release_exchange(op, 0xffffffffu);
}

template <typename Fragment>
inline void copy_to_every_lane(const Fragment& f, const Args* all) {
    for (int lane = 1; lane < 32; ++lane) memcpy(yoco_emu::slot(all, lane).fragment, &f, sizeof f);
}
}  // namespace detail

template <typename Use, typename T, typename Layout>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout>& f, const T* p, unsigned ldm) {
    detail::leader_does({p, ldm, &f}, yoco_emu::WarpOp::WmmaLoad, sizeof(T), [&](const detail::Args* all) {
        const bool row = std::is_same<Layout, row_major>::value;
        for (int r = 0; r < 16; ++r)
            for (int c = 0; c < 16; ++c) f.x[r * 16 + c] = detail::at(const_cast<T*>(p), ldm, row, r, c);
        detail::copy_to_every_lane(f, all);
    });
}

inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& f, const float* p, unsigned ldm, layout_t layout) {
    detail::leader_does({p, ldm, &f}, yoco_emu::WarpOp::WmmaLoad, sizeof(float), [&](const detail::Args* all) {
        for (int r = 0; r < 16; ++r)
            for (int c = 0; c < 16; ++c) f.x[r * 16 + c] = detail::at(const_cast<float*>(p), ldm, layout == mem_row_major, r, c);
        detail::copy_to_every_lane(f, all);
    });
}

inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ldm, layout_t layout) {
    detail::leader_does({p, ldm, nullptr}, yoco_emu::WarpOp::WmmaStore, sizeof(float), [&](const detail::Args*) {
        for (int r = 0; r < 16; ++r)
            for (int c = 0; c < 16; ++c) detail::at(p, ldm, layout == mem_row_major, r, c) = f.x[r * 16 + c];
    });
}

template <typename T>
inline void fill_fragment(fragment<accumulator, 16, 16, 16, T>& f, T v) {
    yoco_emu::sync_warp(yoco_emu::WarpOp::WmmaFill, 0xffffffffu);
    for (auto& e : f.x) e = v;
}

inline float to_float(float v) { return v; }
inline float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
inline float to_float(__half v) { return __half2float(v); }

// d = a · b + c in f32 (the products of 16-bit inputs are exact in f32). Lane 0 computes the
// tile once and writes it into every lane's `d` (the lanes publish where theirs is); the others
// wait for it at the second meeting point.
template <typename T, typename LA, typename LB>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, T, LA>& a,
                     const fragment<matrix_b, 16, 16, 16, T, LB>& b, const fragment<accumulator, 16, 16, 16, float>& c) {
    using Acc = fragment<accumulator, 16, 16, 16, float>;
    Acc* const* all = yoco_emu::exchange(&d, yoco_emu::WarpOp::WmmaMma, 0xffffffffu);
    if (yoco_emu::current().lane == 0) {
        float out[256];
        for (int i = 0; i < 16; ++i)
            for (int j = 0; j < 16; ++j) {
                float acc = c.x[i * 16 + j];
                for (int k = 0; k < 16; ++k) acc += to_float(a.x[i * 16 + k]) * to_float(b.x[k * 16 + j]);
                out[i * 16 + j] = acc;
            }
        for (int lane = 0; lane < 32; ++lane) memcpy(yoco_emu::slot(all, lane)->x, out, sizeof out);
    }
    yoco_emu::release_exchange(yoco_emu::WarpOp::WmmaMma, 0xffffffffu);
}

}  // namespace wmma
}  // namespace nvcuda

// einhls_butterfly.h: the butterfly unit, P parallel butterfly units over banked ping-pong buffers
// (docs/hardware.md, "Butterfly unit"; the same layout and arithmetic as rtl_kernels/einhls_butterfly.v,
// defined by codegen/ir/butterfly.py and codegen/schedule/butterfly.py).
//
// Elements: the K input codes are element local = 0..K-1 of a vector of N, copied STACKS times
// (e = stack * N + local, NT = STACKS * N); padding never matters (its stage-0 twiddles are zero).
// Stage s (stride 2^a, a = stride_log[s]) pairs e0 = ins0(q, a) and e1 = e0 + 2^a, q = c * P + u
// for unit u in cycle c (CT = NT / (2P) cycles per stage), and computes
//     acc_j = t[0][j] * x0 + t[1][j] * x1 + bias_j                 (4 multipliers, 2 adders)
//     y_j   = clamp(rne(acc_j * mult[s], shift[s]) + zp[s], lo[s], hi[s])
// The output is the first M elements of the last stage.
//
// Banks: 2P banks; element e lives in bank (local mod P) + P * parity(local >> p) (p = log2 P), at
// address stack * C1 + (local >> (p + 1)), C1 = N / (2P).  The 2P elements of any cycle, at any
// stride, are in 2P different banks, so with the bank dimension partitioned every cycle is one
// access per bank (tests/test_butterfly.py counts the conflicts: none).
//
// C is a configuration struct written by the einhls emitter (templates/hls/params_butterfly.h.j2):
//   N, STACKS, STAGES, P, K, M, IN_LANES, OUT_LANES    geometry
//   LOG_P, BANKS, C1, CT, OUT_WORDS, IN_BEATS, OUT_BEATS
//   IN_BITS, OUT_BITS, in_t, out_t                      stream element types
//   w_t (stored codes), acc_t (exact accumulator), V_BITS, M_BITS (requant product widths)
//   tw_int, bias_int                                    integer types the ROM arrays are stored in
// and the ROMs: twiddle[STAGES * CT][P][4] (t00, t10, t01, t11: t[i][j] is input i's coefficient in
// output j), bias[STAGES * CT][P][2] (of e0, e1), stride_log, mult, shift, zp, lo, hi [STAGES].
#ifndef EINHLS_BUTTERFLY_H
#define EINHLS_BUTTERFLY_H

#include <ap_int.h>
#include <hls_stream.h>

#include "einhls_stream.h"

namespace einhls {

// A zero bit inserted at position a of u.
inline unsigned bfly_ins0(unsigned u, unsigned a) {
#pragma HLS INLINE
    return ((u >> a) << (a + 1)) | (u & ((1u << a) - 1));
}

inline bool bfly_parity(unsigned v) {
#pragma HLS INLINE
    bool p = false;
parity:
    for (unsigned i = 0; i < 16; i++) {
#pragma HLS UNROLL
        p ^= (v >> i) & 1;
    }
    return p;
}

// The einhls rounding rule with a shift known only at run time (it changes from stage to stage):
// clamp(rne(v * m, shift) + zp, lo, hi), rne rounding half to even, v * m at full width.
template <int VW, int MW>
long long bfly_requantize(const ap_int<VW>& v, const ap_uint<MW>& m, unsigned shift, long long zp,
                          long long lo, long long hi) {
#pragma HLS INLINE
    const int PW = VW + MW + 1;
    const ap_int<PW> p = ap_int<PW>(v) * ap_int<MW + 1>(m);
    ap_int<PW + 1> r = p >> shift;                        // floor(p / 2^shift)
    if (shift > 0) {
        const ap_uint<PW> rem = ap_uint<PW>(p) & ~(ap_uint<PW>(~ap_uint<PW>(0)) << shift);
        const ap_uint<PW> half = ap_uint<PW>(1) << (shift - 1);
        if (rem > half || (rem == half && r[0] == 1)) r += 1;
    }
    const ap_int<PW + 66> y = ap_int<PW + 66>(r) + zp;
    if (y < lo) return lo;
    if (y > hi) return hi;
    return y.to_int64();
}

template <class C>
unsigned bfly_bank(unsigned local) {
#pragma HLS INLINE
    return (local & (C::P - 1)) | (unsigned(bfly_parity(local >> C::LOG_P)) << C::LOG_P);
}

// Stage 1: one input frame into the IN buffer x[bank][word] (N elements; padding zero).
template <class C>
void butterfly_read(hls::stream<ap_uint<C::IN_LANES * C::IN_BITS> >& in, typename C::w_t x[C::BANKS][C::C1]) {
pad:
    for (unsigned w = 0; w < C::C1; w++) {
#pragma HLS PIPELINE II=1
        for (unsigned k = 0; k < C::BANKS; k++) {
#pragma HLS UNROLL
            x[k][w] = 0;
        }
    }
read_beats:
    for (unsigned b = 0; b < C::IN_BEATS; b++) {
#pragma HLS PIPELINE II=1
        const ap_uint<C::IN_LANES * C::IN_BITS> word = in.read();
    read_lanes:
        for (unsigned l = 0; l < C::IN_LANES; l++) {
#pragma HLS UNROLL
            const unsigned e = b * C::IN_LANES + l;
            if (e < C::K) x[bfly_bank<C>(e)][e >> (C::LOG_P + 1)] = get_lane<typename C::in_t, C::IN_BITS>(word, l);
        }
    }
}

// Stage 2: the STAGES stages on P units, through the ping-pong working buffer wk.
template <class C>
void butterfly_compute(const typename C::w_t x[C::BANKS][C::C1], typename C::out_t y[C::BANKS][C::OUT_WORDS],
                       const typename C::tw_int twiddle[C::STAGES * C::CT][C::P][4],
                       const typename C::bias_int bias[C::STAGES * C::CT][C::P][2],
                       const unsigned char stride_log[C::STAGES], const unsigned long long mult[C::STAGES],
                       const unsigned char shift[C::STAGES], const long long zp[C::STAGES],
                       const long long lo[C::STAGES], const long long hi[C::STAGES]) {
#pragma HLS ARRAY_PARTITION variable=twiddle complete dim=2
#pragma HLS ARRAY_PARTITION variable=twiddle complete dim=3
#pragma HLS ARRAY_PARTITION variable=bias complete dim=2
#pragma HLS ARRAY_PARTITION variable=bias complete dim=3
    typename C::w_t wk[2][C::BANKS][C::CT];
#pragma HLS ARRAY_PARTITION variable=wk complete dim=2
stages:
    for (unsigned s = 0; s < C::STAGES; s++) {
    cycles:
        for (unsigned c = 0; c < C::CT; c++) {
#pragma HLS PIPELINE II=1
#pragma HLS DEPENDENCE variable=wk inter false
            const unsigned a = stride_log[s];
            const unsigned stack = c / C::C1;
            const unsigned q0 = (c % C::C1) * C::P;
            const unsigned e0 = bfly_ins0(q0, a), e1 = e0 | (1u << a);
            const unsigned par = bfly_parity(e0 >> C::LOG_P) ? C::P : 0;   // logical v is in bank v ^ par
            const unsigned a0 = e0 >> (C::LOG_P + 1), a1 = e1 >> (C::LOG_P + 1);
            typename C::w_t logical[C::BANKS];
            long long result[C::BANKS];
#pragma HLS ARRAY_PARTITION variable=logical complete
#pragma HLS ARRAY_PARTITION variable=result complete
        read_banks:
            for (unsigned k = 0; k < C::BANKS; k++) {
#pragma HLS UNROLL
                const unsigned v = k ^ par;
                const unsigned addr = v >= C::P ? a1 : a0;
                logical[v] = s == 0 ? x[k][addr] : wk[(s + 1) & 1][k][stack * C::C1 + addr];
            }
        units:
            for (unsigned u = 0; u < C::P; u++) {
#pragma HLS UNROLL
                const unsigned i0 = a >= C::LOG_P ? u : bfly_ins0(u, a);
                const unsigned i1 = a >= C::LOG_P ? u + C::P : i0 + (1u << a);
                const typename C::w_t x0 = logical[i0], x1 = logical[i1];
                const typename C::tw_int* t = twiddle[s * C::CT + c][u];
                // products and sums modulo 2^ACC_BITS: exact, the true sums fit acc_t
                const typename C::acc_t acc0 = typename C::acc_t(x0 * ap_int<C::T_BITS>(t[0]))
                    + typename C::acc_t(x1 * ap_int<C::T_BITS>(t[1])) + typename C::acc_t(bias[s * C::CT + c][u][0]);
                const typename C::acc_t acc1 = typename C::acc_t(x0 * ap_int<C::T_BITS>(t[2]))
                    + typename C::acc_t(x1 * ap_int<C::T_BITS>(t[3])) + typename C::acc_t(bias[s * C::CT + c][u][1]);
                const ap_uint<C::M_BITS> m = mult[s];
                result[i0] = bfly_requantize<C::V_BITS, C::M_BITS>(ap_int<C::V_BITS>(acc0), m, shift[s], zp[s], lo[s], hi[s]);
                result[i1] = bfly_requantize<C::V_BITS, C::M_BITS>(ap_int<C::V_BITS>(acc1), m, shift[s], zp[s], lo[s], hi[s]);
            }
        write_banks:
            for (unsigned k = 0; k < C::BANKS; k++) {
#pragma HLS UNROLL
                const unsigned v = k ^ par;
                const unsigned addr = stack * C::C1 + (v >= C::P ? a1 : a0);
                if (s + 1 == C::STAGES) {
                    if (addr < C::OUT_WORDS) y[k][addr] = typename C::out_t(result[v]);
                } else {
                    wk[s & 1][k][addr] = typename C::w_t(result[v]);
                }
            }
        }
    }
}

// Stage 3: the first M elements of the last stage, OUT_LANES per beat.
template <class C>
void butterfly_write(const typename C::out_t y[C::BANKS][C::OUT_WORDS],
                     hls::stream<ap_uint<C::OUT_LANES * C::OUT_BITS> >& out) {
write_beats:
    for (unsigned b = 0; b < C::OUT_BEATS; b++) {
#pragma HLS PIPELINE II=1
        ap_uint<C::OUT_LANES * C::OUT_BITS> word = 0;   // lanes past the end of the frame stay zero
    write_lanes:
        for (unsigned l = 0; l < C::OUT_LANES; l++) {
#pragma HLS UNROLL
            const unsigned e = b * C::OUT_LANES + l;
            if (e < C::M) set_lane<C::OUT_BITS>(word, l, y[bfly_bank<C>(e % C::N)][e / C::BANKS]);
        }
        out.write(word);
    }
}

// The butterfly unit: read, compute and write as a dataflow pipeline (x and y become ping-pong
// buffers, so the next frame loads while this one computes and the previous one drains).
template <class C>
void butterfly(hls::stream<ap_uint<C::IN_LANES * C::IN_BITS> >& in,
               hls::stream<ap_uint<C::OUT_LANES * C::OUT_BITS> >& out,
               const typename C::tw_int twiddle[C::STAGES * C::CT][C::P][4],
               const typename C::bias_int bias[C::STAGES * C::CT][C::P][2],
               const unsigned char stride_log[C::STAGES], const unsigned long long mult[C::STAGES],
               const unsigned char shift[C::STAGES], const long long zp[C::STAGES],
               const long long lo[C::STAGES], const long long hi[C::STAGES]) {
#pragma HLS DATAFLOW
    static_assert((C::P & (C::P - 1)) == 0 && (1u << C::LOG_P) == C::P, "P must be a power of two, LOG_P its log");
    static_assert(C::BANKS == 2 * C::P && C::C1 * C::BANKS == C::N, "BANKS = 2P, C1 = N / (2P)");
    static_assert(C::CT == C::STACKS * C::C1, "CT = STACKS * N / (2P) cycles per stage");
    static_assert(C::K <= C::N && C::M <= C::STACKS * C::N, "K <= N, M <= STACKS * N");
    static_assert(C::OUT_WORDS == (C::M + C::BANKS - 1) / C::BANKS, "OUT_WORDS = ceil(M / (2P))");
    static_assert(C::IN_BEATS == (C::K + C::IN_LANES - 1) / C::IN_LANES, "IN_BEATS = ceil(K / IN_LANES)");
    static_assert(C::OUT_BEATS == (C::M + C::OUT_LANES - 1) / C::OUT_LANES, "OUT_BEATS = ceil(M / OUT_LANES)");
    typename C::w_t x[C::BANKS][C::C1];
#pragma HLS ARRAY_PARTITION variable=x complete dim=1
    typename C::out_t y[C::BANKS][C::OUT_WORDS];
#pragma HLS ARRAY_PARTITION variable=y complete dim=1
    butterfly_read<C>(in, x);
    butterfly_compute<C>(x, y, twiddle, bias, stride_log, mult, shift, zp, lo, hi);
    butterfly_write<C>(y, out);
}

}  // namespace einhls

#endif  // EINHLS_BUTTERFLY_H

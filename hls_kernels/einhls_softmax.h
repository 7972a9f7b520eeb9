// einhls_softmax.h: integer softmax over the last axis of one token (I-BERT's i-exp in base 2).
//
// For each token of SIZE codes (arriving as BEATS beats of LANES lanes), with d = max - x:
//     u  = (d * EXP_MULT) >> EXP_SHIFT,  z = u >> F,  r = u mod 2^F
//     e  = (((A * ((B - r)^2 >> F)) >> F) + C0) >> min(z, F + 1)
//     y  = clamp(rne(e * (NUM / sum e), K) + ZP, LO, HI)
// exactly as codegen/ir/nonlinear.py IntSoftmax.reference.  One token is buffered; one pipelined
// loop of 3 BEATS + NUM_BITS steps (read and max, exponentials and sum, the division one quotient
// bit per step, output).  Lanes after the last element are ignored on input and zero on output.
//
// C (written by einhls) has: SIZE, LANES, BEATS, IN_BITS, OUT_BITS, in_t, out_t, F, EXP_MULT,
// EXP_SHIFT, POLY_A, POLY_B, POLY_C, K, NUM, NUM_BITS, ZP, LO, HI, E_BITS (bits of e), SUM_BITS,
// RECIP_BITS (bits of NUM / sum).
#ifndef EINHLS_SOFTMAX_H
#define EINHLS_SOFTMAX_H

#include <ap_int.h>
#include <hls_stream.h>

#include "einhls_requant.h"
#include "einhls_stream.h"

namespace einhls {

// 2^-(u / 2^F) in F fraction bits for u >= 0 (the exponential of one element).
template <class C>
ap_uint<C::E_BITS> softmax_exp(const ap_uint<64>& d) {
#pragma HLS INLINE
    const ap_uint<64> u = (d * ap_uint<64>(C::EXP_MULT)) >> C::EXP_SHIFT;
    const ap_uint<64> z_full = u >> C::F;
    const unsigned z = z_full > C::F + 1 ? C::F + 1 : unsigned(z_full);
    const ap_uint<C::F> r = u.range(C::F - 1, 0);
    const ap_uint<C::F + 2> s = ap_uint<C::F + 2>(C::POLY_B) - r;
    const ap_uint<2 * C::F + 4> sq = ap_uint<2 * C::F + 4>(s) * s;
    const ap_uint<C::F + 4> sq_f = sq >> C::F;
    const ap_uint<2 * C::F + 8> poly = ap_uint<2 * C::F + 8>(C::POLY_A) * sq_f;
    const ap_uint<C::E_BITS> e0 = (poly >> C::F) + C::POLY_C;
    return e0 >> z;
}

template <class C>
void softmax_stream(hls::stream<ap_uint<C::LANES * C::IN_BITS> >& in,
                    hls::stream<ap_uint<C::LANES * C::OUT_BITS> >& out) {
    static_assert(C::BEATS == (C::SIZE + C::LANES - 1) / C::LANES, "BEATS must be ceil(SIZE / LANES)");
    static_assert(C::NUM_BITS < 64, "NUM must fit 63 bits");
    EINHLS_CSIM_PROCESS();
    typename C::in_t x[C::BEATS][C::LANES];
    ap_uint<C::E_BITS> e[C::BEATS][C::LANES];
#pragma HLS ARRAY_PARTITION variable=x complete dim=2
#pragma HLS ARRAY_PARTITION variable=e complete dim=2
    typename C::in_t top = 0;
    ap_uint<C::SUM_BITS> total = 0;
    ap_uint<64> rem = 0, recip = 0;
    // One flattened loop, one step per cycle, in four phases as the Verilog unit: read (running
    // maximum), exponentials and their sum, NUM / sum by restoring division (one quotient bit per
    // step; the sum is never zero, the maximum's own exponential is 2^F), output.
    const unsigned EXPS = C::BEATS, DIV = 2 * C::BEATS, WRITE = 2 * C::BEATS + C::NUM_BITS;
steps:
    for (unsigned c = 0; c < WRITE + C::BEATS; c++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        if (c < EXPS) {
            const unsigned b = c;
            const ap_uint<C::LANES * C::IN_BITS> word = in.read();
            for (unsigned l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
                const typename C::in_t v = get_lane<typename C::in_t, C::IN_BITS>(word, l);
                x[b][l] = v;
                if (b * C::LANES + l < C::SIZE && ((b == 0 && l == 0) || v > top)) top = v;
            }
        } else if (c < DIV) {
            const unsigned b = c - EXPS;
            ap_uint<C::SUM_BITS> beat_sum = 0;
            for (unsigned l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
                ap_uint<C::E_BITS> v = 0;
                if (b * C::LANES + l < C::SIZE) {
                    const ap_int<C::IN_BITS + 2> d = ap_int<C::IN_BITS + 2>(top) - x[b][l];
                    v = softmax_exp<C>(ap_uint<64>(d));
                }
                e[b][l] = v;
                beat_sum += v;
            }
            total += beat_sum;
        } else if (c < WRITE) {
            const unsigned k = C::NUM_BITS - 1 - (c - DIV);
            rem = (rem << 1) | ((ap_uint<64>(C::NUM) >> k) & 1);
            if (rem >= total) {
                rem -= total;
                recip[k] = 1;
            }
        } else {
            const unsigned b = c - WRITE;
            ap_uint<C::LANES * C::OUT_BITS> word = 0;
            for (unsigned l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
                if (b * C::LANES + l < C::SIZE) {
                    const typename C::out_t y = requantize<C::K, C::ZP, C::LO, C::HI, typename C::out_t>(
                        ap_int<C::E_BITS + 1>(e[b][l]), ap_uint<C::RECIP_BITS>(recip));
                    set_lane<C::OUT_BITS>(word, l, y);
                }
            }
            out.write(word);
        }
    }
}

}  // namespace einhls

#endif  // EINHLS_SOFTMAX_H

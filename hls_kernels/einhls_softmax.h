// einhls_softmax.h: integer softmax over the last axis of one token (I-BERT's i-exp in base 2).
//
// For each token of SIZE codes (arriving as BEATS beats of LANES lanes), with d = max - x:
//     u  = (d * EXP_MULT) >> EXP_SHIFT,  z = u >> F,  r = u mod 2^F
//     e  = (((A * ((B - r)^2 >> F)) >> F) + C0) >> min(z, F + 1)
//     y  = clamp(rne(e * (NUM / sum e), K) + ZP, LO, HI)
// exactly as codegen/ir/nonlinear.py IntSoftmax.reference.  Three dataflow processes, each one
// pipelined loop working on its own token, as the Verilog's three stages: read (BEATS steps, the
// running maximum), exponentials and their sum then NUM / sum by restoring division (BEATS +
// NUM_BITS steps, one quotient bit per step) and output (BEATS steps); x and e are ping-pong
// buffers, the maximum and the reciprocal travel in 2-deep streams.  Interval BEATS + NUM_BITS.
// Lanes after the last element are ignored on input and zero on output.
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

// Stage 1: a token into x, and its maximum.
template <class C>
void softmax_read(hls::stream<ap_uint<C::LANES * C::IN_BITS> >& in, typename C::in_t x[C::BEATS][C::LANES],
                  hls::stream<typename C::in_t>& tops) {
    EINHLS_CSIM_PROCESS();
    typename C::in_t top = 0;
read_beats:
    for (unsigned b = 0; b < C::BEATS; b++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        const ap_uint<C::LANES * C::IN_BITS> word = in.read();
        typename C::in_t beat_top = b == 0 ? get_lane<typename C::in_t, C::IN_BITS>(word, 0) : top;
    lanes:
        for (unsigned l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
            const typename C::in_t v = get_lane<typename C::in_t, C::IN_BITS>(word, l);
            x[b][l] = v;
            if (b * C::LANES + l < C::SIZE && v > beat_top) beat_top = v;
        }
        top = beat_top;
        if (b == C::BEATS - 1) tops.write(top);
    }
}

// Stage 2: the exponentials and their sum (BEATS steps), then NUM / sum by restoring division, one
// quotient bit per step (NUM_BITS steps; the sum is never zero, the maximum's own exponential is 2^F).
template <class C>
void softmax_exp_divide(const typename C::in_t x[C::BEATS][C::LANES], hls::stream<typename C::in_t>& tops,
                        ap_uint<C::E_BITS> e[C::BEATS][C::LANES], hls::stream<ap_uint<64> >& recips) {
    EINHLS_CSIM_PROCESS();
    typename C::in_t top = 0;
    ap_uint<C::SUM_BITS> total = 0;
    ap_uint<64> rem = 0, recip = 0;
    unsigned k = C::NUM_BITS - 1;   // the quotient bit of a division step
steps:
    for (unsigned c = 0; c < C::BEATS + C::NUM_BITS; c++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        if (c < C::BEATS) {
            const unsigned b = c;
            const typename C::in_t t = b == 0 ? tops.read() : top;
            top = t;
            ap_uint<C::SUM_BITS> beat_sum = 0;
        lanes:
            for (unsigned l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
                ap_uint<C::E_BITS> v = 0;
                if (b * C::LANES + l < C::SIZE) {
                    const ap_int<C::IN_BITS + 2> d = ap_int<C::IN_BITS + 2>(t) - x[b][l];
                    v = softmax_exp<C>(ap_uint<64>(d));
                }
                e[b][l] = v;
                beat_sum += v;
            }
            total = (b == 0 ? ap_uint<C::SUM_BITS>(0) : total) + beat_sum;
            rem = 0;
            recip = 0;
            k = C::NUM_BITS - 1;
        } else {
            rem = (rem << 1) | ((ap_uint<64>(C::NUM) >> k) & 1);
            if (rem >= total) {
                rem -= total;
                recip[k] = 1;
            }
            if (k == 0) recips.write(recip);
            k--;
        }
    }
}

// Stage 3: y = requantize(e * recip) for every element, one beat per step.
template <class C>
void softmax_write(const ap_uint<C::E_BITS> e[C::BEATS][C::LANES], hls::stream<ap_uint<64> >& recips,
                   hls::stream<ap_uint<C::LANES * C::OUT_BITS> >& out) {
    EINHLS_CSIM_PROCESS();
    ap_uint<64> recip = 0;
write_beats:
    for (unsigned b = 0; b < C::BEATS; b++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        const ap_uint<64> r = b == 0 ? recips.read() : recip;
        recip = r;
        ap_uint<C::LANES * C::OUT_BITS> word = 0;
    lanes:
        for (unsigned l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
            if (b * C::LANES + l < C::SIZE) {
                const typename C::out_t y = requantize<C::K, C::ZP, C::LO, C::HI, typename C::out_t>(
                    ap_int<C::E_BITS + 1>(e[b][l]), ap_uint<C::RECIP_BITS>(r));
                set_lane<C::OUT_BITS>(word, l, y);
            }
        }
        out.write(word);
    }
}

// The softmax unit: read, exponentials and division, write as one dataflow pipeline.
template <class C>
void softmax_stream(hls::stream<ap_uint<C::LANES * C::IN_BITS> >& in,
                    hls::stream<ap_uint<C::LANES * C::OUT_BITS> >& out) {
#pragma HLS DATAFLOW
    static_assert(C::BEATS == (C::SIZE + C::LANES - 1) / C::LANES, "BEATS must be ceil(SIZE / LANES)");
    static_assert(C::NUM_BITS < 64 && C::NUM_BITS >= 1, "NUM must fit 63 bits");
    typename C::in_t x[C::BEATS][C::LANES];
    ap_uint<C::E_BITS> e[C::BEATS][C::LANES];
#pragma HLS ARRAY_PARTITION variable=x complete dim=2
#pragma HLS ARRAY_PARTITION variable=e complete dim=2
    hls::stream<typename C::in_t> tops("tops");
    hls::stream<ap_uint<64> > recips("recips");
#pragma HLS STREAM variable=tops depth=2
#pragma HLS STREAM variable=recips depth=2
    softmax_read<C>(in, x, tops);
    softmax_exp_divide<C>(x, tops, e, recips);
    softmax_write<C>(e, recips, out);
}

}  // namespace einhls

#endif  // EINHLS_SOFTMAX_H

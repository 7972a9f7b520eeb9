// einhls_tokenmean.h: the mean of every feature over a sequence (codegen/ir/pooling.py TokenMean).
//
// One call is one sequence: TOKENS tokens of SIZE codes in (BEATS beats of LANES), one token out:
//     acc[c] = sum_t (x[t, c] - IN_ZP),   y[c] = requantize(acc[c], MULT)   (SHIFT, ZP, LO, HI)
// exactly as the Verilog unit einhls_tokenmean.v.  One pipelined loop: TOKENS * BEATS steps that
// accumulate (the first token overwrites), then BEATS steps that write.
// tokenmean_overlap_stream (the scheduler's OVERLAP, einhls_tokenmean.v's two banks): TOKENS * BEATS
// steps a sequence; each step of the last token completes one word of sums and writes its means in
// the same step, so the next call (sequence) starts BEATS steps earlier.  C (written by einhls) has:
// SIZE, LANES, BEATS, TOKENS, IN_BITS, OUT_BITS, IN_ZP, SHIFT, ZP, LO, HI, MULT, in_t, acc_t,
// mult_t, out_t.
#ifndef EINHLS_TOKENMEAN_H
#define EINHLS_TOKENMEAN_H

#include <ap_int.h>
#include <hls_stream.h>

#include "einhls_requant.h"
#include "einhls_stream.h"

namespace einhls {

template <class C>
void tokenmean_stream(hls::stream<ap_uint<C::LANES * C::IN_BITS> >& in,
                      hls::stream<ap_uint<C::LANES * C::OUT_BITS> >& out) {
    static_assert(C::BEATS == (C::SIZE + C::LANES - 1) / C::LANES, "BEATS must be ceil(SIZE / LANES)");
    EINHLS_CSIM_PROCESS();
    typename C::acc_t acc[C::BEATS][C::LANES];
#pragma HLS ARRAY_PARTITION variable=acc complete dim=2
    unsigned beat = 0, token = 0;
steps:
    for (unsigned i = 0; i < C::TOKENS * C::BEATS + C::BEATS; i++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        if (token < C::TOKENS) {
            const ap_uint<C::LANES * C::IN_BITS> word = in.read();
        lanes_in:
            for (unsigned l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
                const typename C::acc_t x = MeanSteps<C>::centred(word, l);
                acc[beat][l] = token == 0 ? x : typename C::acc_t(acc[beat][l] + x);
            }
        } else {
            ap_uint<C::LANES * C::OUT_BITS> word = 0;
        lanes_out:
            for (unsigned l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
                if (beat * C::LANES + l < C::SIZE) {
                    const typename C::out_t y = requantize<C::SHIFT, C::ZP, C::LO, C::HI, typename C::out_t>(
                        acc[beat][l], typename C::mult_t(C::MULT));
                    set_lane<C::OUT_BITS>(word, l, y);
                }
            }
            out.write(word);
        }
        MeanSteps<C>::advance(beat, token);
    }
}

template <class C>
void tokenmean_overlap_stream(hls::stream<ap_uint<C::LANES * C::IN_BITS> >& in,
                              hls::stream<ap_uint<C::LANES * C::OUT_BITS> >& out) {
    static_assert(C::BEATS == (C::SIZE + C::LANES - 1) / C::LANES, "BEATS must be ceil(SIZE / LANES)");
    EINHLS_CSIM_PROCESS();
    typename C::acc_t acc[C::BEATS][C::LANES];
#pragma HLS ARRAY_PARTITION variable=acc complete dim=2
    unsigned beat = 0, token = 0;
steps:
    for (unsigned i = 0; i < C::TOKENS * C::BEATS; i++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        const ap_uint<C::LANES * C::IN_BITS> word = in.read();
        ap_uint<C::LANES * C::OUT_BITS> means = 0;
    lanes:
        for (unsigned l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
            const typename C::acc_t x = MeanSteps<C>::centred(word, l);
            const typename C::acc_t sum = token == 0 ? x : typename C::acc_t(acc[beat][l] + x);
            acc[beat][l] = sum;
            if (beat * C::LANES + l < C::SIZE) {
                const typename C::out_t y = requantize<C::SHIFT, C::ZP, C::LO, C::HI, typename C::out_t>(
                    sum, typename C::mult_t(C::MULT));
                set_lane<C::OUT_BITS>(means, l, y);
            }
        }
        if (token == C::TOKENS - 1) out.write(means);   // this word of sums is complete
        MeanSteps<C>::advance(beat, token);
    }
}

}  // namespace einhls

#endif  // EINHLS_TOKENMEAN_H

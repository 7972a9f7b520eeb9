// einhls_maskedmean.h: the mean over the real tokens of a sequence (codegen/ir/pooling.py
// MaskedTokenMean), exactly as the Verilog unit einhls_maskedmean.v.
//
// One call is one sequence: TOKENS tokens of SIZE codes (BEATS beats of LANES) and TOKENS mask
// beats (the code in lane 0, nonzero = a token), one token out:
//     n = max(1, tokens with mask != 0),  acc[c] = sum over them of (x[t, c] - IN_ZP)
//     y[c] = requantize(acc[c] * mults[n - 1], 1)   (SHIFT, ZP, LO, HI)
// One pipelined loop: TOKENS * BEATS steps that accumulate (the mask read with a token's first
// beat), then BEATS steps that write.  maskedmean_overlap_stream (the scheduler's OVERLAP, as
// einhls_tokenmean.h's): TOKENS * BEATS steps, the last token's steps write the means of the word of
// sums they complete (the count is final from the last token's first beat).
// C (written by einhls) has: SIZE, LANES, BEATS, TOKENS,
// M_LANES, IN_BITS, MASK_BITS, OUT_BITS, IN_ZP, SHIFT, ZP, LO, HI, in_t, acc_t, mult_t, prod_t, out_t.
#ifndef EINHLS_MASKEDMEAN_H
#define EINHLS_MASKEDMEAN_H

#include <ap_int.h>
#include <hls_stream.h>

#include "einhls_requant.h"
#include "einhls_stream.h"

namespace einhls {

// A token's mask value, read with its first beat: whether the token counts (keep) and how many of
// the sequence's tokens so far do (count, restarted by the first token).
template <class C>
void read_mask(hls::stream<ap_uint<C::M_LANES * C::MASK_BITS> >& mask, unsigned token, bool& keep, unsigned& count) {
#pragma HLS INLINE
    const ap_uint<C::M_LANES * C::MASK_BITS> m = mask.read();
    keep = get_lane<ap_uint<C::MASK_BITS>, C::MASK_BITS>(m, 0) != 0;
    count = (token == 0 ? 0 : count) + (keep ? 1 : 0);
}

template <class C>
void maskedmean_stream(hls::stream<ap_uint<C::LANES * C::IN_BITS> >& in,
                       hls::stream<ap_uint<C::M_LANES * C::MASK_BITS> >& mask,
                       hls::stream<ap_uint<C::LANES * C::OUT_BITS> >& out,
                       const typename C::mult_t mults[C::TOKENS]) {
    static_assert(C::BEATS == (C::SIZE + C::LANES - 1) / C::LANES, "BEATS must be ceil(SIZE / LANES)");
    EINHLS_CSIM_PROCESS();
    typename C::acc_t acc[C::BEATS][C::LANES];
#pragma HLS ARRAY_PARTITION variable=acc complete dim=2
    unsigned beat = 0, token = 0, count = 0;
    bool keep = false;
steps:
    for (unsigned i = 0; i < C::TOKENS * C::BEATS + C::BEATS; i++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        if (token < C::TOKENS) {
            if (beat == 0) read_mask<C>(mask, token, keep, count);
            const ap_uint<C::LANES * C::IN_BITS> word = in.read();
        lanes_in:
            for (unsigned l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
                const typename C::acc_t x = MeanSteps<C>::centred(word, l);
                const typename C::acc_t prior = token == 0 ? typename C::acc_t(0) : acc[beat][l];
                acc[beat][l] = keep ? typename C::acc_t(prior + x) : prior;
            }
        } else {
            const typename C::mult_t mult = mults[count == 0 ? 0 : count - 1];
            ap_uint<C::LANES * C::OUT_BITS> word = 0;
        lanes_out:
            for (unsigned l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
                if (beat * C::LANES + l < C::SIZE) {
                    const typename C::prod_t v = typename C::prod_t(acc[beat][l]) * mult;
                    const typename C::out_t y = requantize<C::SHIFT, C::ZP, C::LO, C::HI, typename C::out_t>(
                        v, ap_uint<1>(1));
                    set_lane<C::OUT_BITS>(word, l, y);
                }
            }
            out.write(word);
        }
        MeanSteps<C>::advance(beat, token);
    }
}

template <class C>
void maskedmean_overlap_stream(hls::stream<ap_uint<C::LANES * C::IN_BITS> >& in,
                               hls::stream<ap_uint<C::M_LANES * C::MASK_BITS> >& mask,
                               hls::stream<ap_uint<C::LANES * C::OUT_BITS> >& out,
                               const typename C::mult_t mults[C::TOKENS]) {
    static_assert(C::BEATS == (C::SIZE + C::LANES - 1) / C::LANES, "BEATS must be ceil(SIZE / LANES)");
    EINHLS_CSIM_PROCESS();
    typename C::acc_t acc[C::BEATS][C::LANES];
#pragma HLS ARRAY_PARTITION variable=acc complete dim=2
    unsigned beat = 0, token = 0, count = 0;
    bool keep = false;
steps:
    for (unsigned i = 0; i < C::TOKENS * C::BEATS; i++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        if (beat == 0) read_mask<C>(mask, token, keep, count);
        const ap_uint<C::LANES * C::IN_BITS> word = in.read();
        const typename C::mult_t mult = mults[count == 0 ? 0 : count - 1];
        ap_uint<C::LANES * C::OUT_BITS> means = 0;
    lanes:
        for (unsigned l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
            const typename C::acc_t x = MeanSteps<C>::centred(word, l);
            const typename C::acc_t prior = token == 0 ? typename C::acc_t(0) : acc[beat][l];
            const typename C::acc_t sum = keep ? typename C::acc_t(prior + x) : prior;
            acc[beat][l] = sum;
            if (beat * C::LANES + l < C::SIZE) {
                const typename C::prod_t v = typename C::prod_t(sum) * mult;
                const typename C::out_t y = requantize<C::SHIFT, C::ZP, C::LO, C::HI, typename C::out_t>(
                    v, ap_uint<1>(1));
                set_lane<C::OUT_BITS>(means, l, y);
            }
        }
        if (token == C::TOKENS - 1) out.write(means);   // this word of sums is complete
        MeanSteps<C>::advance(beat, token);
    }
}

}  // namespace einhls

#endif  // EINHLS_MASKEDMEAN_H

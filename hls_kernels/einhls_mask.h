// einhls_mask.h: the padding mask over attention scores (codegen/ir/mask.py MaskScores).
//
// One call is one sequence: TOKENS beats of the mask (the code in lane 0 of each, nonzero = a
// token, 0 = padding), then TOKENS tokens of scores, HEADS rows of TOKENS codes each, LANES codes a
// beat (LANES divides TOKENS).  Every score of a padding key j leaves as the code MASKED, every
// other one unchanged (widened to OUT_BITS):
//
//     y[i, h * TOKENS + j] = mask[j] != 0 ? x[i, h * TOKENS + j] : MASKED
//
// exactly as the Verilog unit einhls_mask.v.  C (written by einhls) has: TOKENS, HEADS, LANES,
// ROW_BEATS (TOKENS / LANES), M_LANES, IN_BITS, M_BITS, OUT_BITS, MASKED, in_t, out_t.
#ifndef EINHLS_MASK_H
#define EINHLS_MASK_H

#include <ap_int.h>
#include <hls_stream.h>

#include "einhls_stream.h"

namespace einhls {

// Process 1: the mask of a sequence into keep (key j = row * LANES + lane).
template <class C>
void mask_load(hls::stream<ap_uint<C::M_LANES * C::M_BITS> >& mask, bool keep[C::ROW_BEATS][C::LANES]) {
    EINHLS_CSIM_PROCESS();
    unsigned row = 0, lane = 0;
mask_tokens:
    for (unsigned j = 0; j < C::TOKENS; j++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        const ap_uint<C::M_LANES * C::M_BITS> word = mask.read();
        keep[row][lane] = get_lane<ap_uint<C::M_BITS>, C::M_BITS>(word, 0) != 0;
        if (lane == C::LANES - 1) {
            lane = 0;
            row++;
        } else {
            lane++;
        }
    }
}

// Process 2: the scores of the sequence, padding keys replaced, one beat per step.
template <class C>
void mask_apply(hls::stream<ap_uint<C::LANES * C::IN_BITS> >& scores, const bool keep[C::ROW_BEATS][C::LANES],
                hls::stream<ap_uint<C::LANES * C::OUT_BITS> >& out) {
    EINHLS_CSIM_PROCESS();
    unsigned col = 0;
score_beats:
    for (unsigned b = 0; b < C::TOKENS * C::HEADS * C::ROW_BEATS; b++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        const ap_uint<C::LANES * C::IN_BITS> word = scores.read();
        ap_uint<C::LANES * C::OUT_BITS> y = 0;
    lanes:
        for (unsigned l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
            const typename C::in_t x = get_lane<typename C::in_t, C::IN_BITS>(word, l);
            const typename C::out_t code = keep[col][l] ? typename C::out_t(x) : typename C::out_t(C::MASKED);
            set_lane<C::OUT_BITS>(y, l, code);
        }
        out.write(y);
        col = (col == C::ROW_BEATS - 1) ? 0 : col + 1;
    }
}

// The unit: one call is one sequence (the mask loads while the previous sequence's scores pass).
template <class C>
void mask_scores(hls::stream<ap_uint<C::LANES * C::IN_BITS> >& scores,
                 hls::stream<ap_uint<C::M_LANES * C::M_BITS> >& mask,
                 hls::stream<ap_uint<C::LANES * C::OUT_BITS> >& out) {
#pragma HLS DATAFLOW
    static_assert(C::ROW_BEATS * C::LANES == C::TOKENS, "LANES divides TOKENS");
    bool keep[C::ROW_BEATS][C::LANES];
#pragma HLS ARRAY_PARTITION variable=keep complete dim=2
    mask_load<C>(mask, keep);
    mask_apply<C>(scores, keep, out);
}

}  // namespace einhls

#endif  // EINHLS_MASK_H

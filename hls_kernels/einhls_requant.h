// einhls_requant.h: the one rounding and saturation rule of einhls, and the elementwise Requant unit.
//
//     y = clamp( rne(v * M[c], SHIFT) + ZP, LO, HI )
//
// rne(p, s) is p / 2^s rounded half to even (ONNX QuantizeLinear's rule).  M is unsigned, SHIFT >= 0,
// LO already includes a fused ReLU.  This must match codegen/ir/graph.py apply_requant bit for bit.
#ifndef EINHLS_REQUANT_H
#define EINHLS_REQUANT_H

#include <ap_int.h>
#include <hls_stream.h>

#include "einhls_stream.h"

namespace einhls {

// Bits of the narrowest two's complement type that holds v.
constexpr int signed_bits(long long v) {
    return v < 0 ? signed_bits(-(v + 1)) : (v == 0 ? 1 : 1 + signed_bits(v >> 1));
}

// p / 2^SHIFT rounded half to even, for a p of W > SHIFT bits; the quotient fits W - SHIFT bits,
// one more for rounding up.  A struct because SHIFT == 0 needs its own definition (ap_uint<0>
// does not exist) and function templates cannot be partially specialised.
template <int SHIFT>
struct RneShift {
    template <int W>
    static ap_int<W - SHIFT + 1> apply(const ap_int<W>& p) {
#pragma HLS INLINE
        const ap_int<W - SHIFT> q = p >> SHIFT;            // floor(p / 2^SHIFT): arithmetic shift
        const ap_uint<SHIFT> rem = p.range(SHIFT - 1, 0);  // p - q * 2^SHIFT, always >= 0
        ap_uint<SHIFT> half = 0;
        half[SHIFT - 1] = 1;
        // Round up above one half, and at exactly one half only when that makes the result even.
        const bool up = rem > half || (rem == half && q[0] == 1);
        return ap_int<W - SHIFT + 1>(q) + (up ? 1 : 0);
    }
};

template <>
struct RneShift<0> {
    template <int W>
    static ap_int<W + 1> apply(const ap_int<W>& p) {
#pragma HLS INLINE
        return p;
    }
};

// The requantization rule.  Every width is exact: the product keeps VW + MW + 1 bits (at least
// SHIFT + 1, so the remainder bits exist) and the sum with the zero point one bit more than the
// wider of the rounded product and ZP.  ZP, LO and HI are 64-bit because an unrequantized
// accumulator output may be wider than 32 bits.
template <int SHIFT, long long ZP, long long LO, long long HI, class TOut, int VW, int MW>
TOut requantize(const ap_int<VW>& v, const ap_uint<MW>& m) {
#pragma HLS INLINE
    enum { PW = (VW + MW + 1 > SHIFT + 1) ? VW + MW + 1 : SHIFT + 1 };
    enum { RW = PW - SHIFT + 1 };
    enum { YW = (RW > signed_bits(ZP) ? RW : signed_bits(ZP)) + 1 };
    const ap_int<PW> p = v * m;
    const ap_int<YW> y = RneShift<SHIFT>::template apply<PW>(p) + ap_int<signed_bits(ZP)>(ZP);
    if (y < LO) return TOut(LO);
    if (y > HI) return TOut(HI);
    return TOut(y);
}

// Elementwise Requant unit: y[e] = requantize(x[e] + offset[e], M[e]), LANES elements per beat.
//
// C is a configuration struct (written by the einhls emitter) with:
//   SIZE, LANES, BEATS               frame size, elements per beat, ceil(SIZE / LANES)
//   IN_BITS, OUT_BITS                element widths on the two streams
//   in_t, out_t                      element types (ap_int / ap_uint)
//   v_t                              ap_int wide enough for x + offset (from the value ranges)
//   offset_t, mult_t                 offset (ap_int) and multiplier (ap_uint) types
//   OFF_DEPTH, MULT_DEPTH            BEATS for per-element values, 1 when one value serves all
//   SHIFT, ZP, LO, HI                the requantization constants
// offset / mult are stored [lane][beat] so each lane owns a small ROM (or a constant).
template <class C>
void requant_stream(hls::stream<ap_uint<C::LANES * C::IN_BITS> >& in,
                    hls::stream<ap_uint<C::LANES * C::OUT_BITS> >& out,
                    const typename C::offset_t offset[C::LANES][C::OFF_DEPTH],
                    const typename C::mult_t mult[C::LANES][C::MULT_DEPTH]) {
    EINHLS_CSIM_PROCESS();
#pragma HLS ARRAY_PARTITION variable=offset complete dim=1
#pragma HLS ARRAY_PARTITION variable=mult complete dim=1
    static_assert(C::BEATS == (C::SIZE + C::LANES - 1) / C::LANES, "BEATS must be ceil(SIZE / LANES)");
    static_assert(C::OFF_DEPTH == 1 || C::OFF_DEPTH == C::BEATS, "offset is per tensor or per element");
    static_assert(C::MULT_DEPTH == 1 || C::MULT_DEPTH == C::BEATS, "multiplier is per tensor or per element");
beats:
    for (unsigned b = 0; b < C::BEATS; b++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        const ap_uint<C::LANES * C::IN_BITS> word = in.read();
        ap_uint<C::LANES * C::OUT_BITS> result = 0;
    lanes:
        for (unsigned l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
            if (b * C::LANES + l < C::SIZE) {
                const typename C::in_t x = get_lane<typename C::in_t, C::IN_BITS>(word, l);
                const typename C::v_t v = x + offset[l][C::OFF_DEPTH == 1 ? 0 : b];
                const typename C::out_t y = requantize<C::SHIFT, C::ZP, C::LO, C::HI, typename C::out_t>(
                    v, mult[l][C::MULT_DEPTH == 1 ? 0 : b]);
                set_lane<C::OUT_BITS>(result, l, y);
            }
        }
        out.write(result);
    }
}

}  // namespace einhls

#endif  // EINHLS_REQUANT_H

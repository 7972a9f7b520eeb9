// einhls_gelu.h: elementwise integer GELU (I-BERT's i-GELU, erf form), LANES elements per beat.
//
//     xr = x - ZP_IN,  q = (xr * Q_MULT) >> Q_SHIFT             x / sqrt 2, F fraction bits
//     t  = B - min(|q|, B),  L = sgn(q) (2^F - ((A * ((t * t) >> F)) >> F))
//     y  = clamp(rne(xr * (2^F + L) * MULT, SHIFT) + ZP, LO, HI)
// exactly as codegen/ir/nonlinear.py IntGelu.reference.  Pipelined at II=1 per beat.
//
// C (written by einhls) has: SIZE, LANES, BEATS, IN_BITS, OUT_BITS, in_t, out_t, ZP_IN, Q_MULT,
// Q_SHIFT, F, POLY_A, POLY_B, V_BITS (bits of xr * (2^F + L)), MULT, M_BITS, SHIFT, ZP, LO, HI.
#ifndef EINHLS_GELU_H
#define EINHLS_GELU_H

#include <ap_int.h>
#include <hls_stream.h>

#include "einhls_requant.h"
#include "einhls_stream.h"

namespace einhls {

template <class C>
void gelu_stream(hls::stream<ap_uint<C::LANES * C::IN_BITS> >& in,
                 hls::stream<ap_uint<C::LANES * C::OUT_BITS> >& out) {
    static_assert(C::BEATS == (C::SIZE + C::LANES - 1) / C::LANES, "BEATS must be ceil(SIZE / LANES)");
    EINHLS_CSIM_PROCESS();
beats:
    for (unsigned b = 0; b < C::BEATS; b++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        const ap_uint<C::LANES * C::IN_BITS> word = in.read();
        ap_uint<C::LANES * C::OUT_BITS> result = 0;
        for (unsigned l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
            if (b * C::LANES + l < C::SIZE) {
                const typename C::in_t x = get_lane<typename C::in_t, C::IN_BITS>(word, l);
                const ap_int<C::IN_BITS + 2> xr = ap_int<C::IN_BITS + 2>(x) - C::ZP_IN;
                const ap_int<64> q = (ap_int<64>(xr) * ap_int<64>(C::Q_MULT)) >> C::Q_SHIFT;
                const ap_int<64> mag_q = q < 0 ? ap_int<64>(-q) : q;
                const ap_uint<C::F + 2> t = C::POLY_B - (mag_q > C::POLY_B ? ap_int<64>(C::POLY_B) : mag_q);
                const ap_uint<2 * C::F + 4> sq = ap_uint<2 * C::F + 4>(t) * t;
                const ap_uint<2 * C::F + 8> poly = ap_uint<2 * C::F + 8>(C::POLY_A) * ap_uint<C::F + 4>(sq >> C::F);
                const ap_int<C::F + 2> mag = ap_int<C::F + 2>(1 << C::F) - ap_int<C::F + 2>(poly >> C::F);
                const ap_int<C::F + 3> l_val = q > 0 ? ap_int<C::F + 3>(mag) : (q < 0 ? ap_int<C::F + 3>(-mag) : ap_int<C::F + 3>(0));
                const ap_int<C::V_BITS> v = xr * ap_int<C::F + 3>((1 << C::F) + l_val);
                const typename C::out_t y = requantize<C::SHIFT, C::ZP, C::LO, C::HI, typename C::out_t>(
                    v, ap_uint<C::M_BITS>(C::MULT));
                set_lane<C::OUT_BITS>(result, l, y);
            }
        }
        out.write(result);
    }
}

}  // namespace einhls

#endif  // EINHLS_GELU_H

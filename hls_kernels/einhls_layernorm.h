// einhls_layernorm.h: integer LayerNorm over the SIZE features of one token.
//
//     s1 = sum x,  s2 = sum x^2,  V = (SIZE s2 - s1^2 + EPS_Q) << 2 SQ
//     r  = max(isqrt(V), 1),  recip = 2^RB / r                  (once per token)
//     n  = ((SIZE x - s1) * recip) >> (RB - NF - SQ)             (x - mean) / std, NF fraction bits
//     y  = clamp(rne((n * g[c] + b[c]) * MULT, SHIFT) + ZP, LO, HI)
// exactly as codegen/ir/nonlinear.py IntLayerNorm.reference.  One token is buffered; one pipelined
// loop of 2 BEATS + ROOT_BITS + RB + 1 steps: read (sums), the square root (one result bit per
// step), the reciprocal (restoring division, one quotient bit per step), output.
//
// C (written by einhls) has: SIZE, LANES, BEATS, IN_BITS, OUT_BITS, in_t, out_t, EPS_Q, RB, NF, SQ,
// VAR_BITS, ROOT_BITS, V_BITS (bits of n * g + b), MULT, M_BITS, SHIFT, ZP, LO, HI, g_t, b_t.
// gamma / beta are stored [lane][beat] so each lane owns a small ROM.
#ifndef EINHLS_LAYERNORM_H
#define EINHLS_LAYERNORM_H

#include <ap_int.h>
#include <hls_stream.h>

#include "einhls_requant.h"
#include "einhls_stream.h"

namespace einhls {

// floor(sqrt(v)) for v < 2^(2 * ROOT_BITS): one result bit per step, most significant first.
template <int ROOT_BITS>
ap_uint<ROOT_BITS> isqrt_floor(const ap_uint<2 * ROOT_BITS>& v) {
    ap_uint<ROOT_BITS> root = 0;
    ap_uint<2 * ROOT_BITS + 1> rem = v;
bits:
    for (int k = ROOT_BITS - 1; k >= 0; k--) {
#pragma HLS PIPELINE II=1
        // (root + 2^k)^2 - root^2 = (2 root + 2^k) 2^k
        const ap_uint<2 * ROOT_BITS + 1> trial = (ap_uint<2 * ROOT_BITS + 1>(root) << (k + 1))
                                                 + (ap_uint<2 * ROOT_BITS + 1>(1) << (2 * k));
        if (rem >= trial) {
            rem -= trial;
            root[k] = 1;
        }
    }
    return root;
}

template <class C>
void layernorm_stream(hls::stream<ap_uint<C::LANES * C::IN_BITS> >& in,
                      hls::stream<ap_uint<C::LANES * C::OUT_BITS> >& out,
                      const typename C::g_t gamma[C::LANES][C::BEATS],
                      const typename C::b_t beta[C::LANES][C::BEATS]) {
#pragma HLS ARRAY_PARTITION variable=gamma complete dim=1
#pragma HLS ARRAY_PARTITION variable=beta complete dim=1
    static_assert(C::BEATS == (C::SIZE + C::LANES - 1) / C::LANES, "BEATS must be ceil(SIZE / LANES)");
    static_assert(C::RB < 63 && C::RB >= C::NF + C::SQ, "reciprocal shift out of range");
    EINHLS_CSIM_PROCESS();
    typename C::in_t x[C::BEATS][C::LANES];
#pragma HLS ARRAY_PARTITION variable=x complete dim=2
    ap_int<64> s1 = 0, s2 = 0;
    ap_uint<2 * C::ROOT_BITS + 1> sq_rem = 0;
    ap_uint<C::ROOT_BITS> root = 0;
    ap_uint<C::ROOT_BITS + 2> div_rem = 0;
    ap_uint<64> recip = 0;
    // One flattened loop, one step per cycle, in four phases as the Verilog unit: read (sums), the
    // square root one result bit per step, 2^RB / r by restoring division one quotient bit per
    // step, output.
    const unsigned ROOT = C::BEATS, DIV = C::BEATS + C::ROOT_BITS, WRITE = DIV + C::RB + 1;
steps:
    for (unsigned c = 0; c < WRITE + C::BEATS; c++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        if (c < ROOT) {
            const unsigned b = c;
            const ap_uint<C::LANES * C::IN_BITS> word = in.read();
            ap_int<64> beat_s1 = 0, beat_s2 = 0;
            for (unsigned l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
                const typename C::in_t v = get_lane<typename C::in_t, C::IN_BITS>(word, l);
                x[b][l] = v;
                if (b * C::LANES + l < C::SIZE) {
                    beat_s1 += v;
                    beat_s2 += ap_int<64>(v) * v;
                }
            }
            s1 += beat_s1;
            s2 += beat_s2;
        } else if (c < DIV) {
            if (c == ROOT) {
                sq_rem = ap_uint<64>(ap_int<64>(C::SIZE) * s2 - s1 * s1 + ap_int<64>(C::EPS_Q)) << (2 * C::SQ);
            }
            // (root + 2^k)^2 - root^2 = (2 root + 2^k) 2^k
            const int k = C::ROOT_BITS - 1 - int(c - ROOT);
            const ap_uint<2 * C::ROOT_BITS + 1> trial = (ap_uint<2 * C::ROOT_BITS + 1>(root) << (k + 1))
                                                        + (ap_uint<2 * C::ROOT_BITS + 1>(1) << (2 * k));
            if (sq_rem >= trial) {
                sq_rem -= trial;
                root[k] = 1;
            }
        } else if (c < WRITE) {
            const ap_uint<C::ROOT_BITS> r = root == 0 ? ap_uint<C::ROOT_BITS>(1) : root;  // V = 0: every deviation is 0
            const int k = C::RB - int(c - DIV);
            div_rem = (div_rem << 1) | (k == C::RB ? 1 : 0);
            if (div_rem >= r) {
                div_rem -= r;
                recip[k] = 1;
            }
        } else {
            const unsigned b = c - WRITE;
            ap_uint<C::LANES * C::OUT_BITS> word = 0;
            for (unsigned l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
                if (b * C::LANES + l < C::SIZE) {
                    const ap_int<64> dev = ap_int<64>(C::SIZE) * x[b][l] - s1;
                    const ap_int<64> n = ap_int<64>(dev * ap_int<65>(recip)) >> (C::RB - C::NF - C::SQ);
                    const ap_int<C::V_BITS> v = n * gamma[l][b] + beta[l][b];
                    const typename C::out_t y = requantize<C::SHIFT, C::ZP, C::LO, C::HI, typename C::out_t>(
                        v, ap_uint<C::M_BITS>(C::MULT));
                    set_lane<C::OUT_BITS>(word, l, y);
                }
            }
            out.write(word);
        }
    }
}

}  // namespace einhls

#endif  // EINHLS_LAYERNORM_H

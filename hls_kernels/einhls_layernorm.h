// einhls_layernorm.h: integer LayerNorm over the SIZE features of one token.
//
//     s1 = sum x,  s2 = sum x^2,  V = (SIZE s2 - s1^2 + EPS_Q) << 2 SQ
//     r  = max(isqrt(V), 1),  recip = 2^RB / r                  (once per token)
//     n  = ((SIZE x - s1) * recip) >> (RB - NF - SQ)             (x - mean) / std, NF fraction bits
//     y  = clamp(rne((n * g[c] + b[c]) * MULT, SHIFT) + ZP, LO, HI)
// exactly as codegen/ir/nonlinear.py IntLayerNorm.reference.  Three dataflow processes, each one
// pipelined loop working on its own token, as the Verilog's three stages: read (BEATS steps, the
// sums), the square root (one result bit per step) and the reciprocal (restoring division, one
// quotient bit per step: ROOT_BITS + RB + 1 steps), output (BEATS steps).  x goes from the read to
// the output stage past the middle one, so it has three buffers (the Verilog's three banks); the
// sums and the reciprocal travel in 2-deep streams.  Interval max(BEATS, ROOT_BITS + RB + 1).
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

// The per-token values the stages pass on: s1 = sum x, s2 = sum x^2, and 2^RB / r.
struct LayerNormSums {
    ap_int<64> s1, s2;
};

struct LayerNormScale {
    ap_int<64> s1;
    ap_uint<64> recip;
};

// Stage 1: a token into x, and its sums.
template <class C>
void layernorm_read(hls::stream<ap_uint<C::LANES * C::IN_BITS> >& in, typename C::in_t x[C::BEATS][C::LANES],
                    hls::stream<LayerNormSums>& sums) {
    EINHLS_CSIM_PROCESS();
    ap_int<64> s1 = 0, s2 = 0;
read_beats:
    for (unsigned b = 0; b < C::BEATS; b++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        const ap_uint<C::LANES * C::IN_BITS> word = in.read();
        ap_int<64> beat_s1 = 0, beat_s2 = 0;
    lanes:
        for (unsigned l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
            const typename C::in_t v = get_lane<typename C::in_t, C::IN_BITS>(word, l);
            x[b][l] = v;
            if (b * C::LANES + l < C::SIZE) {
                beat_s1 += v;
                beat_s2 += ap_int<64>(v) * v;
            }
        }
        s1 = (b == 0 ? ap_int<64>(0) : s1) + beat_s1;
        s2 = (b == 0 ? ap_int<64>(0) : s2) + beat_s2;
        if (b == C::BEATS - 1) {
            LayerNormSums token;
            token.s1 = s1;
            token.s2 = s2;
            sums.write(token);
        }
    }
}

// Stage 2: r = max(isqrt(V), 1), one result bit per step (ROOT_BITS steps), then 2^RB / r by
// restoring division, one quotient bit per step (RB + 1 steps).
template <class C>
void layernorm_scale(hls::stream<LayerNormSums>& sums, hls::stream<LayerNormScale>& scales) {
    EINHLS_CSIM_PROCESS();
    ap_int<64> s1 = 0;
    ap_uint<2 * C::ROOT_BITS + 1> sq_rem = 0;
    ap_uint<C::ROOT_BITS> root = 0;
    ap_uint<C::ROOT_BITS + 2> div_rem = 0;
    ap_uint<64> recip = 0;
    const unsigned DIV = C::ROOT_BITS;
steps:
    for (unsigned c = 0; c < C::ROOT_BITS + C::RB + 1; c++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        if (c < DIV) {
            if (c == 0) {
                const LayerNormSums token = sums.read();
                s1 = token.s1;
                sq_rem = ap_uint<64>(ap_int<64>(C::SIZE) * token.s2 - token.s1 * token.s1 + ap_int<64>(C::EPS_Q))
                         << (2 * C::SQ);
                root = 0;
                div_rem = 0;
                recip = 0;
            }
            // (root + 2^k)^2 - root^2 = (2 root + 2^k) 2^k
            const int k = C::ROOT_BITS - 1 - int(c);
            const ap_uint<2 * C::ROOT_BITS + 1> trial = (ap_uint<2 * C::ROOT_BITS + 1>(root) << (k + 1))
                                                        + (ap_uint<2 * C::ROOT_BITS + 1>(1) << (2 * k));
            if (sq_rem >= trial) {
                sq_rem -= trial;
                root[k] = 1;
            }
        } else {
            const ap_uint<C::ROOT_BITS> r = root == 0 ? ap_uint<C::ROOT_BITS>(1) : root;  // V = 0: every deviation is 0
            const int k = C::RB - int(c - DIV);
            div_rem = (div_rem << 1) | (k == C::RB ? 1 : 0);
            if (div_rem >= r) {
                div_rem -= r;
                recip[k] = 1;
            }
            if (k == 0) {
                LayerNormScale scale;
                scale.s1 = s1;
                scale.recip = recip;
                scales.write(scale);
            }
        }
    }
}

// Stage 3: y = requantize(n * g + b) for every element, one beat per step.
template <class C>
void layernorm_write(const typename C::in_t x[C::BEATS][C::LANES], hls::stream<LayerNormScale>& scales,
                     hls::stream<ap_uint<C::LANES * C::OUT_BITS> >& out,
                     const typename C::g_t gamma[C::LANES][C::BEATS], const typename C::b_t beta[C::LANES][C::BEATS]) {
#pragma HLS ARRAY_PARTITION variable=gamma complete dim=1
#pragma HLS ARRAY_PARTITION variable=beta complete dim=1
    EINHLS_CSIM_PROCESS();
    LayerNormScale held;
    held.s1 = 0;
    held.recip = 0;
write_beats:
    for (unsigned b = 0; b < C::BEATS; b++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        const LayerNormScale scale = b == 0 ? scales.read() : held;
        held = scale;
        ap_uint<C::LANES * C::OUT_BITS> word = 0;
    lanes:
        for (unsigned l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
            if (b * C::LANES + l < C::SIZE) {
                const ap_int<64> dev = ap_int<64>(C::SIZE) * x[b][l] - scale.s1;
                const ap_int<64> n = ap_int<64>(dev * ap_int<65>(scale.recip)) >> (C::RB - C::NF - C::SQ);
                const ap_int<C::V_BITS> v = n * gamma[l][b] + beta[l][b];
                const typename C::out_t y = requantize<C::SHIFT, C::ZP, C::LO, C::HI, typename C::out_t>(
                    v, ap_uint<C::M_BITS>(C::MULT));
                set_lane<C::OUT_BITS>(word, l, y);
            }
        }
        out.write(word);
    }
}

// The LayerNorm unit: read, square root and reciprocal, write as one dataflow pipeline.
template <class C>
void layernorm_stream(hls::stream<ap_uint<C::LANES * C::IN_BITS> >& in,
                      hls::stream<ap_uint<C::LANES * C::OUT_BITS> >& out,
                      const typename C::g_t gamma[C::LANES][C::BEATS],
                      const typename C::b_t beta[C::LANES][C::BEATS]) {
#pragma HLS DATAFLOW
    static_assert(C::BEATS == (C::SIZE + C::LANES - 1) / C::LANES, "BEATS must be ceil(SIZE / LANES)");
    static_assert(C::RB < 63 && C::RB >= C::NF + C::SQ, "reciprocal shift out of range");
    static_assert(C::ROOT_BITS >= 1, "a square root of at least one bit");
    typename C::in_t x[C::BEATS][C::LANES];
#pragma HLS ARRAY_PARTITION variable=x complete dim=2
#pragma HLS STREAM variable=x type=pipo depth=3
    hls::stream<LayerNormSums> sums("sums");
    hls::stream<LayerNormScale> scales("scales");
#pragma HLS STREAM variable=sums depth=2
#pragma HLS STREAM variable=scales depth=2
    layernorm_read<C>(in, x, sums);
    layernorm_scale<C>(sums, scales);
    layernorm_write<C>(x, scales, out, gamma, beta);
}

}  // namespace einhls

#endif  // EINHLS_LAYERNORM_H

// einhls_graph.h: the units that copy, join and split token streams (Fork, Add, Mul, Concat,
// Slice of codegen/ir/joins.py), bit-exact with their references.
//
// One call handles one token (BEATS beats of LANES elements, the einhls_stream.h layout); the top
// calls a unit once per token.  Each is a single loop pipelined at II=1 with constant bounds.
#ifndef EINHLS_GRAPH_H
#define EINHLS_GRAPH_H

#include <ap_int.h>
#include <hls_stream.h>

#include "einhls_requant.h"
#include "einhls_stream.h"

namespace einhls {

// Every beat of one token to each of the N outputs.
template <int W, unsigned BEATS, unsigned N>
void fork_stream(hls::stream<ap_uint<W> >& in, hls::stream<ap_uint<W> > out[N]) {
    static_assert(N >= 1 && BEATS >= 1, "a fork copies at least one beat to at least one output");
beats:
    for (unsigned b = 0; b < BEATS; b++) {
#pragma HLS PIPELINE II=1
        const ap_uint<W> word = in.read();
    outputs:
        for (unsigned i = 0; i < N; i++) {
#pragma HLS UNROLL
            out[i].write(word);
        }
    }
}

// The shared loop of add_stream and mul_stream: y[e] = requantize(VALUE(a[e], b[e])) with the
// einhls rule (einhls::requantize, here with the multiplier already inside v, so M = 1).
//
// C is a configuration struct (templates/hls/params_join.h.j2) with:
//   SIZE, LANES, BEATS            elements per token, per beat, ceil(SIZE / LANES)
//   A_BITS, B_BITS, OUT_BITS      element widths; a_t, b_t, out_t the element types
//   A_ZP, B_ZP                    zero points of the inputs (long long)
//   MA, MB (Add) or M (Mul)       unsigned multipliers (unsigned long long); m_t their type
//   v_t                           ap_int holding the value before the shift (op.value_range)
//   SHIFT, ZP, LO, HI             the rounding shift, output zero point and clamp bounds
// a - A_ZP is exact in A_BITS + 2 signed bits (A_ZP is a code of a's type).
template <class C, class VALUE>
void binop_stream(hls::stream<ap_uint<C::LANES * C::A_BITS> >& a, hls::stream<ap_uint<C::LANES * C::B_BITS> >& b,
                  hls::stream<ap_uint<C::LANES * C::OUT_BITS> >& out) {
#pragma HLS INLINE
    static_assert(C::BEATS == (C::SIZE + C::LANES - 1) / C::LANES, "BEATS must be ceil(SIZE / LANES)");
beats:
    for (unsigned t = 0; t < C::BEATS; t++) {
#pragma HLS PIPELINE II=1
        const ap_uint<C::LANES * C::A_BITS> word_a = a.read();
        const ap_uint<C::LANES * C::B_BITS> word_b = b.read();
        ap_uint<C::LANES * C::OUT_BITS> result = 0;  // lanes past the end of the token stay zero
    lanes:
        for (unsigned l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
            if (t * C::LANES + l < C::SIZE) {
                const ap_int<C::A_BITS + 2> da = ap_int<C::A_BITS + 2>(get_lane<typename C::a_t, C::A_BITS>(word_a, l))
                                                 - ap_int<C::A_BITS + 2>(C::A_ZP);
                const ap_int<C::B_BITS + 2> db = ap_int<C::B_BITS + 2>(get_lane<typename C::b_t, C::B_BITS>(word_b, l))
                                                 - ap_int<C::B_BITS + 2>(C::B_ZP);
                const typename C::v_t v = VALUE::template of<C>(da, db);
                const typename C::out_t y =
                    requantize<C::SHIFT, C::ZP, C::LO, C::HI, typename C::out_t>(v, ap_uint<1>(1));
                set_lane<C::OUT_BITS>(result, l, y);
            }
        }
        out.write(result);
    }
}

// MA * (a - A_ZP) + MB * (b - B_ZP), exact (ap_int products and sums grow to fit).  With one
// multiplier for both inputs (the usual residual add of one scale) one product per lane.
struct AddValue {
    template <class C, int DA, int DB>
    static typename C::v_t of(const ap_int<DA>& da, const ap_int<DB>& db) {
#pragma HLS INLINE
        if (C::MA == C::MB) {
            const ap_int<(DA > DB ? DA : DB) + 1> sum = da + db;
            return typename C::v_t(sum * typename C::m_t(C::MA));
        }
        return typename C::v_t(da * typename C::m_t(C::MA) + db * typename C::m_t(C::MB));
    }
};

// (a - A_ZP) * (b - B_ZP) * M, exact.
struct MulValue {
    template <class C, int DA, int DB>
    static typename C::v_t of(const ap_int<DA>& da, const ap_int<DB>& db) {
#pragma HLS INLINE
        const ap_int<DA + DB> d = da * db;
        return typename C::v_t(d * typename C::m_t(C::M));
    }
};

// y = clamp(rne(MA * (a - A_ZP) + MB * (b - B_ZP), SHIFT) + ZP, LO, HI), one token.
template <class C>
void add_stream(hls::stream<ap_uint<C::LANES * C::A_BITS> >& a, hls::stream<ap_uint<C::LANES * C::B_BITS> >& b,
                hls::stream<ap_uint<C::LANES * C::OUT_BITS> >& out) {
    binop_stream<C, AddValue>(a, b, out);
}

// y = clamp(rne((a - A_ZP) * (b - B_ZP) * M, SHIFT) + ZP, LO, HI), one token.
template <class C>
void mul_stream(hls::stream<ap_uint<C::LANES * C::A_BITS> >& a, hls::stream<ap_uint<C::LANES * C::B_BITS> >& b,
                hls::stream<ap_uint<C::LANES * C::OUT_BITS> >& out) {
    binop_stream<C, MulValue>(a, b, out);
}

// One token: B0 beats of in0, then B1 of in1 (and B2 of in2, B3 of in3).  The lane count divides
// every input's features but the last one's, so the beats simply follow each other.
template <int W, unsigned B0, unsigned B1>
void concat2(hls::stream<ap_uint<W> >& in0, hls::stream<ap_uint<W> >& in1, hls::stream<ap_uint<W> >& out) {
beats:
    for (unsigned b = 0; b < B0 + B1; b++) {
#pragma HLS PIPELINE II=1
        out.write(b < B0 ? in0.read() : in1.read());
    }
}

template <int W, unsigned B0, unsigned B1, unsigned B2>
void concat3(hls::stream<ap_uint<W> >& in0, hls::stream<ap_uint<W> >& in1, hls::stream<ap_uint<W> >& in2,
             hls::stream<ap_uint<W> >& out) {
beats:
    for (unsigned b = 0; b < B0 + B1 + B2; b++) {
#pragma HLS PIPELINE II=1
        out.write(b < B0 ? in0.read() : b < B0 + B1 ? in1.read() : in2.read());
    }
}

template <int W, unsigned B0, unsigned B1, unsigned B2, unsigned B3>
void concat4(hls::stream<ap_uint<W> >& in0, hls::stream<ap_uint<W> >& in1, hls::stream<ap_uint<W> >& in2,
             hls::stream<ap_uint<W> >& in3, hls::stream<ap_uint<W> >& out) {
beats:
    for (unsigned b = 0; b < B0 + B1 + B2 + B3; b++) {
#pragma HLS PIPELINE II=1
        out.write(b < B0 ? in0.read() : b < B0 + B1 ? in1.read() : b < B0 + B1 + B2 ? in2.read() : in3.read());
    }
}

// One token of IN_BEATS beats in; beats FIRST .. FIRST + COUNT - 1 out, the others dropped.
template <int W, unsigned IN_BEATS, unsigned FIRST, unsigned COUNT>
void slice_stream(hls::stream<ap_uint<W> >& in, hls::stream<ap_uint<W> >& out) {
    static_assert(COUNT >= 1 && FIRST + COUNT <= IN_BEATS, "the slice lies inside the token");
beats:
    for (unsigned b = 0; b < IN_BEATS; b++) {
#pragma HLS PIPELINE II=1
        const ap_uint<W> word = in.read();
        if (b >= FIRST && b < FIRST + COUNT) out.write(word);
    }
}

}  // namespace einhls

#endif  // EINHLS_GRAPH_H

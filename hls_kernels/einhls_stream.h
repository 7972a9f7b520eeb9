// einhls_stream.h: packed stream beats shared by every einhls HLS kernel.
//
// Stream layout (docs/hardware.md, codegen/schedule/design.py StreamFormat): element e of a frame
// travels in beat e / LANES, lane e % LANES, bits [lane*BITS, (lane+1)*BITS) of the beat, two's
// complement when signed; lanes after the last element are zero.  Frames are delimited by counting
// beats, never by a side channel, so every kernel reads and writes exactly ceil(SIZE / LANES) beats.
#ifndef EINHLS_STREAM_H
#define EINHLS_STREAM_H

#include <ap_int.h>
#include <hls_stream.h>

#include "einhls_csim.h"

namespace einhls {

// True when an ap_int / ap_uint of W bits is allowed by the current AP_INT_MAX_W.  Every kernel
// asserts it for the words it builds, so a width the emitter forgot to announce (AP_INT_MAX_W is
// defined before <ap_int.h> in the top's header) stops the compile with a message naming the word
// instead of aborting C-sim at run time or failing late in synthesis.
constexpr bool ap_fits(int w) { return w >= 1 && w <= AP_INT_MAX_W; }

// Elements of a frame -> beats of LANES elements.
constexpr unsigned beats(unsigned size, unsigned lanes) { return (size + lanes - 1) / lanes; }

// Lane `l` of a packed beat as an element of type T (ap_int<BITS> or ap_uint<BITS>).  Converting
// the raw ap_uint<BITS> to ap_int<BITS> reinterprets the bits as two's complement.
template <class T, int BITS, int W>
T get_lane(const ap_uint<W>& word, unsigned l) {
#pragma HLS INLINE
    const ap_uint<BITS> raw = word.range(l * BITS + BITS - 1, l * BITS);
    return T(raw);
}

// Writes `value` into lane `l`: the low BITS bits of its two's complement form.
template <int BITS, int W, class T>
void set_lane(ap_uint<W>& word, unsigned l, const T& value) {
#pragma HLS INLINE
    word.range(l * BITS + BITS - 1, l * BITS) = ap_uint<BITS>(value);
}

constexpr unsigned gcd_of(unsigned a, unsigned b) { return b == 0 ? a : gcd_of(b, a % b); }
constexpr unsigned lcm_of(unsigned a, unsigned b) { return a / gcd_of(a, b) * b; }

// The frame buffer of a re-pack: element e in bank e mod BANKS at row e / BANKS, BANKS = lcm(IN_LANES,
// OUT_LANES).  A beat then covers the banks phase * LANES ... phase * LANES + LANES - 1 of one row
// (phase = beat mod (BANKS / LANES)), so with a phase counter every lane-to-bank connection is a
// compile-time choice among BANKS / LANES, and each bank takes at most one access per cycle.
template <unsigned SIZE, int BITS, unsigned IN_LANES, unsigned OUT_LANES>
struct RepackBuffer {
    static const unsigned BANKS = lcm_of(IN_LANES, OUT_LANES);
    static const unsigned ROWS = (SIZE + BANKS - 1) / BANKS;
};

template <unsigned SIZE, int BITS, unsigned IN_LANES, unsigned OUT_LANES>
void repack_write(hls::stream<ap_uint<IN_LANES * BITS> >& in,
                  ap_uint<BITS> frame[RepackBuffer<SIZE, BITS, IN_LANES, OUT_LANES>::BANKS]
                                     [RepackBuffer<SIZE, BITS, IN_LANES, OUT_LANES>::ROWS]) {
    EINHLS_CSIM_PROCESS();
    const unsigned BANKS = RepackBuffer<SIZE, BITS, IN_LANES, OUT_LANES>::BANKS;
    const unsigned PHASES = BANKS / IN_LANES;
    unsigned phase = 0, row = 0;
beats:
    for (unsigned b = 0; b < beats(SIZE, IN_LANES); b++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        const ap_uint<IN_LANES * BITS> word = in.read();
    phases:
        for (unsigned j = 0; j < PHASES; j++) {      // bank j * IN_LANES + l takes lane l in phase j
#pragma HLS UNROLL
        lanes:
            for (unsigned l = 0; l < IN_LANES; l++) {
#pragma HLS UNROLL
                if (phase == j && b * IN_LANES + l < SIZE)
                    frame[j * IN_LANES + l][row] = get_lane<ap_uint<BITS>, BITS>(word, l);
            }
        }
        if (phase == PHASES - 1) {
            phase = 0;
            row++;
        } else {
            phase++;
        }
    }
}

template <unsigned SIZE, int BITS, unsigned IN_LANES, unsigned OUT_LANES>
void repack_read(const ap_uint<BITS> frame[RepackBuffer<SIZE, BITS, IN_LANES, OUT_LANES>::BANKS]
                                           [RepackBuffer<SIZE, BITS, IN_LANES, OUT_LANES>::ROWS],
                 hls::stream<ap_uint<OUT_LANES * BITS> >& out) {
    EINHLS_CSIM_PROCESS();
    const unsigned BANKS = RepackBuffer<SIZE, BITS, IN_LANES, OUT_LANES>::BANKS;
    const unsigned PHASES = BANKS / OUT_LANES;
    unsigned phase = 0, row = 0;
beats:
    for (unsigned b = 0; b < beats(SIZE, OUT_LANES); b++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        ap_uint<OUT_LANES * BITS> word = 0;  // lanes past the end of the frame stay zero
    lanes:
        for (unsigned l = 0; l < OUT_LANES; l++) {
#pragma HLS UNROLL
            ap_uint<BITS> v = 0;
        phases:
            for (unsigned j = 0; j < PHASES; j++) {   // a PHASES:1 choice of constant banks
#pragma HLS UNROLL
                if (phase == j) v = frame[j * OUT_LANES + l][row];
            }
            if (b * OUT_LANES + l < SIZE) set_lane<BITS>(word, l, v);
        }
        out.write(word);
        if (phase == PHASES - 1) {
            phase = 0;
            row++;
        } else {
            phase++;
        }
    }
}

// Re-packs a frame of SIZE elements from IN_LANES to OUT_LANES elements per beat, used where a
// producer's output beats differ from its consumer's input beats.  The frame is buffered whole
// (valid for any pair of lane counts) in a ping-pong buffer, so reading frame f + 1 overlaps
// writing frame f.  The buffer has lcm(IN_LANES, OUT_LANES) banks, so every beat on either side is
// one row of distinct banks chosen at compile time per phase (RepackBuffer): both loops reach II=1.
template <unsigned SIZE, int BITS, unsigned IN_LANES, unsigned OUT_LANES>
void repack(hls::stream<ap_uint<IN_LANES * BITS> >& in, hls::stream<ap_uint<OUT_LANES * BITS> >& out) {
#pragma HLS DATAFLOW
    static_assert(ap_fits(IN_LANES * BITS) && ap_fits(OUT_LANES * BITS), "repack: a beat exceeds AP_INT_MAX_W");
    typedef RepackBuffer<SIZE, BITS, IN_LANES, OUT_LANES> B;
    ap_uint<BITS> frame[B::BANKS][B::ROWS];
#pragma HLS ARRAY_PARTITION variable=frame complete dim=1
    repack_write<SIZE, BITS, IN_LANES, OUT_LANES>(in, frame);
    repack_read<SIZE, BITS, IN_LANES, OUT_LANES>(frame, out);
}

// What the token means (einhls_tokenmean.h, einhls_maskedmean.h) share, one beat of LANES features a
// step: a lane's input centred on the input zero point, and the (beat, token) position of the next
// step (beats inner).  Inlined into the callers' pipelined steps: wiring and two counters.
template <class C>
struct MeanSteps {
    static typename C::acc_t centred(const ap_uint<C::LANES * C::IN_BITS>& word, unsigned l) {
#pragma HLS INLINE
        return typename C::acc_t(get_lane<typename C::in_t, C::IN_BITS>(word, l)) - typename C::acc_t(C::IN_ZP);
    }

    static void advance(unsigned& beat, unsigned& token) {
#pragma HLS INLINE
        if (beat == C::BEATS - 1) {
            beat = 0;
            token++;
        } else {
            beat++;
        }
    }
};

}  // namespace einhls

#endif  // EINHLS_STREAM_H

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

template <unsigned SIZE, int BITS, unsigned LANES>
void frame_read(hls::stream<ap_uint<LANES * BITS> >& in, ap_uint<BITS> frame[SIZE]) {
    EINHLS_CSIM_PROCESS();
beats:
    for (unsigned b = 0; b < beats(SIZE, LANES); b++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        const ap_uint<LANES * BITS> word = in.read();
    lanes:
        for (unsigned l = 0; l < LANES; l++) {
#pragma HLS UNROLL
            const unsigned e = b * LANES + l;
            if (e < SIZE) frame[e] = get_lane<ap_uint<BITS>, BITS>(word, l);
        }
    }
}

template <unsigned SIZE, int BITS, unsigned LANES>
void frame_write(const ap_uint<BITS> frame[SIZE], hls::stream<ap_uint<LANES * BITS> >& out) {
    EINHLS_CSIM_PROCESS();
beats:
    for (unsigned b = 0; b < beats(SIZE, LANES); b++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        ap_uint<LANES * BITS> word = 0;  // lanes past the end of the frame stay zero
    lanes:
        for (unsigned l = 0; l < LANES; l++) {
#pragma HLS UNROLL
            const unsigned e = b * LANES + l;
            if (e < SIZE) set_lane<BITS>(word, l, frame[e]);
        }
        out.write(word);
    }
}

// Re-packs a frame of SIZE elements from IN_LANES to OUT_LANES elements per beat, used where a
// producer's output beats differ from its consumer's input beats.  The frame is buffered whole
// (valid for any pair of lane counts) in a ping-pong buffer, so reading frame f + 1 overlaps
// writing frame f.  The cyclic partition by the larger lane count puts the lanes of one beat in
// distinct banks, so both loops reach II=1.
template <unsigned SIZE, int BITS, unsigned IN_LANES, unsigned OUT_LANES>
void repack(hls::stream<ap_uint<IN_LANES * BITS> >& in, hls::stream<ap_uint<OUT_LANES * BITS> >& out) {
#pragma HLS DATAFLOW
    static_assert(ap_fits(IN_LANES * BITS) && ap_fits(OUT_LANES * BITS), "repack: a beat exceeds AP_INT_MAX_W");
    const unsigned BANKS = IN_LANES > OUT_LANES ? IN_LANES : OUT_LANES;
    (void)BANKS;  // read only by the pragma (pragmas take plain constants, not expressions)
    ap_uint<BITS> frame[SIZE];
#pragma HLS ARRAY_PARTITION variable=frame cyclic factor=BANKS
    frame_read<SIZE, BITS, IN_LANES>(in, frame);
    frame_write<SIZE, BITS, OUT_LANES>(frame, out);
}

}  // namespace einhls

#endif  // EINHLS_STREAM_H

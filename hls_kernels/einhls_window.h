// einhls_window.h: the sliding-window generator of a convolution (Window of codegen/ir/conv.py)
// and the pass-through of a regrouping (Regroup), bit-exact with their references.
//
// window_stream: one call handles one frame: HEIGHT x WIDTH input pixels in raster order, each
// CB = CHANNELS / LANES beats, in; OH x OW windows out, each KH*KW taps (ky outer, kx inner) of
// CB beats, taps outside the image PAD in every lane.  A line buffer of ROWS rows (one window's
// rows plus a stride's) holds the input.  One loop of input + output beats, pipelined at II=1:
// each step sends an output beat when every pixel of the current window is in, else reads one.
//
// copy_beats: BEATS beats through (a Regroup is a wire: the element order does not change).
#ifndef EINHLS_WINDOW_H
#define EINHLS_WINDOW_H

#include <ap_int.h>
#include <hls_stream.h>

#include "einhls_csim.h"

namespace einhls {

// PAD in every lane of a beat.
template <class C>
ap_uint<C::LANES * C::BITS> window_pad_word() {
    ap_uint<C::LANES * C::BITS> word = 0;
pad_lanes:
    for (int l = 0; l < C::LANES; l++) {
#pragma HLS UNROLL
        word.range((l + 1) * C::BITS - 1, l * C::BITS) = ap_uint<C::BITS>((long long)C::PAD);
    }
    return word;
}

template <class C>
void window_stream(hls::stream<ap_uint<C::LANES * C::BITS> >& in,
                   hls::stream<ap_uint<C::LANES * C::BITS> >& out) {
    EINHLS_CSIM_PROCESS();
    typedef ap_uint<C::LANES * C::BITS> Word;
    static_assert(C::CHANNELS % C::LANES == 0, "the lanes divide the channels: a pixel is whole beats");
    static_assert((C::ROWS & (C::ROWS - 1)) == 0, "a power of two of buffered rows: the row is a mask, not a division");
    const int CB = C::CHANNELS / C::LANES;
    const int IN_BEATS = C::HEIGHT * C::WIDTH * CB;
    const int OUT_BEATS = C::OH * C::OW * C::KH * C::KW * CB;
    Word line[C::ROWS][C::WIDTH * CB];
    const Word pad_word = window_pad_word<C>();
    int w_row = 0, w_col = 0, w_beat = 0;                     // next input beat
    int oy = 0, ox = 0, ky = 0, kx = 0, r_beat = 0;           // next output beat
    int iy0 = -C::PT, ix0 = -C::PL;                           // top-left input pixel of the window
    // every step moves one beat: out when the window's last pixel is in, else in (the writer never
    // runs more than a window's rows plus a stride ahead of the reader, within the ROWS of the buffer)
steps:
    for (int step = 0; step < IN_BEATS + OUT_BEATS; step++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        const int last_row = iy0 + (C::KH - 1) * C::DH < C::HEIGHT - 1 ? iy0 + (C::KH - 1) * C::DH : C::HEIGHT - 1;
        const int last_col = ix0 + (C::KW - 1) * C::DW < C::WIDTH - 1 ? ix0 + (C::KW - 1) * C::DW : C::WIDTH - 1;
        const bool have = oy < C::OH && (w_row > last_row || (w_row == last_row && w_col > last_col));
        if (have) {
            const int iy = iy0 + ky * C::DH, ix = ix0 + kx * C::DW;
            const bool outside = iy < 0 || iy >= C::HEIGHT || ix < 0 || ix >= C::WIDTH;
            out.write(outside ? pad_word : line[outside ? 0 : iy & (C::ROWS - 1)][outside ? 0 : ix * CB + r_beat]);
            if (r_beat < CB - 1) {
                r_beat++;
            } else {
                r_beat = 0;
                if (kx < C::KW - 1) {
                    kx++;
                } else {
                    kx = 0;
                    if (ky < C::KH - 1) {
                        ky++;
                    } else {
                        ky = 0;
                        if (ox < C::OW - 1) {
                            ox++;
                            ix0 += C::SW;
                        } else {
                            ox = 0;
                            ix0 = -C::PL;
                            oy++;
                            iy0 += C::SH;
                        }
                    }
                }
            }
        } else {
            line[w_row & (C::ROWS - 1)][w_col * CB + w_beat] = in.read();
            if (w_beat < CB - 1) {
                w_beat++;
            } else {
                w_beat = 0;
                if (w_col < C::WIDTH - 1) {
                    w_col++;
                } else {
                    w_col = 0;
                    w_row++;
                }
            }
        }
    }
}

// One window of TAPS taps of CHANNELS / LANES beats in; per channel the largest code out (the
// beats of the last tap leave as they arrive).  Codes compare as numbers (SIGNED or not).
template <int CHANNELS, int LANES, int BITS, int SIGNED, int TAPS>
void tapmax_stream(hls::stream<ap_uint<LANES * BITS> >& in, hls::stream<ap_uint<LANES * BITS> >& out) {
    EINHLS_CSIM_PROCESS();
    static_assert(CHANNELS % LANES == 0, "the lanes divide the channels");
    const int GROUPS = CHANNELS / LANES;
    ap_uint<LANES * BITS> running[GROUPS];
    int group = 0, tap = 0;   // counters, not i % GROUPS and i / GROUPS
beats:
    for (int i = 0; i < TAPS * GROUPS; i++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        const ap_uint<LANES * BITS> word = in.read();
        ap_uint<LANES * BITS> larger = 0;
    lanes:
        for (int l = 0; l < LANES; l++) {
#pragma HLS UNROLL
            const ap_uint<BITS> a = word.range((l + 1) * BITS - 1, l * BITS);
            const ap_uint<BITS> b = running[group].range((l + 1) * BITS - 1, l * BITS);
            // BITS+1-bit signed numbers: the code's value whether the type is signed or not
            const ap_int<BITS + 1> a_s = SIGNED ? ap_int<BITS + 1>(ap_int<BITS>(a)) : ap_int<BITS + 1>(a);
            const ap_int<BITS + 1> b_s = SIGNED ? ap_int<BITS + 1>(ap_int<BITS>(b)) : ap_int<BITS + 1>(b);
            larger.range((l + 1) * BITS - 1, l * BITS) = (tap == 0 || a_s > b_s) ? a : b;
        }
        running[group] = larger;
        if (tap == TAPS - 1) out.write(larger);
        if (group < GROUPS - 1) {
            group++;
        } else {
            group = 0;
            tap++;
        }
    }
}

template <int W, unsigned BEATS>
void copy_beats(hls::stream<ap_uint<W> >& in, hls::stream<ap_uint<W> >& out) {
beats:
    for (unsigned b = 0; b < BEATS; b++) {
#pragma HLS PIPELINE II=1
        out.write(in.read());
    }
}

}  // namespace einhls

#endif  // EINHLS_WINDOW_H

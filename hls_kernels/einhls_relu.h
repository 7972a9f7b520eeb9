// einhls_relu.h: elementwise ReLU on integer codes, y = max(x, ZP) (ZP is the type's zero point,
// the code of real 0.0).  Same type in and out, LANES elements per beat.
#ifndef EINHLS_RELU_H
#define EINHLS_RELU_H

#include <ap_int.h>
#include <hls_stream.h>

#include "einhls_stream.h"

namespace einhls {

template <unsigned SIZE, unsigned LANES, class T, int BITS, long long ZP>
void relu_stream(hls::stream<ap_uint<LANES * BITS> >& in, hls::stream<ap_uint<LANES * BITS> >& out) {
    EINHLS_CSIM_PROCESS();
beats:
    for (unsigned b = 0; b < beats(SIZE, LANES); b++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        const ap_uint<LANES * BITS> word = in.read();
        ap_uint<LANES * BITS> result = 0;
    lanes:
        for (unsigned l = 0; l < LANES; l++) {
#pragma HLS UNROLL
            if (b * LANES + l < SIZE) {
                const T x = get_lane<T, BITS>(word, l);
                set_lane<BITS>(result, l, x < ZP ? T(ZP) : x);
            }
        }
        out.write(result);
    }
}

}  // namespace einhls

#endif  // EINHLS_RELU_H

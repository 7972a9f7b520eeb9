// einhls_axis.h: the AXI4-Stream side of an einhls top function.
//
// At the top level tdata is the internal packed beat rounded up to whole bytes (unused high bits
// zero).  Input tlast is accepted and ignored, since frames are counted; output tlast is set on the
// last beat of every frame, and tkeep / tstrb mark every byte valid.
//
// Vitis HLS declares ap_axiu in <ap_axi_sdata.h>.  The ap_types headers that ship outside Vitis
// (e.g. in the hls4ml package, used for C-simulation with plain g++) lack that header, so a small
// stand-in with the same member names is defined here, and only when the real header is absent.
#ifndef EINHLS_AXIS_H
#define EINHLS_AXIS_H

#include <ap_int.h>
#include <hls_stream.h>

#include "einhls_stream.h"

#if defined(__has_include)
#if __has_include(<ap_axi_sdata.h>)
#include <ap_axi_sdata.h>
#define EINHLS_HAVE_AP_AXI_SDATA 1
#endif
#endif

#ifndef EINHLS_HAVE_AP_AXI_SDATA
// Stand-in for Vitis' ap_axiu<WData, WUser, WId, WDest>, for C-simulation only: the members einhls
// uses (data, keep, strb, last).  einhls instantiates it with WUser = WId = WDest = 0, for which
// Vitis disables tuser / tid / tdest, so they are left out here.
template <int WData, int WUser, int WId, int WDest>
struct ap_axiu {
    ap_uint<WData> data;
    ap_uint<(WData + 7) / 8> keep;
    ap_uint<(WData + 7) / 8> strb;
    ap_uint<1> last;
};
#endif

namespace einhls {

// s_axis -> internal stream of W-bit packed beats (the low W bits of tdata).
template <int W, unsigned BEATS, class Packet>
void axis_to_stream(hls::stream<Packet>& in, hls::stream<ap_uint<W> >& out) {
    EINHLS_CSIM_PROCESS();
beats:
    for (unsigned b = 0; b < BEATS; b++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        const Packet packet = in.read();
        out.write(ap_uint<W>(packet.data.range(W - 1, 0)));
    }
}

// Internal stream of W-bit packed beats -> m_axis: BEATS beats a call (one token), tlast on the
// last beat of the frame's last token (TOKENS calls a frame; a counter kept across calls).
template <int W, unsigned BEATS, unsigned TOKENS = 1, class Packet>
void stream_to_axis(hls::stream<ap_uint<W> >& in, hls::stream<Packet>& out) {
    EINHLS_CSIM_PROCESS();
    static unsigned token = 0;
beats:
    for (unsigned b = 0; b < BEATS; b++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        Packet packet;
        packet.data = in.read();  // zero-extended to the byte-rounded tdata width
        packet.keep = -1;
        packet.strb = -1;
        packet.last = (b == BEATS - 1) && (token == TOKENS - 1);
        out.write(packet);
    }
    token = (token == TOKENS - 1) ? 0 : token + 1;
}

}  // namespace einhls

#endif  // EINHLS_AXIS_H

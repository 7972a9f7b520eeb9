// einhls_contract.h: contraction stages (tensor-train, Tucker, low rank) for Vitis HLS (docs/hardware.md).
//
// A contraction stage is [permutation buffer] -> Linear unit run R times per frame:
//
//     y[r, n] = requant(bias[n] + sum_k W[n, k] * x[r, k])        r < R, k < K, n < N
//
// where x[r, k] is element r * K + k of the (permuted) frame and y leaves in (r, n) order.  The
// Linear unit's configuration struct C (einhls_linear.h) describes one repeat; R is the number of
// repeats.  Its weights, bias and multipliers are the same for every r.
//
// Permutation buffer (permute<P>): the frame is the row-major tensor of a transposition's source
// shape; element e with digits d (digit 0 the innermost source axis, extent[d]) is written to
//
//     pos(e) = sum_d digit_d(e) * stride[d]
//
// of a ping-pong frame buffer, with one mixed-radix counter per input lane advanced by IN_LANES
// per beat (no address table, no division), and read back in order.  The RTL unit
// (rtl_kernels/einhls_permute.v) banks the buffer so IN_LANES writes never collide; here the
// buffer is partitioned cyclically by BANKS and the tool schedules the writes.
//
// P is a configuration struct written by the einhls emitter:
//   SIZE, BITS, IN_LANES, OUT_LANES, BANKS, DIGITS; the arrays extent[DIGITS], stride[DIGITS].
#ifndef EINHLS_CONTRACT_H
#define EINHLS_CONTRACT_H

#include <ap_int.h>
#include <hls_stream.h>

#include "einhls_linear.h"
#include "einhls_stream.h"

namespace einhls {

// ------------------------------------------------------------------ permutation buffer

template <class P>
void permute_write(hls::stream<ap_uint<P::IN_LANES * P::BITS> >& in, ap_uint<P::BITS> buf[P::SIZE],
                   const unsigned extent[P::DIGITS], const unsigned stride[P::DIGITS]) {
    unsigned dig[P::IN_LANES][P::DIGITS];   // digits of e = b * IN_LANES + l, per lane
#pragma HLS ARRAY_PARTITION variable=dig complete dim=0
    unsigned inc[P::DIGITS];                 // IN_LANES in the same mixed radix
#pragma HLS ARRAY_PARTITION variable=inc complete
init:
    for (unsigned d = 0, q = P::IN_LANES; d < P::DIGITS; d++) {
        inc[d] = q % extent[d];
        q /= extent[d];
    }
init_lanes:
    for (unsigned l = 0; l < P::IN_LANES; l++) {
        for (unsigned d = 0, q = l; d < P::DIGITS; d++) {
            dig[l][d] = q % extent[d];
            q /= extent[d];
        }
    }
beats:
    for (unsigned b = 0; b < beats(P::SIZE, P::IN_LANES); b++) {
#pragma HLS PIPELINE II=1
        const ap_uint<P::IN_LANES * P::BITS> word = in.read();
    lanes:
        for (unsigned l = 0; l < P::IN_LANES; l++) {
#pragma HLS UNROLL
            unsigned pos = 0;
            unsigned carry = 0;
        digits:
            for (unsigned d = 0; d < P::DIGITS; d++) {
#pragma HLS UNROLL
                pos += dig[l][d] * stride[d];
                unsigned t = dig[l][d] + inc[d] + carry;
                carry = t >= extent[d];
                dig[l][d] = carry ? t - extent[d] : t;
            }
            if (b * P::IN_LANES + l < P::SIZE) buf[pos] = get_lane<ap_uint<P::BITS>, P::BITS>(word, l);
        }
    }
}

// out = in permuted: written at generated addresses, read in order, as a DATAFLOW pair so the
// buffer is a ping-pong buffer (the next frame is written while this one is read).
template <class P>
void permute(hls::stream<ap_uint<P::IN_LANES * P::BITS> >& in, hls::stream<ap_uint<P::OUT_LANES * P::BITS> >& out,
             const unsigned extent[P::DIGITS], const unsigned stride[P::DIGITS]) {
#pragma HLS DATAFLOW
    const unsigned BANKS = P::BANKS;
    (void)BANKS;  // read only by the pragma
    ap_uint<P::BITS> buf[P::SIZE];
#pragma HLS ARRAY_PARTITION variable=buf cyclic factor=BANKS
    permute_write<P>(in, buf, extent, stride);
    frame_write<P::SIZE, P::BITS, P::OUT_LANES>(buf, out);
}

// ------------------------------------------------------------------ R repeats of a Linear unit

template <class C>
struct XWord {
    typedef ap_uint<C::SIMD * C::IN_BITS> t;
};

template <class C>
struct YWord {
    typedef ap_uint<C::PE * C::OUT_BITS> t;
};

// Inputs of each repeat as KF words of SIMD elements (zero padded).
template <class C, unsigned R>
void contract_read(hls::stream<ap_uint<C::IN_LANES * C::IN_BITS> >& in, hls::stream<typename XWord<C>::t>& xs) {
repeats:
    for (unsigned r = 0; r < R; r++) {
        typename C::in_t x[C::KF][C::GROUPS][C::GROUP];
#pragma HLS ARRAY_PARTITION variable=x complete dim=2
#pragma HLS ARRAY_PARTITION variable=x complete dim=3
        linear_read<C>(in, x);
    words:
        for (unsigned kf = 0; kf < C::KF; kf++) {
#pragma HLS PIPELINE II=1
            typename XWord<C>::t word = 0;
            for (unsigned s = 0; s < C::SIMD; s++) {
#pragma HLS UNROLL
                set_lane<C::IN_BITS>(word, s, x[kf][s / C::GROUP][s % C::GROUP]);
            }
            xs.write(word);
        }
    }
}

// The MAC array, NF * KF steps per repeat.  The input words of a repeat arrive during its first
// output fold (nf = 0) and are kept for the others.
template <class C, unsigned R>
void contract_compute(hls::stream<typename XWord<C>::t>& xs, hls::stream<typename YWord<C>::t>& ys,
                      const typename C::limb_t weights[C::PE][C::NF * C::KF][C::LIMBS],
                      const typename C::acc_t bias[C::PE][C::NF],
                      const typename C::mult_t mult[C::PE][C::MULT_DEPTH]) {
#pragma HLS ARRAY_PARTITION variable=weights complete dim=1
#pragma HLS ARRAY_PARTITION variable=weights complete dim=3
#pragma HLS ARRAY_PARTITION variable=bias complete dim=1
#pragma HLS ARRAY_PARTITION variable=mult complete dim=1
    typename XWord<C>::t xb[C::KF];
    typename C::acc_t acc[C::PE];
#pragma HLS ARRAY_PARTITION variable=acc complete
    typename YWord<C>::t row = 0;
repeats:
    for (unsigned r = 0; r < R; r++) {
    fold_out:
        for (unsigned nf = 0; nf < C::NF; nf++) {
        fold_in:
            for (unsigned kf = 0; kf < C::KF; kf++) {
#pragma HLS PIPELINE II=1
                typename XWord<C>::t xw;
                if (nf == 0) {
                    xw = xs.read();
                    xb[kf] = xw;
                } else {
                    xw = xb[kf];
                }
            pe:
                for (unsigned p = 0; p < C::PE; p++) {
#pragma HLS UNROLL
                    const typename C::word_t word = load_word<C>(weights[p][nf * C::KF + kf]);
                    typename C::acc_t dot = 0;   // modulo 2^ACC_BITS, exact at the end (einhls_linear.h)
                group:
                    for (unsigned g = 0; g < C::GROUPS; g++) {
#pragma HLS UNROLL
                    multiplier:
                        for (unsigned j = 0; j < C::NZ; j++) {
#pragma HLS UNROLL
                            const unsigned lo = (g * C::NZ + j) * C::SLOT_BITS;
                            const ap_uint<C::W_BITS> raw = word.range(lo + C::W_BITS - 1, lo);
                            const typename C::w_t w = typename C::w_t(raw);
                            const unsigned i = SlotIndex<C::IDX_BITS>::get(word, lo + C::W_BITS);
                            const typename C::in_t x = get_lane<typename C::in_t, C::IN_BITS>(xw, g * C::GROUP + i);
                            dot += w * x;
                        }
                    }
                    const typename C::acc_t sum = (kf == 0 ? bias[p][nf] : acc[p]) + dot;
                    acc[p] = sum;
                    if (kf == C::KF - 1) {
                        const typename C::out_t y = requantize<C::SHIFT, C::ZP, C::LO, C::HI, typename C::out_t>(
                            sum, mult[p][C::MULT_DEPTH == 1 ? 0 : nf]);
                        set_lane<C::OUT_BITS>(row, p, y);
                    }
                }
                if (kf == C::KF - 1) ys.write(row);
            }
        }
    }
}

// The N outputs of each repeat, OUT_LANES per beat.
template <class C, unsigned R>
void contract_write(hls::stream<typename YWord<C>::t>& ys, hls::stream<ap_uint<C::OUT_LANES * C::OUT_BITS> >& out) {
repeats:
    for (unsigned r = 0; r < R; r++) {
        typename C::out_t y[C::NF][C::PE];
#pragma HLS ARRAY_PARTITION variable=y complete dim=2
    rows:
        for (unsigned nf = 0; nf < C::NF; nf++) {
#pragma HLS PIPELINE II=1
            const typename YWord<C>::t row = ys.read();
            for (unsigned p = 0; p < C::PE; p++) {
#pragma HLS UNROLL
                y[nf][p] = get_lane<typename C::out_t, C::OUT_BITS>(row, p);
            }
        }
        linear_write<C>(y, out);
    }
}

// A contraction stage's MAC part: R repeats of the Linear unit C over one frame of R * K inputs.
template <class C, unsigned R>
void contract_linear(hls::stream<ap_uint<C::IN_LANES * C::IN_BITS> >& in,
                     hls::stream<ap_uint<C::OUT_LANES * C::OUT_BITS> >& out,
                     const typename C::limb_t weights[C::PE][C::NF * C::KF][C::LIMBS],
                     const typename C::acc_t bias[C::PE][C::NF],
                     const typename C::mult_t mult[C::PE][C::MULT_DEPTH]) {
#pragma HLS DATAFLOW
    static_assert(R >= 1, "at least one repeat");
    static_assert(ap_fits(C::WORD_BITS), "contract_linear: the weight word exceeds AP_INT_MAX_W");
    static_assert(ap_fits(C::SIMD * C::IN_BITS) && ap_fits(C::PE * C::OUT_BITS),
                  "contract_linear: an internal word (SIMD inputs or PE outputs) exceeds AP_INT_MAX_W");
    static_assert(ap_fits(C::IN_LANES * C::IN_BITS) && ap_fits(C::OUT_LANES * C::OUT_BITS),
                  "contract_linear: a stream beat exceeds AP_INT_MAX_W");
    hls::stream<typename XWord<C>::t> xs("xs");
#pragma HLS STREAM variable=xs depth=C::KF
    hls::stream<typename YWord<C>::t> ys("ys");
#pragma HLS STREAM variable=ys depth=C::NF
    contract_read<C, R>(in, xs);
    contract_compute<C, R>(xs, ys, weights, bias, mult);
    contract_write<C, R>(ys, out);
}

}  // namespace einhls

#endif  // EINHLS_CONTRACT_H

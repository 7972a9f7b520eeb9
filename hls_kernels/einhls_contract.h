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
// Permutation buffer (permute<P>), the architecture of rtl_kernels/einhls_permute.v: the frame is
// the row-major tensor of a transposition's source shape; element e with digits d (digit 0 the
// innermost source axis) goes to
//
//     pos(e) = sum_d digit_d(e) * stride(d)
//     row = pos >> LOG_BANKS,  col = pos mod BANKS,  address = row
//     bank = col (SKEW 0),  (col + SKEW_MUL * row) mod BANKS (SKEW 1),  col ^ fold(row) (SKEW 2)
//
// Each input lane keeps a mixed-radix counter (the digits of e = beat * IN_LANES + lane), advanced
// by IN_LANES per beat with carries against compile-time extents: no division, no address table.
// The emitter (codegen/schedule/contraction.py permute_layout) checked exhaustively that the
// lanes of every beat fall in distinct banks, so each bank, a memory of its own, takes at most one
// write per cycle: the write to bank b is a fixed port fed by a lane multiplexer (the RTL's
// per-bank "which lane writes me" loop), whatever the lane count.  Reads take OUT_LANES
// consecutive positions, a power of two dividing BANKS: one row, OUT_LANES distinct banks.  The
// buffer between the two processes is the DATAFLOW ping-pong (two frames), as in the RTL.
//
// P is a configuration struct written by the einhls emitter (templates/hls/params_permute.h.j2):
//   SIZE, BITS, IN_LANES, OUT_LANES, IN_BEATS, OUT_BEATS, LAST_IN_LANES, BANKS, LOG_BANKS, ROWS,
//   ROW_BITS, POS_BITS, DIGIT_BITS, SKEW, SKEW_MUL, DIGITS and the compile-time tables
//   extent(d), stride(d), inc(d) (IN_LANES in the mixed radix), init(l, d) (the digits of lane l).
//
// URAM = 1 (the scheduler's choice, codegen/schedule/contraction_memory.py): the buffer in
// UltraRAM as the RTL's einhls_permute URAM = 1 builds it: each element in a slot of SLOT_BITS
// (whole 9-bit URAM bytes), PACK consecutive rows of a bank reshaped into one word (a write sets
// one slot through the byte enables), BIND_STORAGE impl=uram.  P then also has SLOT_BITS and PACK.
//
// Repeats: every process of contract_linear is one pipelined loop over the whole frame (R repeats
// flattened, counters instead of division), so it rewinds from frame to frame.
#ifndef EINHLS_CONTRACT_H
#define EINHLS_CONTRACT_H

#include <ap_int.h>
#include <hls_stream.h>

#include "einhls_csim.h"
#include "einhls_linear.h"
#include "einhls_stream.h"

namespace einhls {

// ------------------------------------------------------------------ permutation buffer

template <class P>
ap_uint<P::LOG_BANKS + 1> permute_bank(const ap_uint<P::LOG_BANKS + 1>& col, const ap_uint<P::ROW_BITS>& row) {
#pragma HLS INLINE
    const ap_uint<P::LOG_BANKS + 1> mask = P::BANKS - 1;
    if (P::SKEW == 1) return (col + ap_uint<P::LOG_BANKS + 1>(P::SKEW_MUL) * ap_uint<P::LOG_BANKS + 1>(row)) & mask;
    if (P::SKEW == 2 && P::LOG_BANKS > 0) {
        ap_uint<P::LOG_BANKS + 1> fold = 0;
    groups:
        for (unsigned g = 0; g < P::ROW_BITS; g += (P::LOG_BANKS > 0 ? P::LOG_BANKS : 1)) {
#pragma HLS UNROLL
            fold ^= ap_uint<P::LOG_BANKS + 1>(row >> g) & mask;
        }
        return (col ^ fold) & mask;
    }
    return col & mask;
}

template <class P, class E>
void permute_write(hls::stream<ap_uint<P::IN_LANES * P::BITS> >& in, E buf[P::BANKS][P::ROWS]) {
    EINHLS_CSIM_PROCESS();
    // Digits of e = beat * IN_LANES + lane, per lane: registers, loaded with the lane's initial
    // digits on the first beat of each frame (a multiplexer, no init loop before the pipeline).
    ap_uint<P::DIGIT_BITS> dig[P::IN_LANES][P::DIGITS];
#pragma HLS ARRAY_PARTITION variable=dig complete dim=0
beats:
    for (unsigned b = 0; b < P::IN_BEATS; b++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        const ap_uint<P::IN_LANES * P::BITS> word = in.read();
        const bool first = b == 0, last = b == P::IN_BEATS - 1;
        ap_uint<P::LOG_BANKS + 1> bank[P::IN_LANES];
        ap_uint<P::ROW_BITS> row[P::IN_LANES];
#pragma HLS ARRAY_PARTITION variable=bank complete
#pragma HLS ARRAY_PARTITION variable=row complete
    lanes:
        for (unsigned l = 0; l < P::IN_LANES; l++) {
#pragma HLS UNROLL
            ap_uint<P::POS_BITS> pos = 0;
            bool carry = false;
        digits:
            for (unsigned d = 0; d < P::DIGITS; d++) {
#pragma HLS UNROLL
                const ap_uint<P::DIGIT_BITS> now = first ? ap_uint<P::DIGIT_BITS>(P::init(l, d)) : dig[l][d];
                pos += ap_uint<P::POS_BITS>(now) * P::stride(d);   // constant multiplier
                const ap_uint<P::DIGIT_BITS + 1> t = now + P::inc(d) + (carry ? 1 : 0);
                carry = t >= P::extent(d);
                dig[l][d] = ap_uint<P::DIGIT_BITS>(carry ? ap_uint<P::DIGIT_BITS + 1>(t - P::extent(d)) : t);
            }
            row[l] = pos >> P::LOG_BANKS;
            bank[l] = permute_bank<P>(ap_uint<P::LOG_BANKS + 1>(pos & (P::BANKS - 1)), row[l]);
        }
    banks:
        for (unsigned k = 0; k < P::BANKS; k++) {
#pragma HLS UNROLL
            bool write = false;
            ap_uint<P::ROW_BITS> addr = 0;
            ap_uint<P::BITS> data = 0;
        pick:
            for (unsigned l = 0; l < P::IN_LANES; l++) {   // at most one lane hits bank k (checked by the emitter)
#pragma HLS UNROLL
                const bool live = !last || l < P::LAST_IN_LANES;
                if (live && bank[l] == k) {
                    write = true;
                    addr = row[l];
                    data = get_lane<ap_uint<P::BITS>, P::BITS>(word, l);
                }
            }
#ifdef EINHLS_CSIM_CHECKS
            unsigned hits = 0;
            for (unsigned l = 0; l < P::IN_LANES; l++) hits += (!last || l < P::LAST_IN_LANES) && bank[l] == k;
            einhls_csim_check_one_port(hits, "permute bank");
#endif
            if (write) buf[k][addr] = data;
        }
    }
}

template <class P, class E>
void permute_read(const E buf[P::BANKS][P::ROWS], hls::stream<ap_uint<P::OUT_LANES * P::BITS> >& out) {
    EINHLS_CSIM_PROCESS();
    ap_uint<P::POS_BITS + 1> pos = 0;
beats:
    for (unsigned b = 0; b < P::OUT_BEATS; b++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        const ap_uint<P::ROW_BITS> row = pos >> P::LOG_BANKS;
        ap_uint<P::BITS> q[P::BANKS];
#pragma HLS ARRAY_PARTITION variable=q complete
    read_banks:
        for (unsigned k = 0; k < P::BANKS; k++) {
#pragma HLS UNROLL
            q[k] = ap_uint<P::BITS>(buf[k][row]);   // an UltraRAM slot's padding bits dropped
        }
        ap_uint<P::OUT_LANES * P::BITS> word = 0;   // lanes past the end of the frame stay zero
    lanes:
        for (unsigned l = 0; l < P::OUT_LANES; l++) {
#pragma HLS UNROLL
            const ap_uint<P::LOG_BANKS + 1> sel =
                permute_bank<P>(ap_uint<P::LOG_BANKS + 1>((pos & (P::BANKS - 1)) + l), row);
            ap_uint<P::BITS> v = 0;
        rotate:
            for (unsigned k = 0; k < P::BANKS; k++) {   // the read rotation: a BANKS:1 multiplexer
#pragma HLS UNROLL
                if (sel == k) v = q[k];
            }
            if (pos + l < P::SIZE) set_lane<P::BITS>(word, l, v);
        }
        out.write(word);
        pos += P::OUT_LANES;
    }
}

// The two frames of the buffer (the DATAFLOW ping-pong channel) in block RAM / LUT RAM, or
// (URAM) in UltraRAM, PACK rows of a bank a word.
template <class P, bool URAM>
struct PermuteRegion {
    static void run(hls::stream<ap_uint<P::IN_LANES * P::BITS> >& in,
                    hls::stream<ap_uint<P::OUT_LANES * P::BITS> >& out) {
#pragma HLS INLINE
        ap_uint<P::BITS> buf[P::BANKS][P::ROWS];
#pragma HLS ARRAY_PARTITION variable=buf complete dim=1
        permute_write<P>(in, buf);
        permute_read<P>(buf, out);
    }
};

template <class P>
struct PermuteRegion<P, true> {
    static void run(hls::stream<ap_uint<P::IN_LANES * P::BITS> >& in,
                    hls::stream<ap_uint<P::OUT_LANES * P::BITS> >& out) {
#pragma HLS INLINE
        static_assert(P::SLOT_BITS >= P::BITS && P::SLOT_BITS % 9 == 0, "a slot is whole 9-bit URAM bytes");
        static_assert(P::PACK * P::SLOT_BITS <= 72 || P::PACK == 1, "PACK slots fit a 72-bit URAM word");
        ap_uint<P::SLOT_BITS> buf[P::BANKS][P::ROWS];
#pragma HLS ARRAY_PARTITION variable=buf complete dim=1
#pragma HLS ARRAY_RESHAPE variable=buf cyclic factor=P::PACK dim=2
#pragma HLS BIND_STORAGE variable=buf type=ram_s2p impl=uram
        permute_write<P>(in, buf);
        permute_read<P>(buf, out);
    }
};

// out = in permuted: written at generated addresses into skewed banks, read in order; the buffer
// is the ping-pong channel of the DATAFLOW pair (the next frame is written while this one is read).
template <class P>
void permute(hls::stream<ap_uint<P::IN_LANES * P::BITS> >& in, hls::stream<ap_uint<P::OUT_LANES * P::BITS> >& out) {
#pragma HLS DATAFLOW
    static_assert((1u << P::LOG_BANKS) == P::BANKS && P::BANKS >= 1, "BANKS is a power of two");
    static_assert(P::BANKS % P::OUT_LANES == 0, "OUT_LANES divides BANKS: a read is one row");
    static_assert(P::ROWS * P::BANKS >= P::SIZE, "ROWS = ceil(SIZE / BANKS)");
    static_assert(P::IN_BEATS == (P::SIZE + P::IN_LANES - 1) / P::IN_LANES, "IN_BEATS = ceil(SIZE / IN_LANES)");
    static_assert(P::OUT_BEATS == (P::SIZE + P::OUT_LANES - 1) / P::OUT_LANES, "OUT_BEATS = ceil(SIZE / OUT_LANES)");
    static_assert(ap_fits(P::IN_LANES * P::BITS) && ap_fits(P::OUT_LANES * P::BITS), "permute: a beat exceeds AP_INT_MAX_W");
    PermuteRegion<P, P::URAM != 0>::run(in, out);
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

// One PE's dot product of a step: its weight word's slots times the input word's elements (an
// N:M slot picks its element by the index it holds), modulo 2^ACC_BITS, exact at the end
// (einhls_linear.h).  Both MAC arrays of a stage (contract_compute, contract_span_compute).
template <class C>
typename C::acc_t word_dot(const typename C::word_t& word, const typename XWord<C>::t& xw) {
#pragma HLS INLINE
    typename C::acc_t dot = 0;
group:
    for (unsigned g = 0; g < C::GROUPS; g++) {
#pragma HLS UNROLL
    multiplier:
        for (unsigned j = 0; j < C::NZ; j++) {
#pragma HLS UNROLL
            const unsigned t = g * C::NZ + j;
            const unsigned i = WeightSlot<C>::index(word, t);
            dot += WeightSlot<C>::weight(word, t) * get_lane<typename C::in_t, C::IN_BITS>(xw, g * C::GROUP + i);
        }
    }
    return dot;
}

// The frame (R repeats of K elements, IN_LANES per beat, IN_LANES dividing SIMD and K) as KF words
// of SIMD elements per repeat, zero padded: beat j of a word fills its lanes j * IN_LANES ...
// (a fixed wiring per j), the word leaves when full or when the repeat ends.
template <class C, unsigned R>
void contract_read(hls::stream<ap_uint<C::IN_LANES * C::IN_BITS> >& in, hls::stream<typename XWord<C>::t>& xs) {
    EINHLS_CSIM_PROCESS();
    const unsigned SLOTS = C::SIMD / C::IN_LANES;      // beats per word
    const unsigned BEATS = C::K / C::IN_LANES;         // beats per repeat
    typename XWord<C>::t word = 0;
    unsigned slot = 0, beat = 0;
beats:
    for (unsigned t = 0; t < R * BEATS; t++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        const ap_uint<C::IN_LANES * C::IN_BITS> data = in.read();
    slots:
        for (unsigned j = 0; j < SLOTS; j++) {
#pragma HLS UNROLL
            if (slot == j) word.range((j + 1) * C::IN_LANES * C::IN_BITS - 1, j * C::IN_LANES * C::IN_BITS) = data;
        }
        const bool end_of_repeat = beat == BEATS - 1;
        if (slot == SLOTS - 1 || end_of_repeat) {
            xs.write(word);
            word = 0;
            slot = 0;
        } else {
            slot++;
        }
        beat = end_of_repeat ? 0 : beat + 1;
    }
}

// The MAC array, NF * KF steps per repeat, R * NF * KF per frame in one flattened loop.  The input
// words of a repeat arrive during its first output fold (nf = 0) and are kept for the others.
template <class C, unsigned R>
void contract_compute(hls::stream<typename XWord<C>::t>& xs, hls::stream<typename YWord<C>::t>& ys,
                      const typename C::limb_t weights[C::PE][C::NF * C::KF][C::LIMBS],
                      const typename C::acc_t bias[C::PE][C::NF],
                      const typename C::mult_t mult[C::PE][C::MULT_DEPTH]) {
#pragma HLS ARRAY_PARTITION variable=weights complete dim=1
#pragma HLS ARRAY_PARTITION variable=weights complete dim=3
#pragma HLS ARRAY_PARTITION variable=bias complete dim=1
#pragma HLS ARRAY_PARTITION variable=mult complete dim=1
    EINHLS_CSIM_PROCESS();
    typename XWord<C>::t xb[C::KF];
    typename C::acc_t acc[C::PE];
#pragma HLS ARRAY_PARTITION variable=acc complete
    typename YWord<C>::t row = 0;
    unsigned nf = 0, kf = 0, step = 0;   // step = nf * KF + kf, the weight word
steps:
    for (unsigned t = 0; t < R * C::NF * C::KF; t++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
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
            const typename C::acc_t dot = word_dot<C>(load_word<C>(weights[p][step]), xw);
            typename C::out_t y = 0;
            if (FoldTail<C>::step(acc[p], dot, bias, mult, p, nf, kf, y)) set_lane<C::OUT_BITS>(row, p, y);
        }
        if (kf == C::KF - 1) ys.write(row);
        // advance (nf, kf) of this repeat; the next repeat starts again at (0, 0)
        if (kf == C::KF - 1) {
            kf = 0;
            nf = nf == C::NF - 1 ? 0 : nf + 1;
        } else {
            kf++;
        }
        step = (kf == 0 && nf == 0) ? 0 : step + 1;
    }
}

// The N outputs of each repeat, OUT_LANES per beat (OUT_LANES dividing PE, and N but for a span
// fold, whose OUT_LANES is PE: its last row, a partial beat, zero padded): beat j of a row
// takes its lanes j * OUT_LANES ... (a fixed wiring per j); a new row is read at j = 0.
template <class C, unsigned R>
void contract_write(hls::stream<typename YWord<C>::t>& ys, hls::stream<ap_uint<C::OUT_LANES * C::OUT_BITS> >& out) {
    EINHLS_CSIM_PROCESS();
    const unsigned SLOTS = C::PE / C::OUT_LANES;                           // beats per full row
    // beats of the last row and per repeat; a span fold's last row may end in a partial beat
    const unsigned LAST_SLOTS = (C::N - (C::NF - 1) * C::PE + C::OUT_LANES - 1) / C::OUT_LANES;
    const unsigned BEATS = (C::N + C::OUT_LANES - 1) / C::OUT_LANES;
    typename YWord<C>::t row = 0;
    unsigned slot = 0, nf = 0;
beats:
    for (unsigned t = 0; t < R * BEATS; t++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        if (slot == 0) row = ys.read();
        ap_uint<C::OUT_LANES * C::OUT_BITS> word = 0;
    slots:
        for (unsigned j = 0; j < SLOTS; j++) {
#pragma HLS UNROLL
            if (slot == j) word = row.range((j + 1) * C::OUT_LANES * C::OUT_BITS - 1, j * C::OUT_LANES * C::OUT_BITS);
        }
        out.write(word);
        const bool last_row = nf == C::NF - 1;
        if (slot == (last_row ? LAST_SLOTS : SLOTS) - 1) {
            slot = 0;
            nf = last_row ? 0 : nf + 1;
        } else {
            slot++;
        }
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
    static_assert(C::SIMD % C::IN_LANES == 0 && C::K % C::IN_LANES == 0,
                  "contract_linear: IN_LANES divides SIMD and K (the emitter re-packs otherwise)");
    static_assert(C::PE % C::OUT_LANES == 0 && C::N % C::OUT_LANES == 0,
                  "contract_linear: OUT_LANES divides PE and N (the emitter re-packs otherwise)");
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

// ------------------------------------------------------------------ span fold

// A span fold's input (rtl_kernels/einhls_linear.v REPS > 1): a frame's R * KF words, kept as
// xb[r][kf] for the MAC array (an array channel of the DATAFLOW region: ping-pong, so the next
// frame is read while this one computes).
template <class C, unsigned R>
void contract_span_buffer(hls::stream<typename XWord<C>::t>& xs, typename XWord<C>::t xb[R][C::KF]) {
    EINHLS_CSIM_PROCESS();
    unsigned rep = 0, kf = 0;
words:
    for (unsigned t = 0; t < R * C::KF; t++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        xb[rep][kf] = xs.read();
        if (kf == C::KF - 1) {
            kf = 0;
            rep++;
        } else {
            kf++;
        }
    }
}

// The MAC array of a span fold: C is the tiled layer of all R repeats (N = R * RN outputs, output
// o = r * RN + n computing W[n] x[r]; the emitter's weights, bias and multipliers are that
// layer's), so the PE slots run over the flattened outputs in NF groups of KF steps.  Group g's PE
// p computes output g * PE + p from repeat rep0 (the group's first) or rep0 + 1, where p >= RN -
// base (base: the group's first output within rep0).
template <class C, unsigned R, unsigned RN>
void contract_span_compute(const typename XWord<C>::t xb[R][C::KF], hls::stream<typename YWord<C>::t>& ys,
                           const typename C::limb_t weights[C::PE][C::NF * C::KF][C::LIMBS],
                           const typename C::acc_t bias[C::PE][C::NF],
                           const typename C::mult_t mult[C::PE][C::MULT_DEPTH]) {
#pragma HLS ARRAY_PARTITION variable=weights complete dim=1
#pragma HLS ARRAY_PARTITION variable=weights complete dim=3
#pragma HLS ARRAY_PARTITION variable=bias complete dim=1
#pragma HLS ARRAY_PARTITION variable=mult complete dim=1
    EINHLS_CSIM_PROCESS();
    static_assert(C::PE < RN && C::N == R * RN, "contract_span: PE < RN, the tiled layer has R * RN outputs");
    typename C::acc_t acc[C::PE];
#pragma HLS ARRAY_PARTITION variable=acc complete
    typename YWord<C>::t row = 0;
    unsigned nf = 0, kf = 0, step = 0, rep0 = 0, base = 0;
steps:
    for (unsigned t = 0; t < C::NF * C::KF; t++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        const typename XWord<C>::t here = xb[rep0][kf];
        const typename XWord<C>::t next = rep0 + 1 < R ? xb[rep0 + 1][kf] : here;   // the last group: padding
        const unsigned split = RN - base;
    pe:
        for (unsigned p = 0; p < C::PE; p++) {
#pragma HLS UNROLL
            const typename C::acc_t dot = word_dot<C>(load_word<C>(weights[p][step]), p >= split ? next : here);
            typename C::out_t y = 0;
            if (FoldTail<C>::step(acc[p], dot, bias, mult, p, nf, kf, y)) set_lane<C::OUT_BITS>(row, p, y);
        }
        if (kf == C::KF - 1) {
            ys.write(row);
            kf = 0;
            nf++;
            base += C::PE;
            if (base >= RN) {
                base -= RN;
                rep0++;
            }
        } else {
            kf++;
        }
        step++;
    }
}

// A contraction stage's span fold: the tiled layer C of R repeats of RN outputs over one frame of
// R * K inputs (codegen/schedule/contraction.py span_options), R * RN outputs in (r, n) order.
template <class C, unsigned R, unsigned RN>
void contract_span(hls::stream<ap_uint<C::IN_LANES * C::IN_BITS> >& in,
                   hls::stream<ap_uint<C::OUT_LANES * C::OUT_BITS> >& out,
                   const typename C::limb_t weights[C::PE][C::NF * C::KF][C::LIMBS],
                   const typename C::acc_t bias[C::PE][C::NF],
                   const typename C::mult_t mult[C::PE][C::MULT_DEPTH]) {
#pragma HLS DATAFLOW
    static_assert(R >= 2 && C::GROUP == 1, "contract_span: a dense layer of at least two repeats");
    static_assert(C::SIMD % C::IN_LANES == 0 && C::K % C::IN_LANES == 0,
                  "contract_span: IN_LANES divides SIMD and K (the emitter re-packs otherwise)");
    static_assert(C::OUT_LANES == C::PE, "contract_span: one row a beat (the emitter re-packs the stream)");
    static_assert(ap_fits(C::WORD_BITS), "contract_span: the weight word exceeds AP_INT_MAX_W");
    static_assert(ap_fits(C::SIMD * C::IN_BITS) && ap_fits(C::PE * C::OUT_BITS),
                  "contract_span: an internal word (SIMD inputs or PE outputs) exceeds AP_INT_MAX_W");
    hls::stream<typename XWord<C>::t> xs("xs");
#pragma HLS STREAM variable=xs depth=C::KF
    typename XWord<C>::t xb[R][C::KF];
#pragma HLS ARRAY_PARTITION variable=xb complete dim=1
    hls::stream<typename YWord<C>::t> ys("ys");
#pragma HLS STREAM variable=ys depth=C::NF
    contract_read<C, R>(in, xs);
    contract_span_buffer<C, R>(xs, xb);
    contract_span_compute<C, R, RN>(xb, ys, weights, bias, mult);
    contract_write<C, 1>(ys, out);   // the tiled layer's N = R * RN outputs, rows of PE
}

}  // namespace einhls

#endif  // EINHLS_CONTRACT_H

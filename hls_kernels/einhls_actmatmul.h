// einhls_actmatmul.h: the per-head product of two activations over a sequence (self-attention's
// scores Q K^T and context P V), exactly codegen/ir/attention.py ActMatMul.reference:
//
//     acc[i, h, n] = sum_k (a[i, h, k] - A_ZP) * (B[h, k, n] - B_ZP)
//     y[i, h, n]   = clamp(rne(acc * MULT, SHIFT) + ZP, LO, HI)
//
// The architecture of rtl_kernels/einhls_actmatmul.v (read its header for the layouts): one call
// of einhls::actmatmul is one sequence of TOKENS tokens on each stream, a DATAFLOW region of four
// processes, each one pipelined loop at II = 1:
//
//   actmatmul_read_a   a beats (A_LANES codes) -> words of SIMD codes, one row after the other
//   actmatmul_load_b   b beats (B_LANES codes) -> the b buffer: NB banks of D words of WC codes,
//                      codes stored centred; the buffer is an array between two dataflow
//                      processes, so HLS makes it the ping-pong buffer: the next sequence's b
//                      loads while this sequence's rows are computed
//   actmatmul_rows     TOKENS x D steps (h, nf, kf, kf innermost), SIMD x PE products per step;
//                      a row's words are read at nf = 0 and kept in a row buffer for nf > 0;
//                      PE requantized outputs every KF steps
//   actmatmul_write    words of PE outputs -> beats of OUT_LANES codes
//
// D = HEADS * NF * KF is both the steps per row and the words per bank: step (h, nf, kf) reads
// word h*NF*KF + nf*KF + kf of every bank, bank p code s (nt) or bank s code p (nn), so the SIMD x
// PE operands of a step come from distinct banks and code partitions.  Lane conversions move
// G = gcd(lanes, word) codes per iteration (a beat is read every LANES/G iterations, a word is
// complete every WORD/G iterations), so every write lands in distinct code partitions and no
// address needs a run-time division: positions are counters and compile-time strides.
//
// The interval per sequence is that of the slowest process: TOKENS x max(D, HEADS*INNER/GA,
// FB/GB, HEADS*COLS/GO) cycles (C-sim counts the iterations: EINHLS_CSIM_CYCLES).
//
// B_SEQS = 1 (one sequence of b, half the buffer): actmatmul_load_b and actmatmul_rows become one
// process, actmatmul_single, whose one pipelined loop first loads the sequence's b and then runs
// its rows, so the buffer is a local array (no ping-pong) and the next sequence's b loads only
// after this one's last row: TOKENS x (FB/GB + D) cycles a sequence.
//
// C is a configuration struct written by the einhls emitter (templates/hls/params_nonlinear.h.j2
// via codegen/emit/attention.py hls_unit):
//   HEADS, INNER, COLS, TOKENS, LAYOUT (0 nt, 1 nn), SIMD, PE, KF, NF, D, NB, WC, FA, FB, FO
//   B_SEQS                                            sequences of b held: 2 (ping-pong) or 1
//   B_URAM                                            1: the b buffer bound to UltraRAM (each bank's
//                                                     WC codes reshaped into one word)
//   A_LANES, B_LANES, OUT_LANES, GA, GB, GO          lanes and the codes moved per iteration
//   LO_N, LO_STRIDE, HI_STRIDE, G_STRIDE, GROUPS      the b loader's address walk (as the Verilog)
//   A_BITS, B_BITS, OUT_BITS, SHIFT                   widths, requant shift
//   A_ZP, B_ZP, MULT, ZP, LO, HI                      zero points and requantization constants
//   a_t, b_t, ac_t, bc_t, acc_t, mult_t, out_t        codes, centred codes (one bit wider), the
//                                                     exact accumulator, the multiplier, outputs
#ifndef EINHLS_ACTMATMUL_H
#define EINHLS_ACTMATMUL_H

#include <ap_int.h>
#include <hls_stream.h>

#include "einhls_csim.h"
#include "einhls_requant.h"
#include "einhls_stream.h"

namespace einhls {

// Operand B[h, kf*SIMD + s, nf*PE + p] of the step reading word `step`: bank p code s (nt) or
// bank s code p (nn).  A struct so that each layout indexes only its own bounds.
template <int LAYOUT>
struct BOperand {
    template <class C>
    static typename C::bc_t get(const typename C::bc_t bbuf[C::NB][C::D][C::WC], unsigned step, unsigned p,
                                unsigned s) {
#pragma HLS INLINE
        return bbuf[p][step][s];
    }
};

template <>
struct BOperand<1> {
    template <class C>
    static typename C::bc_t get(const typename C::bc_t bbuf[C::NB][C::D][C::WC], unsigned step, unsigned p,
                                unsigned s) {
#pragma HLS INLINE
        return bbuf[s][step][p];
    }
};

// Words of SIMD codes of every a row, in order h * KF + kf.
template <class C>
void actmatmul_read_a(hls::stream<ap_uint<C::A_LANES * C::A_BITS> >& in,
                      hls::stream<ap_uint<C::SIMD * C::A_BITS> >& words) {
    EINHLS_CSIM_PROCESS();
    const unsigned CHUNKS = C::TOKENS * C::FA / C::GA;
    const unsigned BEAT_CHUNKS = C::A_LANES / C::GA, WORD_CHUNKS = C::SIMD / C::GA;
    const unsigned CW = C::GA * C::A_BITS, WW = C::SIMD * C::A_BITS;
    ap_uint<C::A_LANES * C::A_BITS> beat = 0;
    ap_uint<C::SIMD * C::A_BITS> word = 0;
    unsigned sub = 0, pos = 0;
chunks:
    for (unsigned i = 0; i < CHUNKS; i++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        if (sub == 0) beat = in.read();
        const ap_uint<C::GA * C::A_BITS> chunk = beat.range(CW - 1, 0);
        if (BEAT_CHUNKS > 1) beat = beat >> CW;
        // chunks enter at the top and move down: after WORD_CHUNKS of them the first is lowest
        if (WORD_CHUNKS > 1) {
            word = (word >> CW) | (ap_uint<C::SIMD * C::A_BITS>(chunk) << (WW - CW));
        } else {
            word = chunk;
        }
        if (pos == WORD_CHUNKS - 1) words.write(word);
        sub = (sub == BEAT_CHUNKS - 1) ? 0 : sub + 1;
        pos = (pos == WORD_CHUNKS - 1) ? 0 : pos + 1;
    }
}

// The b loader's walk: token j to bank j % NB, its word (hi, lo) to address hi * HI_STRIDE +
// lo * LO_STRIDE + (j / NB) * G_STRIDE (counters, as the Verilog), GB codes a call.
template <class C>
struct BLoader {
    static const unsigned CHUNKS = C::TOKENS * C::FB / C::GB;   // calls of step() a sequence
    ap_uint<C::B_LANES * C::B_BITS> beat;
    unsigned sub, code, lo, hi, sel, grp, addr, grp_base;

    BLoader() : beat(0), sub(0), code(0), lo(0), hi(0), sel(0), grp(0), addr(0), grp_base(0) {}

    void step(hls::stream<ap_uint<C::B_LANES * C::B_BITS> >& in, typename C::bc_t bbuf[C::NB][C::D][C::WC]) {
#pragma HLS INLINE
        const unsigned BEAT_CHUNKS = C::B_LANES / C::GB;
        const unsigned CW = C::GB * C::B_BITS;
        if (sub == 0) beat = in.read();
        const ap_uint<C::GB * C::B_BITS> chunk = beat.range(CW - 1, 0);
        if (BEAT_CHUNKS > 1) beat = beat >> CW;
    lanes:
        for (unsigned l = 0; l < C::GB; l++) {
#pragma HLS UNROLL
            const typename C::b_t v = get_lane<typename C::b_t, C::B_BITS>(chunk, l);
            bbuf[sel][addr][code + l] = typename C::bc_t(v) - typename C::bc_t(C::B_ZP);
        }
        sub = (sub == BEAT_CHUNKS - 1) ? 0 : sub + 1;
        if (code + C::GB < C::WC) {
            code += C::GB;
        } else {                                   // the word is complete: walk to the next one
            code = 0;
            if (lo == C::LO_N - 1 && hi == C::HEADS - 1) {       // last word of a token
                lo = 0;
                hi = 0;
                if (sel == C::NB - 1) {
                    sel = 0;
                    grp++;
                    grp_base += C::G_STRIDE;
                    addr = grp_base;
                } else {
                    sel++;
                    addr = grp_base;
                }
            } else if (lo == C::LO_N - 1) {
                lo = 0;
                hi++;
                addr += C::HI_STRIDE - (C::LO_N - 1) * C::LO_STRIDE;
            } else {
                lo++;
                addr += C::LO_STRIDE;
            }
        }
    }
};

// One sequence of b into the banks, centred (ping-pong: its own dataflow process).
template <class C>
void actmatmul_load_b(hls::stream<ap_uint<C::B_LANES * C::B_BITS> >& in,
                      typename C::bc_t bbuf[C::NB][C::D][C::WC]) {
    EINHLS_CSIM_PROCESS();
    BLoader<C> loader;
chunks:
    for (unsigned i = 0; i < BLoader<C>::CHUNKS; i++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        loader.step(in, bbuf);
    }
}

// The MAC array's counters (its a row, kept for nf > 0, and its accumulators are the caller's
// arrays, partitioned there).
struct RowState {
    unsigned kf, nf, h, step, a_head;
    RowState() : kf(0), nf(0), h(0), step(0), a_head(0) {}
};

// One step of the MAC array: SIMD x PE products of the step (h, nf, kf), PE requantized outputs
// every KF steps.
template <class C>
void actmatmul_step(hls::stream<ap_uint<C::SIMD * C::A_BITS> >& a_words,
                    const typename C::bc_t bbuf[C::NB][C::D][C::WC],
                    hls::stream<ap_uint<C::PE * C::OUT_BITS> >& y_words, RowState& st,
                    typename C::ac_t row[C::HEADS * C::KF][C::SIMD], typename C::acc_t acc[C::PE]) {
#pragma HLS INLINE
    const unsigned a_idx = st.a_head + st.kf;
    typename C::ac_t x[C::SIMD];
#pragma HLS ARRAY_PARTITION variable=x complete
    if (st.nf == 0) {
        const ap_uint<C::SIMD * C::A_BITS> word = a_words.read();
    centre:
        for (unsigned s = 0; s < C::SIMD; s++) {
#pragma HLS UNROLL
            const typename C::a_t v = get_lane<typename C::a_t, C::A_BITS>(word, s);
            x[s] = typename C::ac_t(v) - typename C::ac_t(C::A_ZP);
            row[a_idx][s] = x[s];
        }
    } else {
    keep:
        for (unsigned s = 0; s < C::SIMD; s++) {
#pragma HLS UNROLL
            x[s] = row[a_idx][s];
        }
    }
    ap_uint<C::PE * C::OUT_BITS> y = 0;
pe:
    for (unsigned p = 0; p < C::PE; p++) {
#pragma HLS UNROLL
        // sums modulo 2^ACC_BITS (ap_int wraps); the final dot product fits acc_t exactly
        typename C::acc_t dot = 0;
    simd:
        for (unsigned s = 0; s < C::SIMD; s++) {
#pragma HLS UNROLL
            const typename C::bc_t b = BOperand<C::LAYOUT>::template get<C>(bbuf, st.step, p, s);
            dot += x[s] * b;
        }
        const typename C::acc_t sum = (st.kf == 0 ? typename C::acc_t(0) : acc[p]) + dot;
        acc[p] = sum;
        set_lane<C::OUT_BITS>(y, p, requantize<C::SHIFT, C::ZP, C::LO, C::HI, typename C::out_t>(
            sum, typename C::mult_t(C::MULT)));
    }
    if (st.kf == C::KF - 1) y_words.write(y);
    st.step = (st.step == C::D - 1) ? 0 : st.step + 1;
    if (st.kf == C::KF - 1) {
        st.kf = 0;
        if (st.nf == C::NF - 1) {
            st.nf = 0;
            if (st.h == C::HEADS - 1) {
                st.h = 0;
                st.a_head = 0;
            } else {
                st.h++;
                st.a_head += C::KF;
            }
        } else {
            st.nf++;
        }
    } else {
        st.kf++;
    }
}

// The MAC array: every a row of the sequence against the whole b buffer.
template <class C>
void actmatmul_rows(hls::stream<ap_uint<C::SIMD * C::A_BITS> >& a_words,
                    const typename C::bc_t bbuf[C::NB][C::D][C::WC],
                    hls::stream<ap_uint<C::PE * C::OUT_BITS> >& y_words) {
    EINHLS_CSIM_PROCESS();
    typename C::ac_t row[C::HEADS * C::KF][C::SIMD];   // the a row, kept for nf > 0
#pragma HLS ARRAY_PARTITION variable=row complete dim=2
    typename C::acc_t acc[C::PE];
#pragma HLS ARRAY_PARTITION variable=acc complete
    RowState st;
    const unsigned STEPS = C::TOKENS * C::D;
steps:
    for (unsigned i = 0; i < STEPS; i++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        actmatmul_step<C>(a_words, bbuf, y_words, st, row, acc);
    }
}

// B_SEQS = 1: one sequence of b loaded, then its rows, in one loop over a buffer of one sequence
// (a local array: no ping-pong), so the next sequence's b waits for this one's last row.  One
// iteration of that loop (the caller declares the buffer, with its storage):
template <class C>
void actmatmul_single_iteration(unsigned i, hls::stream<ap_uint<C::B_LANES * C::B_BITS> >& b,
                                hls::stream<ap_uint<C::SIMD * C::A_BITS> >& a_words,
                                hls::stream<ap_uint<C::PE * C::OUT_BITS> >& y_words,
                                typename C::bc_t bbuf[C::NB][C::D][C::WC], BLoader<C>& loader, RowState& st,
                                typename C::ac_t row[C::HEADS * C::KF][C::SIMD], typename C::acc_t acc[C::PE]) {
#pragma HLS INLINE
    if (i < BLoader<C>::CHUNKS) {
        loader.step(b, bbuf);
    } else {
        actmatmul_step<C>(a_words, bbuf, y_words, st, row, acc);
    }
}

// The buffer in block RAM (or LUT RAM): a bank's codes in separate partitions.
template <class C>
void actmatmul_single(hls::stream<ap_uint<C::B_LANES * C::B_BITS> >& b,
                      hls::stream<ap_uint<C::SIMD * C::A_BITS> >& a_words,
                      hls::stream<ap_uint<C::PE * C::OUT_BITS> >& y_words) {
    EINHLS_CSIM_PROCESS();
    typename C::bc_t bbuf[C::NB][C::D][C::WC];
#pragma HLS ARRAY_PARTITION variable=bbuf complete dim=1
#pragma HLS ARRAY_PARTITION variable=bbuf complete dim=3
    BLoader<C> loader;
    typename C::ac_t row[C::HEADS * C::KF][C::SIMD];
#pragma HLS ARRAY_PARTITION variable=row complete dim=2
    typename C::acc_t acc[C::PE];
#pragma HLS ARRAY_PARTITION variable=acc complete
    RowState st;
    const unsigned ITERATIONS = BLoader<C>::CHUNKS + C::TOKENS * C::D;
load_then_rows:
    for (unsigned i = 0; i < ITERATIONS; i++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        actmatmul_single_iteration<C>(i, b, a_words, y_words, bbuf, loader, st, row, acc);
    }
}

// B_URAM = 1: a bank's WC codes reshaped into one word (the Verilog's bank word, WC x (B_BITS+1)
// bits) and bound to UltraRAM, one memory per bank.
template <class C>
void actmatmul_single_uram(hls::stream<ap_uint<C::B_LANES * C::B_BITS> >& b,
                           hls::stream<ap_uint<C::SIMD * C::A_BITS> >& a_words,
                           hls::stream<ap_uint<C::PE * C::OUT_BITS> >& y_words) {
    EINHLS_CSIM_PROCESS();
    typename C::bc_t bbuf[C::NB][C::D][C::WC];
#pragma HLS ARRAY_PARTITION variable=bbuf complete dim=1
#pragma HLS ARRAY_RESHAPE variable=bbuf complete dim=3
#pragma HLS BIND_STORAGE variable=bbuf type=ram_s2p impl=uram
    BLoader<C> loader;
    typename C::ac_t row[C::HEADS * C::KF][C::SIMD];
#pragma HLS ARRAY_PARTITION variable=row complete dim=2
    typename C::acc_t acc[C::PE];
#pragma HLS ARRAY_PARTITION variable=acc complete
    RowState st;
    const unsigned ITERATIONS = BLoader<C>::CHUNKS + C::TOKENS * C::D;
load_then_rows:
    for (unsigned i = 0; i < ITERATIONS; i++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        actmatmul_single_iteration<C>(i, b, a_words, y_words, bbuf, loader, st, row, acc);
    }
}

// Words of PE outputs -> beats of OUT_LANES codes.
template <class C>
void actmatmul_write(hls::stream<ap_uint<C::PE * C::OUT_BITS> >& y_words,
                     hls::stream<ap_uint<C::OUT_LANES * C::OUT_BITS> >& out) {
    EINHLS_CSIM_PROCESS();
    const unsigned CHUNKS = C::TOKENS * C::FO / C::GO;
    const unsigned WORD_CHUNKS = C::PE / C::GO, BEAT_CHUNKS = C::OUT_LANES / C::GO;
    const unsigned CW = C::GO * C::OUT_BITS, BW = C::OUT_LANES * C::OUT_BITS;
    ap_uint<C::PE * C::OUT_BITS> word = 0;
    ap_uint<C::OUT_LANES * C::OUT_BITS> beat = 0;
    unsigned sub = 0, pos = 0;
chunks:
    for (unsigned i = 0; i < CHUNKS; i++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        if (sub == 0) word = y_words.read();
        const ap_uint<C::GO * C::OUT_BITS> chunk = word.range(CW - 1, 0);
        if (WORD_CHUNKS > 1) word = word >> CW;
        if (BEAT_CHUNKS > 1) {
            beat = (beat >> CW) | (ap_uint<C::OUT_LANES * C::OUT_BITS>(chunk) << (BW - CW));
        } else {
            beat = chunk;
        }
        if (pos == BEAT_CHUNKS - 1) out.write(beat);
        sub = (sub == WORD_CHUNKS - 1) ? 0 : sub + 1;
        pos = (pos == BEAT_CHUNKS - 1) ? 0 : pos + 1;
    }
}

// The one-sequence process in block RAM or UltraRAM, chosen at compile time (a dataflow region
// holds no run-time branch between processes).
template <class C, bool URAM>
struct SingleProcess {
    static void run(hls::stream<ap_uint<C::B_LANES * C::B_BITS> >& b,
                    hls::stream<ap_uint<C::SIMD * C::A_BITS> >& a_words,
                    hls::stream<ap_uint<C::PE * C::OUT_BITS> >& y_words) {
#pragma HLS INLINE
        actmatmul_single<C>(b, a_words, y_words);
    }
};

template <class C>
struct SingleProcess<C, true> {
    static void run(hls::stream<ap_uint<C::B_LANES * C::B_BITS> >& b,
                    hls::stream<ap_uint<C::SIMD * C::A_BITS> >& a_words,
                    hls::stream<ap_uint<C::PE * C::OUT_BITS> >& y_words) {
#pragma HLS INLINE
        actmatmul_single_uram<C>(b, a_words, y_words);
    }
};

// The dataflow region of one sequence, ping-pong b buffer (B_SEQS = 2) or one (B_SEQS = 1), in
// block RAM or (URAM = true, C::B_URAM) UltraRAM.
template <class C, int B_SEQS, bool URAM>
struct ActMatMulRegion {
    static void run(hls::stream<ap_uint<C::A_LANES * C::A_BITS> >& a, hls::stream<ap_uint<C::B_LANES * C::B_BITS> >& b,
                    hls::stream<ap_uint<C::OUT_LANES * C::OUT_BITS> >& out) {
#pragma HLS DATAFLOW
        hls::stream<ap_uint<C::SIMD * C::A_BITS> > a_words("a_words");
#pragma HLS STREAM variable=a_words depth=2
        hls::stream<ap_uint<C::PE * C::OUT_BITS> > y_words("y_words");
#pragma HLS STREAM variable=y_words depth=2
        typename C::bc_t bbuf[C::NB][C::D][C::WC];
#pragma HLS ARRAY_PARTITION variable=bbuf complete dim=1
#pragma HLS ARRAY_PARTITION variable=bbuf complete dim=3
        actmatmul_read_a<C>(a, a_words);
        actmatmul_load_b<C>(b, bbuf);
        actmatmul_rows<C>(a_words, bbuf, y_words);
        actmatmul_write<C>(y_words, out);
    }
};

template <class C>
struct ActMatMulRegion<C, 2, true> {
    static void run(hls::stream<ap_uint<C::A_LANES * C::A_BITS> >& a, hls::stream<ap_uint<C::B_LANES * C::B_BITS> >& b,
                    hls::stream<ap_uint<C::OUT_LANES * C::OUT_BITS> >& out) {
#pragma HLS DATAFLOW
        hls::stream<ap_uint<C::SIMD * C::A_BITS> > a_words("a_words");
#pragma HLS STREAM variable=a_words depth=2
        hls::stream<ap_uint<C::PE * C::OUT_BITS> > y_words("y_words");
#pragma HLS STREAM variable=y_words depth=2
        // the ping-pong channel between the loader and the rows, each bank one word of WC codes
        typename C::bc_t bbuf[C::NB][C::D][C::WC];
#pragma HLS ARRAY_PARTITION variable=bbuf complete dim=1
#pragma HLS ARRAY_RESHAPE variable=bbuf complete dim=3
#pragma HLS BIND_STORAGE variable=bbuf type=ram_s2p impl=uram
        actmatmul_read_a<C>(a, a_words);
        actmatmul_load_b<C>(b, bbuf);
        actmatmul_rows<C>(a_words, bbuf, y_words);
        actmatmul_write<C>(y_words, out);
    }
};

template <class C, bool URAM>
struct ActMatMulRegion<C, 1, URAM> {
    static void run(hls::stream<ap_uint<C::A_LANES * C::A_BITS> >& a, hls::stream<ap_uint<C::B_LANES * C::B_BITS> >& b,
                    hls::stream<ap_uint<C::OUT_LANES * C::OUT_BITS> >& out) {
#pragma HLS DATAFLOW
        hls::stream<ap_uint<C::SIMD * C::A_BITS> > a_words("a_words");
#pragma HLS STREAM variable=a_words depth=2
        hls::stream<ap_uint<C::PE * C::OUT_BITS> > y_words("y_words");
#pragma HLS STREAM variable=y_words depth=2
        actmatmul_read_a<C>(a, a_words);
        SingleProcess<C, URAM>::run(b, a_words, y_words);
        actmatmul_write<C>(y_words, out);
    }
};

// One sequence: TOKENS tokens of a and of b in, TOKENS tokens of y out.
template <class C>
void actmatmul(hls::stream<ap_uint<C::A_LANES * C::A_BITS> >& a, hls::stream<ap_uint<C::B_LANES * C::B_BITS> >& b,
               hls::stream<ap_uint<C::OUT_LANES * C::OUT_BITS> >& out) {
#pragma HLS INLINE
    static_assert(C::KF * C::SIMD == C::INNER && C::NF * C::PE == C::COLS, "SIMD and PE divide inner and cols");
    static_assert(C::D == C::HEADS * C::NF * C::KF, "D is the steps of a row");
    static_assert(C::NB * C::WC == C::SIMD * C::PE, "NB banks of WC codes hold a step's operands");
    static_assert(C::FA % C::A_LANES == 0 && C::FB % C::B_LANES == 0 && C::FO % C::OUT_LANES == 0,
                  "lanes divide the features per token");
    static_assert(C::A_LANES % C::GA == 0 && C::SIMD % C::GA == 0 && C::B_LANES % C::GB == 0 &&
                  C::WC % C::GB == 0 && C::PE % C::GO == 0 && C::OUT_LANES % C::GO == 0,
                  "GA, GB, GO divide the lanes and words they convert");
    static_assert(ap_fits(C::A_LANES * C::A_BITS) && ap_fits(C::B_LANES * C::B_BITS) &&
                  ap_fits(C::OUT_LANES * C::OUT_BITS) && ap_fits(C::SIMD * C::A_BITS) &&
                  ap_fits(C::PE * C::OUT_BITS), "actmatmul: a beat or word exceeds AP_INT_MAX_W");
    static_assert(C::B_SEQS == 1 || C::B_SEQS == 2, "one or two sequences of b");
    ActMatMulRegion<C, C::B_SEQS, C::B_URAM != 0>::run(a, b, out);
}

}  // namespace einhls

#endif  // EINHLS_ACTMATMUL_H

// einhls_butterfly.h: the butterfly unit, P parallel butterfly units over banked ping-pong buffers
// (docs/hardware.md, "Butterfly unit"; the same layout, issue order and arithmetic as
// rtl_kernels/einhls_butterfly.v, defined by codegen/ir/butterfly.py and codegen/schedule/butterfly.py).
//
// Elements: the K input codes are element local = 0..K-1 of a vector of N, copied STACKS times
// (e = stack * N + local, NT = STACKS * N); padding never matters (its stage-0 twiddles are zero).
// Stage s (stride 2^a, a = stride_log[s]) pairs e0 = ins0(q, a) and e1 = e0 + 2^a, q = c * P + u
// for unit u in cycle c (CT = NT / (2P) cycles per stage), and computes
//     acc_j = t[0][j] * x0 + t[1][j] * x1 + bias_j                 (4 multipliers, 2 adders)
//     y_j   = clamp(rne(acc_j * mult[s], shift[s]) + zp[s], lo[s], hi[s])
// The output is the first M elements of the last stage.
//
// Banks: 2P banks; element e lives in bank (local mod P) + P * parity(local >> p) (p = log2 P), at
// address stack * C1 + (local >> (p + 1)), C1 = N / (2P).  The 2P elements of any cycle, at any
// stride, are in 2P different banks, so with the bank dimension partitioned every cycle is one
// access per bank (tests/test_butterfly.py counts the conflicts: none).  A word of 2P consecutive
// elements (what the loader writes and the drain reads) is one per bank too: lane j of word w is
// in bank j ^ (parity(w) << p), a 2:1 choice per bank.
//
// Frames in flight: the Verilog time-shares its P units between up to 8 frames, issuing a stage of
// one while another waits its gap.  A dataflow process here is called once per frame, so instead
// the stages are cut into groups of consecutive stages (codegen/emit/butterfly.py
// hls_stage_groups), each group one process with its own P units (P is the HLS unit's, chosen so
// the slowest process meets the schedule's cycles per frame) and a ping-pong buffer on each side:
// group g works on frame f while group g + 1 works on frame f - 1.
//
// Processes (one DATAFLOW region, generated per unit in its params header, each one pipelined loop):
//   lanes in   IN_LANES -> 2P elements per beat (einhls_lanes in the RTL)
//   load       one word of 2P elements per cycle into the IN buffer x (C1 cycles)
//   compute    one per stage group G: G::ISSUE = G::STAGES * CT + its inner gaps cycles, one
//              (stage, cycle) per cycle, then gap[s] idle cycles after stage s, as the RTL's issue
//              logic runs one frame; it reads the previous group's buffer and writes the next one
//   drain      one word of 2P elements per cycle out of the OUT buffer y (OUT_WORDS cycles)
//   lanes out  2P -> OUT_LANES elements per beat
//
// Read after write through the working buffer wk: stage s + 1 reads what stage s wrote.  The gaps
// (codegen/schedule/butterfly.py stage_gaps) make every such read come RAW_DISTANCE or more issue
// cycles after the write, so the loop declares the true dependence with that distance; the tool
// then keeps the write-to-read path within RAW_DISTANCE cycles (or raises the II), never reorders
// past it.  The C-sim build (EINHLS_CSIM_CHECKS) records the issue cycle of every write and stops
// on a read closer than RAW_DISTANCE, which plain C-sim (sequential) could never notice.
//
// Operand selection without run-time indices: unit u reads logical positions (u, u + P) when
// a >= p and (ins0(u, a), ins0(u, a) + 2^a) when a < p: p + 1 cases, each with compile-time
// positions, so every operand is a (p + 1):1 multiplexer (the RTL's SELW select), not a 2P:1 one.
//
// C is a configuration struct written by the einhls emitter (templates/hls/params_butterfly.h.j2):
//   N, STACKS, STAGES, P, K, M, IN_LANES, OUT_LANES    geometry
//   LOG_P, BANKS, C1, CT, IN_WORDS, OUT_WORDS, IN_BEATS, OUT_BEATS, RAW_DISTANCE
//   IN_BITS, OUT_BITS, in_t, out_t                      stream element types
//   w_t (stored codes, W_BITS), acc_t (exact accumulator), V_BITS, M_BITS (requant product widths),
//   C_BITS (rounding and clamping width, the RTL's CWD)
//   tw_int, bias_int                                    integer types the ROM arrays are stored in
// A stage group G derives from C: STAGES (its own), ISSUE, LOG_ROM, IN_DEPTH and OUT_DEPTH (words per
// bank of its input and output buffers), FROM_INPUT (its first stage is stage 0: it reads the
// loaded words, each stack the same), store_t (out_t for the last group, else w_t); and its ROMs:
// twiddle[STAGES * CT][P][4] (t00, t10, t01, t11: t[i][j] is input i's coefficient in output j),
// bias[STAGES * CT][P][2] (of e0, e1), stride_log, gap, mult, shift, zp, lo, hi [STAGES].
#ifndef EINHLS_BUTTERFLY_H
#define EINHLS_BUTTERFLY_H

#include <ap_int.h>
#include <hls_stream.h>

#include "einhls_csim.h"
#include "einhls_stream.h"

namespace einhls {

// A zero bit inserted at position a of u (constant folded when u and a are constants).
constexpr unsigned bfly_ins0(unsigned u, unsigned a) {
    return ((u >> a) << (a + 1)) | (u & ((1u << a) - 1));
}

template <int W>
bool bfly_parity(const ap_uint<W>& v) {
#pragma HLS INLINE
    return v.xor_reduce();
}

// clamp(rne(v * m, shift) + zp, lo, hi) with the shift known only at run time (it changes from
// stage to stage), at the RTL's widths: the product at V_BITS + M_BITS + 1 bits, rounding and
// clamping at C_BITS, the result a stored code.
template <class C>
typename C::w_t bfly_requantize(const ap_int<C::V_BITS>& v, const ap_uint<C::M_BITS>& m, unsigned shift,
                                const typename C::w_t& zp, const typename C::w_t& lo, const typename C::w_t& hi) {
#pragma HLS INLINE
    const int PW = C::V_BITS + C::M_BITS + 1;
    const ap_int<PW> p = ap_int<PW>(v) * ap_int<C::M_BITS + 1>(m);
    const ap_int<PW> q = p >> shift;                                  // floor(p / 2^shift)
    bool up = false;
    if (shift > 0) {
        const ap_uint<PW> rem = ap_uint<PW>(p) & ~(ap_uint<PW>(~ap_uint<PW>(0)) << shift);
        const ap_uint<PW> half = ap_uint<PW>(1) << (shift - 1);
        up = rem > half || (rem == half && q[0] == 1);
    }
    const ap_int<C::C_BITS> y = ap_int<C::C_BITS>(q) + (up ? 1 : 0) + zp;
    if (y < lo) return lo;
    if (y > hi) return hi;
    return typename C::w_t(y);
}

// IN_LANES -> OUT_LANES elements per beat: a re-pack when they differ, a pipelined copy when not.
template <unsigned SIZE, int BITS, unsigned IN_LANES, unsigned OUT_LANES>
struct Relane {
    static void run(hls::stream<ap_uint<IN_LANES * BITS> >& in, hls::stream<ap_uint<OUT_LANES * BITS> >& out) {
        repack<SIZE, BITS, IN_LANES, OUT_LANES>(in, out);
    }
};

template <unsigned SIZE, int BITS, unsigned LANES>
struct Relane<SIZE, BITS, LANES, LANES> {
    static void run(hls::stream<ap_uint<LANES * BITS> >& in, hls::stream<ap_uint<LANES * BITS> >& out) {
        EINHLS_CSIM_PROCESS();
    copy:
        for (unsigned b = 0; b < beats(SIZE, LANES); b++) {
#pragma HLS PIPELINE II=1
            EINHLS_CSIM_COUNT();
            out.write(in.read());
        }
    }
};

// The loader: word w of 2P input elements into the IN buffer, padding words zero.
template <class C>
void butterfly_load(hls::stream<ap_uint<C::BANKS * C::IN_BITS> >& in, typename C::w_t x[C::BANKS][C::C1]) {
    static_assert((C::P & (C::P - 1)) == 0 && (1u << C::LOG_P) == C::P, "P must be a power of two, LOG_P its log");
    static_assert(C::BANKS == 2 * C::P && C::C1 * C::BANKS == C::N, "BANKS = 2P, C1 = N / (2P)");
    static_assert((1u << C::LOG_C1) == C::C1 && (1u << C::LOG_CT) == C::CT, "C1 and CT are powers of two");
    static_assert(C::CT == C::STACKS * C::C1, "CT = STACKS * N / (2P) cycles per stage");
    static_assert(C::K <= C::N && C::M <= C::STACKS * C::N, "K <= N, M <= STACKS * N");
    static_assert(C::IN_WORDS == (C::K + C::BANKS - 1) / C::BANKS, "IN_WORDS = ceil(K / (2P))");
    static_assert(C::OUT_WORDS == (C::M + C::BANKS - 1) / C::BANKS, "OUT_WORDS = ceil(M / (2P))");
    static_assert(C::IN_BEATS == (C::K + C::IN_LANES - 1) / C::IN_LANES, "IN_BEATS = ceil(K / IN_LANES)");
    static_assert(C::OUT_BEATS == (C::M + C::OUT_LANES - 1) / C::OUT_LANES, "OUT_BEATS = ceil(M / OUT_LANES)");
    static_assert(C::C_BITS >= C::W_BITS + 2 && C::C_BITS >= C::V_BITS + C::M_BITS + 3, "C_BITS is the RTL's CWD");
    static_assert(ap_fits(C::BANKS * C::IN_BITS) && ap_fits(C::BANKS * C::OUT_BITS) && ap_fits(C::C_BITS)
                  && ap_fits(C::IN_LANES * C::IN_BITS) && ap_fits(C::OUT_LANES * C::OUT_BITS),
                  "butterfly: a word exceeds AP_INT_MAX_W");
    EINHLS_CSIM_PROCESS();
    ap_uint<C::LOG_C1 + 1> w = 0;
load:
    for (unsigned i = 0; i < C::C1; i++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        const ap_uint<C::BANKS * C::IN_BITS> word = i < C::IN_WORDS ? in.read() : ap_uint<C::BANKS * C::IN_BITS>(0);
        const bool flip = bfly_parity(w);          // lane j goes to bank j ^ (flip << p)
    banks:
        for (unsigned k = 0; k < C::BANKS; k++) {
#pragma HLS UNROLL
            const typename C::in_t lane0 = get_lane<typename C::in_t, C::IN_BITS>(word, k);
            const typename C::in_t lane1 = get_lane<typename C::in_t, C::IN_BITS>(word, k ^ C::P);
            x[k][i] = typename C::w_t(flip ? lane1 : lane0);
        }
        w++;
    }
}

// The STAGES stages of group C on P units: one flattened pipelined loop over the issue cycles of a
// frame, from the input buffer x (the loaded words, or the previous group's last stage) to y (the
// next group's input, or the words the drain sends).
template <class C>
void butterfly_compute(const typename C::w_t x[C::BANKS][C::IN_DEPTH], typename C::store_t y[C::BANKS][C::OUT_DEPTH],
                       const typename C::tw_int twiddle[C::STAGES * C::CT][C::P][4],
                       const typename C::bias_int bias[C::STAGES * C::CT][C::P][2],
                       const unsigned char stride_log[C::STAGES], const unsigned char gap[C::STAGES],
                       const unsigned long long mult[C::STAGES], const unsigned char shift[C::STAGES],
                       const long long zp[C::STAGES], const long long lo[C::STAGES], const long long hi[C::STAGES]) {
#pragma HLS ARRAY_PARTITION variable=twiddle complete dim=2
#pragma HLS ARRAY_PARTITION variable=twiddle complete dim=3
#pragma HLS ARRAY_PARTITION variable=bias complete dim=2
#pragma HLS ARRAY_PARTITION variable=bias complete dim=3
    static_assert(C::STAGES >= 1 && C::STAGES < 256, "a group of 1 .. 255 stages (8-bit stage counter)");
    static_assert(C::STAGES * C::CT <= (1u << C::LOG_ROM), "LOG_ROM holds the ROM word index");
    static_assert(C::IN_DEPTH == (C::FROM_INPUT ? C::C1 : C::CT), "the loaded words, or a whole stage");
    static_assert(C::OUT_DEPTH == C::OUT_WORDS || C::OUT_DEPTH == C::CT, "the drained words, or a whole stage");
    EINHLS_CSIM_PROCESS();
    typename C::w_t wk[2][C::BANKS][C::CT];   // stage s writes half s % 2, stage s + 1 reads it
#pragma HLS ARRAY_PARTITION variable=wk complete dim=2
    const unsigned RAW_DISTANCE = C::RAW_DISTANCE;
    (void)RAW_DISTANCE;   // read only by the pragma
#ifdef EINHLS_CSIM_CHECKS
    static long long written[2][C::BANKS][C::CT];   // issue cycle of each write (C-sim only)
    for (unsigned h = 0; h < 2; h++)
        for (unsigned k = 0; k < C::BANKS; k++)
            for (unsigned i = 0; i < C::CT; i++) written[h][k][i] = -(1LL << 40);
#endif
    // Issue state: stage s, cycle c = stack * C1 + word (counters, no division), idle cycles left,
    // ROM word s * CT + c.
    ap_uint<8> s = 0;
    ap_uint<C::LOG_C1 + 1> word = 0;
    ap_uint<C::LOG_CT + 1> c = 0, stack_base = 0;
    ap_uint<8> idle = 0;
    ap_uint<C::LOG_ROM + 1> rom = 0;
issue:
    for (unsigned t = 0; t < C::ISSUE; t++) {
#pragma HLS PIPELINE II=1
#pragma HLS DEPENDENCE variable=wk type=inter direction=RAW distance=RAW_DISTANCE true
        EINHLS_CSIM_COUNT();
        if (idle != 0) {   // a gap: no issue this cycle
            idle--;
        } else {
            const unsigned a = stride_log[s];
            const ap_uint<C::LOG_C1 + C::LOG_P + 2> q0 = ap_uint<C::LOG_C1 + C::LOG_P + 2>(word) << C::LOG_P;
            const ap_uint<C::LOG_C1 + C::LOG_P + 2> e0 = ((q0 >> a) << (a + 1)) | (q0 & ((ap_uint<C::LOG_C1 + C::LOG_P + 2>(1) << a) - 1));
            const ap_uint<C::LOG_C1 + C::LOG_P + 2> e1 = e0 | (ap_uint<C::LOG_C1 + C::LOG_P + 2>(1) << a);
            const bool par = bfly_parity(e0 >> C::LOG_P);          // logical v is in bank v ^ (par << p)
            const unsigned a0 = e0 >> (C::LOG_P + 1), a1 = e1 >> (C::LOG_P + 1);
            const unsigned sel = a >= C::LOG_P ? C::LOG_P : a;     // operand case, 0 .. p
            const bool first = s == 0, last = s == C::STAGES - 1;
            typename C::w_t bank[C::BANKS], logical[C::BANKS], result[C::BANKS], y0[C::P], y1[C::P];
#pragma HLS ARRAY_PARTITION variable=bank complete
#pragma HLS ARRAY_PARTITION variable=logical complete
#pragma HLS ARRAY_PARTITION variable=result complete
#pragma HLS ARRAY_PARTITION variable=y0 complete
#pragma HLS ARRAY_PARTITION variable=y1 complete
        read_banks:
            for (unsigned k = 0; k < C::BANKS; k++) {
#pragma HLS UNROLL
                const bool upper = (k >= C::P) != par;               // bank k holds a position >= P
                const unsigned addr = upper ? a1 : a0;
                if (first) {   // the loaded words are the same for every stack
                    bank[k] = x[k][C::FROM_INPUT ? addr : unsigned(stack_base + addr)];
                } else {
                    const unsigned at = stack_base + addr;
                    bank[k] = wk[(s + 1) & 1][k][at];
#ifdef EINHLS_CSIM_CHECKS
                    einhls_csim_check_raw(t - written[(s + 1) & 1][k][at], C::RAW_DISTANCE, "butterfly wk");
#endif
                }
            }
        logical_of:
            for (unsigned v = 0; v < C::BANKS; v++) {
#pragma HLS UNROLL
                logical[v] = par ? bank[v ^ C::P] : bank[v];
            }
        units:
            for (unsigned u = 0; u < C::P; u++) {
#pragma HLS UNROLL
                typename C::w_t x0 = logical[u], x1 = logical[u + C::P];   // case p: a >= p
            cases:
                for (unsigned k = 0; k < C::LOG_P; k++) {
#pragma HLS UNROLL
                    if (sel == k) {
                        x0 = logical[bfly_ins0(u, k)];
                        x1 = logical[bfly_ins0(u, k) + (1u << k)];
                    }
                }
                // products and sums modulo 2^ACC_BITS: exact, the true sums fit acc_t
                const typename C::acc_t acc0 = typename C::acc_t(x0 * ap_int<C::T_BITS>(twiddle[rom][u][0]))
                    + typename C::acc_t(x1 * ap_int<C::T_BITS>(twiddle[rom][u][1])) + typename C::acc_t(bias[rom][u][0]);
                const typename C::acc_t acc1 = typename C::acc_t(x0 * ap_int<C::T_BITS>(twiddle[rom][u][2]))
                    + typename C::acc_t(x1 * ap_int<C::T_BITS>(twiddle[rom][u][3])) + typename C::acc_t(bias[rom][u][1]);
                const ap_uint<C::M_BITS> m = mult[s];
                const typename C::w_t zs = zp[s], ls = lo[s], hs = hi[s];
                y0[u] = bfly_requantize<C>(ap_int<C::V_BITS>(acc0), m, shift[s], zs, ls, hs);
                y1[u] = bfly_requantize<C>(ap_int<C::V_BITS>(acc1), m, shift[s], zs, ls, hs);
            }
            // Unit u's results back to its logical positions, as its operands came: case p first,
            // then the stride's case, each a fixed wiring.
        place:
            for (unsigned u = 0; u < C::P; u++) {
#pragma HLS UNROLL
                result[u] = y0[u];
                result[u + C::P] = y1[u];
            }
        place_cases:
            for (unsigned k = 0; k < C::LOG_P; k++) {
#pragma HLS UNROLL
                if (sel == k) {
                    for (unsigned u = 0; u < C::P; u++) {
#pragma HLS UNROLL
                        result[bfly_ins0(u, k)] = y0[u];
                        result[bfly_ins0(u, k) + (1u << k)] = y1[u];
                    }
                }
            }
        write_banks:
            for (unsigned k = 0; k < C::BANKS; k++) {
#pragma HLS UNROLL
                const bool upper = (k >= C::P) != par;
                const unsigned at = stack_base + (upper ? a1 : a0);
                const typename C::w_t value = par ? result[k ^ C::P] : result[k];
                if (last) {
                    if (at < C::OUT_DEPTH) y[k][at] = typename C::store_t(value);
                } else {
                    wk[s & 1][k][at] = value;
#ifdef EINHLS_CSIM_CHECKS
                    written[s & 1][k][at] = t;
#endif
                }
            }
            rom++;
            if (c == C::CT - 1) {           // the stage's last cycle: wait its gap, then the next stage
                idle = gap[s];
                s++;
                c = 0;
                word = 0;
                stack_base = 0;
            } else {
                c++;
                if (word == C::C1 - 1) {
                    word = 0;
                    stack_base += C::C1;
                } else {
                    word++;
                }
            }
        }
    }
}

// The drain: word w of 2P output elements (element w * 2P + j) per cycle.
template <class C>
void butterfly_drain(const typename C::out_t y[C::BANKS][C::OUT_WORDS],
                     hls::stream<ap_uint<C::BANKS * C::OUT_BITS> >& out) {
    EINHLS_CSIM_PROCESS();
    ap_uint<C::LOG_C1 + 1> local_word = 0;   // w mod C1: the word within its stack
drain:
    for (unsigned w = 0; w < C::OUT_WORDS; w++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        const bool flip = bfly_parity(local_word);
        ap_uint<C::BANKS * C::OUT_BITS> word = 0;   // lanes past the end of the frame stay zero
    lanes:
        for (unsigned j = 0; j < C::BANKS; j++) {
#pragma HLS UNROLL
            const typename C::out_t v = flip ? y[j ^ C::P][w] : y[j][w];
            if (w * C::BANKS + j < C::M) set_lane<C::OUT_BITS>(word, j, v);
        }
        out.write(word);
        local_word = local_word == C::C1 - 1 ? ap_uint<C::LOG_C1 + 1>(0) : ap_uint<C::LOG_C1 + 1>(local_word + 1);
    }
}

}  // namespace einhls

#endif  // EINHLS_BUTTERFLY_H

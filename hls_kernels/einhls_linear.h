// einhls_linear.h: the Linear unit, a dense MAC array or an N:M sparse-MAC array (docs/hardware.md).
//
//     acc[n] = bias[n] + sum_k W[n, k] * x[k]         (raw input codes; the input zero point is in bias)
//     y[n]   = clamp(rne(acc[n] * M[n], SHIFT) + ZP, LO, HI)
//
// Folding: SIMD inputs x PE outputs per cycle, KF = ceil(K / SIMD) input folds, NF = ceil(N / PE)
// output folds, one (nf, kf) step per cycle with nf outer and kf inner: NF * KF cycles per frame.
//
// Weight memory: one ROM per PE, word [nf * KF + kf] (in UltraRAM, narrow words packed in rows:
// WeightRom).  The word is divided into slots, one per
// multiplier; slot t = g * NZ + j (group g of the SIMD inputs, multiplier j of the group) holds
// W_BITS of weight value and above it IDX_BITS of index i, and the multiplier computes
// value * x[kf * SIMD + g * GROUP + i]: each multiplier picks its activation with a GROUP:1
// multiplexer driven by the stored index.  A dense layer is the 1:1 case (GROUP = NZ = 1,
// IDX_BITS = 0, GROUPS = SIMD), so one kernel serves both and dense words carry no indices.
// Unused sparse slots hold value 0 and index 0; padding rows and columns hold zero weights.
//
// C is a configuration struct written by the einhls emitter:
//   K, N, SIMD, PE, IN_LANES, OUT_LANES    sizes and parallelism
//   KF, NF, IN_BEATS, OUT_BEATS            folds and beats per frame
//   GROUP, NZ, GROUPS, IDX_BITS            N:M sparsity: NZ of every GROUP weights are stored,
//                                          GROUPS = SIMD / GROUP groups per PE and cycle
//   IN_BITS, W_BITS, OUT_BITS, SLOT_BITS   element widths; SLOT_BITS = W_BITS + IDX_BITS
//   in_t, w_t, acc_t, mult_t, out_t        element types; acc_t is exact (never overflows)
//   WORD_BITS, word_t                      GROUPS * NZ * SLOT_BITS, ap_uint<WORD_BITS>: one weight word
//   WORDS_PER_ROW, ROW_BITS                a ROM row: one word (WORDS_PER_ROW = 1, ROW_BITS =
//                                          WORD_BITS), or in UltraRAM WORDS_PER_ROW steps of all
//                                          PE words packed (ROW_BITS = WORDS_PER_ROW * PE * WORD_BITS)
//   ROM_BANKS, ROM_DEPTH                   ROMs side by side (PE, or 1 when packed) and their rows
//   limb_t, LIMB_BITS, LIMBS               the ROMs hold each row as LIMBS unsigned integers of
//                                          LIMB_BITS, least significant first (see load_word)
//   MULT_DEPTH                             NF for per-channel multipliers, 1 for one multiplier
//   SHIFT, ZP, LO, HI                      requantization constants
#ifndef EINHLS_LINEAR_H
#define EINHLS_LINEAR_H

#include <ap_int.h>
#include <hls_stream.h>

#include "einhls_requant.h"
#include "einhls_stream.h"

namespace einhls {

// Index of slot `lo` in a weight word; dense words store none (IDX_BITS == 0, the index is 0).
template <int IDX_BITS>
struct SlotIndex {
    template <int W>
    static unsigned get(const ap_uint<W>& word, unsigned lo) {
#pragma HLS INLINE
        return ap_uint<IDX_BITS>(word.range(lo + IDX_BITS - 1, lo));
    }
};

template <>
struct SlotIndex<0> {
    template <int W>
    static unsigned get(const ap_uint<W>&, unsigned) {
#pragma HLS INLINE
        return 0;
    }
};

// Slot t of a weight word (t = g * NZ + j: multiplier j of group g), as the emitter writes it:
// W_BITS of weight value at t * SLOT_BITS and above them IDX_BITS of the index of the activation
// it multiplies within its group.  Every MAC array decodes its words here, so the ROM layout is
// read in one place; t is an unrolled loop's constant, so this is wiring.
template <class C>
struct WeightSlot {
    // the weight value's raw bits
    static ap_uint<C::W_BITS> bits(const typename C::word_t& word, unsigned t) {
#pragma HLS INLINE
        const unsigned lo = t * C::SLOT_BITS;
        return word.range(lo + C::W_BITS - 1, lo);
    }

    static typename C::w_t weight(const typename C::word_t& word, unsigned t) {
#pragma HLS INLINE
        return typename C::w_t(bits(word, t));   // two's complement if w_t is signed
    }

    static unsigned index(const typename C::word_t& word, unsigned t) {
#pragma HLS INLINE
        return SlotIndex<C::IDX_BITS>::get(word, t * C::SLOT_BITS + C::W_BITS);
    }
};

// A weight word from its ROM limbs, least significant first.  The ROMs hold plain unsigned
// integers rather than ap_uint words because C++ initialises arrays of class type with generated
// code, which makes g++ take minutes for a large layer; integer arrays are static data.  With the
// limb dimension partitioned the hardware is the same: LIMBS ROMs read side by side.
template <class C>
typename C::word_t load_word(const typename C::limb_t limbs[C::LIMBS]) {
#pragma HLS INLINE
    typename C::word_t word = 0;
limbs:
    for (unsigned l = 0; l < C::LIMBS; l++) {
#pragma HLS UNROLL
        const unsigned lo = l * C::LIMB_BITS;
        const unsigned hi = (lo + C::LIMB_BITS < C::WORD_BITS ? lo + C::LIMB_BITS : C::WORD_BITS) - 1;
        word.range(hi, lo) = ap_uint<C::LIMB_BITS>(limbs[l]).range(hi - lo, 0);
    }
    return word;
}

// Beats of LANES elements into (or out of) rows of WIDTH elements without run-time division: beat
// b starts at element b * LANES, at position (b * LANES) mod WIDTH of its row, which repeats with
// period PHASES = WIDTH / gcd(WIDTH, LANES).  A phase counter and a row counter (advanced by a
// per-phase constant) replace e / WIDTH and e % WIDTH; lane l of phase j lands in row + fold(j, l)
// at position pos(j, l) (group pos / GROUP, member pos % GROUP), all compile-time constants, so
// every lane-to-register connection is a PHASES:1 choice of fixed wires (as in einhls_stream.h's
// re-pack).
template <unsigned LANES, unsigned WIDTH, unsigned GROUP = 1>
struct BeatRows {
    static const unsigned PHASES = WIDTH / gcd_of(WIDTH, LANES);
    static constexpr unsigned start(unsigned j) { return j * LANES % WIDTH; }
    static constexpr unsigned fold(unsigned j, unsigned l) { return (start(j) + l) / WIDTH; }
    static constexpr unsigned pos(unsigned j, unsigned l) { return (start(j) + l) % WIDTH; }
    static constexpr unsigned advance(unsigned j) { return (start(j) + LANES) / WIDTH; }   // rows per beat
    static constexpr unsigned group(unsigned j, unsigned l) { return pos(j, l) / GROUP; }
    static constexpr unsigned member(unsigned j, unsigned l) { return pos(j, l) % GROUP; }
};

// Stage 1: one input frame into the activation buffer x[kf][g][i] = element kf*SIMD + g*GROUP + i
// (K elements, zero padding up to KF * SIMD).
template <class C>
void linear_read(hls::stream<ap_uint<C::IN_LANES * C::IN_BITS> >& in,
                 typename C::in_t x[C::KF][C::GROUPS][C::GROUP]) {
    typedef BeatRows<C::IN_LANES, C::SIMD, C::GROUP> R;
    const unsigned LAST_LANES = C::K - (C::IN_BEATS - 1) * C::IN_LANES;   // lanes of the last beat
    EINHLS_CSIM_PROCESS();
    unsigned phase = 0, kf = 0;   // b mod PHASES, (b * IN_LANES) / SIMD
read_beats:
    for (unsigned b = 0; b < C::IN_BEATS; b++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        const ap_uint<C::IN_LANES * C::IN_BITS> word = in.read();
        const bool last = b == C::IN_BEATS - 1;
        unsigned next_kf = kf;
    phases:
        for (unsigned j = 0; j < R::PHASES; j++) {
#pragma HLS UNROLL
            if (phase == j) {
            read_lanes:
                for (unsigned l = 0; l < C::IN_LANES; l++) {
#pragma HLS UNROLL
                    if (!last || l < LAST_LANES)
                        x[kf + R::fold(j, l)][R::group(j, l)][R::member(j, l)] =
                            get_lane<typename C::in_t, C::IN_BITS>(word, l);
                }
                next_kf = kf + R::advance(j);
            }
        }
        kf = next_kf;
        phase = phase == R::PHASES - 1 ? 0 : phase + 1;
    }
    // Padding columns meet zero weights, so their value never matters and the hardware leaves
    // them alone (the process stays one pipelined loop).  C-sim zeroes them so the buffer is fully
    // defined (no read of uninitialised memory); no cycles are counted for it.
#ifndef __SYNTHESIS__
    for (unsigned e = C::K; e < C::KF * C::SIMD; e++) x[e / C::SIMD][e % C::SIMD / C::GROUP][e % C::GROUP] = 0;
#endif
}

// The weight word of PE p at fold step s = nf * KF + kf, from the ROM row `row` = s / WORDS_PER_ROW
// and its word `sel` = s mod WORDS_PER_ROW, which linear_compute counts alongside the steps (no
// division).  A narrow ROM in UltraRAM packs WORDS_PER_ROW consecutive steps of all PEs in one row
// (codegen/schedule/cost.py uram_packing: a URAM288 is always 72 bits x 4096 rows); otherwise a row
// is one step of one PE's ROM (row = s, sel = 0).
template <class C, bool PACKED = (C::WORDS_PER_ROW > 1)>
struct WeightRom {
    static typename C::word_t word(const typename C::limb_t weights[C::ROM_BANKS][C::ROM_DEPTH][C::LIMBS],
                                   unsigned row, unsigned, unsigned p) {
#pragma HLS INLINE
        return load_word<C>(weights[p][row]);
    }
};

template <class C>
struct WeightRom<C, true> {
    static typename C::word_t word(const typename C::limb_t weights[C::ROM_BANKS][C::ROM_DEPTH][C::LIMBS],
                                   unsigned row, unsigned sel, unsigned p) {
#pragma HLS INLINE
        ap_uint<C::ROW_BITS> bits = 0;
    row_limbs:
        for (unsigned l = 0; l < C::LIMBS; l++) {
#pragma HLS UNROLL
            const unsigned lo = l * C::LIMB_BITS;
            const unsigned hi = (lo + C::LIMB_BITS < C::ROW_BITS ? lo + C::LIMB_BITS : C::ROW_BITS) - 1;
            bits.range(hi, lo) = ap_uint<C::LIMB_BITS>(weights[0][row][l]).range(hi - lo, 0);
        }
        const unsigned lo = (sel * C::PE + p) * C::WORD_BITS;
        return typename C::word_t(bits.range(lo + C::WORD_BITS - 1, lo));
    }
};

// The ROM row and the word in it of the next fold step (WeightRom): WORDS_PER_ROW words a row,
// counted alongside the steps (no division).
template <class C>
void next_rom_step(unsigned& row, unsigned& sel) {
#pragma HLS INLINE
    if (sel == C::WORDS_PER_ROW - 1) {
        sel = 0;
        row++;
    } else {
        sel++;
    }
}

// The end of one PE's (nf, kf) step, once the dot product of its weight word with this input fold
// is known: the same in every MAC array (linear_compute, linear_quad_compute, linear_pair_compute,
// contract_compute in einhls_contract.h), which differ only in how they form the dot product, so
// the rule that makes them equal the integer reference (bias first, requantize after the last
// fold) is written once.  Everything inlines into the caller's pipelined step: no hardware of its
// own, the same reads, adders and registers as when each kernel spelled it out.
template <class C>
struct FoldTail {
    typedef typename C::acc_t acc_t;
    typedef typename C::mult_t mult_t;
    typedef typename C::out_t out_t;

    // The running sum of PE p after input fold kf, also left in acc: the first fold starts from
    // the bias (which carries the input zero point), the others from the sum so far.  Sums wrap
    // modulo 2^ACC_BITS; the last one is exact, as acc_t holds every bias + dot product.
    static acc_t accumulate(acc_t& acc, const acc_t& dot, const acc_t bias[C::PE][C::NF], unsigned p, unsigned nf,
                            unsigned kf) {
#pragma HLS INLINE
        const acc_t sum = (kf == 0 ? bias[p][nf] : acc) + dot;
        acc = sum;
        return sum;
    }

    // After the last input fold the sum is output channel nf * PE + p.
    static bool last(unsigned kf) {
#pragma HLS INLINE
        return kf == C::KF - 1;
    }

    // The channel's multiplier: one for the tensor or one per channel.
    static mult_t multiplier(const mult_t mult[C::PE][C::MULT_DEPTH], unsigned p, unsigned nf) {
#pragma HLS INLINE
        return mult[p][C::MULT_DEPTH == 1 ? 0 : nf];
    }

    static out_t requantized(const acc_t& sum, const mult_t& m) {
#pragma HLS INLINE
        return requantize<C::SHIFT, C::ZP, C::LO, C::HI, out_t>(sum, m);
    }

    // The whole tail for one token: accumulate, and after the last fold set y to the requantized
    // output (the multiplier is read only then).  Returns whether y was set.  Token pairs share the
    // multiplier of a channel, so linear_pair_compute calls the parts above to read it once.
    static bool step(acc_t& acc, const acc_t& dot, const acc_t bias[C::PE][C::NF],
                     const mult_t mult[C::PE][C::MULT_DEPTH], unsigned p, unsigned nf, unsigned kf, out_t& y) {
#pragma HLS INLINE
        const acc_t sum = accumulate(acc, dot, bias, p, nf, kf);
        if (!last(kf)) return false;
        y = requantized(sum, multiplier(mult, p, nf));
        return true;
    }
};

// Stage 2: the MAC array.  Each cycle every PE multiplies one weight word with SIMD activations.
template <class C>
void linear_compute(const typename C::in_t x[C::KF][C::GROUPS][C::GROUP], typename C::out_t y[C::NF][C::PE],
                    const typename C::limb_t weights[C::ROM_BANKS][C::ROM_DEPTH][C::LIMBS],
                    const typename C::acc_t bias[C::PE][C::NF],
                    const typename C::mult_t mult[C::PE][C::MULT_DEPTH]) {
    EINHLS_CSIM_PROCESS();
#pragma HLS ARRAY_PARTITION variable=bias complete dim=1
#pragma HLS ARRAY_PARTITION variable=mult complete dim=1
    typename C::acc_t acc[C::PE];
#pragma HLS ARRAY_PARTITION variable=acc complete
    unsigned row = 0, sel = 0;   // the step's ROM row and word in it (WeightRom)

fold_out:
    for (unsigned nf = 0; nf < C::NF; nf++) {
    fold_in:
        for (unsigned kf = 0; kf < C::KF; kf++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        pe:
            for (unsigned p = 0; p < C::PE; p++) {
#pragma HLS UNROLL
                const typename C::word_t word = WeightRom<C>::word(weights, row, sel, p);
                // N:M row pairs: the odd PE of a pair picks its inputs with the even PE's indices
                // (the same ones: the emitter wrote the pair's), so the pair shares its multiplexers
                const typename C::word_t index_word =
                    (C::NM_PAIRS && (p & 1u)) ? WeightRom<C>::word(weights, row, sel, p - 1) : word;
                // All sums are taken modulo 2^ACC_BITS (ap_int wraps).  The final dot product
                // always fits acc_t, so wrapped partial sums still give the exact result.
                typename C::acc_t dot = 0;
            group:
                for (unsigned g = 0; g < C::GROUPS; g++) {
#pragma HLS UNROLL
                multiplier:
                    for (unsigned j = 0; j < C::NZ; j++) {
#pragma HLS UNROLL
                        const unsigned t = g * C::NZ + j;
                        const unsigned i = WeightSlot<C>::index(index_word, t);   // drives the GROUP:1 multiplexer
                        dot += WeightSlot<C>::weight(word, t) * x[kf][g][i];
                    }
                }
                FoldTail<C>::step(acc[p], dot, bias, mult, p, nf, kf, y[nf][p]);
            }
            next_rom_step<C>(row, sel);
        }
    }
}

// A field of a packed product: the W bits at ``at``, which hold (sum + 2^(W-1)), as the signed sum.
template <int W, class P>
ap_int<W + 1> low_field(const P& packed, int at) {
    const ap_uint<W> field = packed.range(at + W - 1, at);
    return ap_int<W + 1>(field) - (ap_int<W + 1>(1) << (W - 1));
}

// Stage 2 with PE quads (cfg::QUAD_SHIFT = S, cfg::QUAD_CHAIN; the Verilog unit's PACK = 4): PEs
// 4q..4q+3 share one DSP per slot for one vector,
//     P = (w[4q+3] * 2^(3S) + w[4q+2] * 2^(2S) + w[4q+1] * 2^S + w[4q]) * x + 2^(S-1) + 2^(2S-1) + 2^(3S-1)
// summed over QUAD_CHAIN consecutive slots (the second DSP's post-adder), the same arithmetic as
// einhls_linear.v.  The ROM slots of the four PEs hold the digits e0..e3 of the packed weight
// (codegen/schedule/packing.py quad_digits), so the packed weight is their concatenation, each low
// digit sign-extended to S bits: wiring, not adders.  The emitter proved that every sum of PEs
// 4q..4q+2 over a chain lies in [-2^(S-1), 2^(S-1)) (pe_quad_config), so those fields are their
// bits minus 2^(S-1) and PE 4q+3's sum is P >> 3S, exactly.  Dense layers, PE a multiple of 4.
template <class C>
void linear_quad_compute(const typename C::in_t x[C::KF][C::GROUPS][C::GROUP], typename C::out_t y[C::NF][C::PE],
                         const typename C::limb_t weights[C::ROM_BANKS][C::ROM_DEPTH][C::LIMBS],
                         const typename C::acc_t bias[C::PE][C::NF],
                         const typename C::mult_t mult[C::PE][C::MULT_DEPTH]) {
    EINHLS_CSIM_PROCESS();
#pragma HLS ARRAY_PARTITION variable=bias complete dim=1
#pragma HLS ARRAY_PARTITION variable=mult complete dim=1
    const int S = C::QUAD_SHIFT;
    const int XB = C::QUAD_X_BITS;                       // an input code as a signed number
    const int WW = C::W_BITS + 3 * S;                    // the packed weight
    typedef ap_int<WW + XB + 1> packed_p_t;              // a chain's packed sum
    const packed_p_t half = (packed_p_t(1) << (S - 1)) + (packed_p_t(1) << (2 * S - 1)) + (packed_p_t(1) << (3 * S - 1));
    typename C::acc_t acc[C::PE];
#pragma HLS ARRAY_PARTITION variable=acc complete
    unsigned row = 0, sel = 0;

quad_fold_out:
    for (unsigned nf = 0; nf < C::NF; nf++) {
    quad_fold_in:
        for (unsigned kf = 0; kf < C::KF; kf++) {
#pragma HLS PIPELINE II=1
            EINHLS_CSIM_COUNT();
            typename C::acc_t dot[C::PE];   // modulo 2^ACC_BITS, exact at the end
#pragma HLS ARRAY_PARTITION variable=dot complete
        quad_owner:
            for (unsigned q = 0; q < C::PE / 4; q++) {
#pragma HLS UNROLL
                typename C::word_t words[4];
            quad_words:
                for (unsigned i = 0; i < 4; i++) {
#pragma HLS UNROLL
                    words[i] = WeightRom<C>::word(weights, row, sel, 4 * q + i);
                }
                packed_p_t prod[C::SIMD];   // one DSP each
#pragma HLS ARRAY_PARTITION variable=prod complete
            quad_multiplier:
                for (unsigned t = 0; t < C::SIMD; t++) {
#pragma HLS UNROLL
                    ap_uint<WW> bits = 0;   // the packed weight: {e3, e2, e1, e0}, low digits sign-extended
                quad_digits:
                    for (unsigned i = 0; i < 3; i++) {
#pragma HLS UNROLL
                        const ap_int<C::W_BITS> digit = ap_int<C::W_BITS>(WeightSlot<C>::bits(words[i], t));
                        bits.range(i * S + S - 1, i * S) = ap_uint<S>(ap_int<S>(digit));
                    }
                    bits.range(WW - 1, 3 * S) = WeightSlot<C>::bits(words[3], t);
                    const ap_int<XB> a = x[kf][t][0];
                    // a WW x XB product (ap_int keeps its full width): one DSP's 25 x 18 multiplier
                    prod[t] = packed_p_t(ap_int<WW>(bits) * a);
                }
                typename C::acc_t sums[4] = {0, 0, 0, 0};
            quad_chains:
                for (unsigned c = 0; c < C::SIMD; c += C::QUAD_CHAIN) {
#pragma HLS UNROLL
                    packed_p_t leaf = half + prod[c];
                    if (C::QUAD_CHAIN == 2 && c + 1 < C::SIMD) leaf += prod[c + 1];
                    sums[0] += typename C::acc_t(low_field<S>(leaf, 0));
                    sums[1] += typename C::acc_t(low_field<S>(leaf, S));
                    sums[2] += typename C::acc_t(low_field<S>(leaf, 2 * S));
                    sums[3] += typename C::acc_t(leaf >> (3 * S));
                }
            quad_fields:
                for (unsigned i = 0; i < 4; i++) {
#pragma HLS UNROLL
                    dot[4 * q + i] = sums[i];
                }
            }
        quad_pe:
            for (unsigned p = 0; p < C::PE; p++) {
#pragma HLS UNROLL
                FoldTail<C>::step(acc[p], dot[p], bias, mult, p, nf, kf, y[nf][p]);
            }
            next_rom_step<C>(row, sel);
        }
    }
}

// The MAC array of a Linear unit: plain (linear_compute) or PE quads (linear_quad_compute).
template <class C, bool PE_QUADS>
struct linear_macs {
    static void run(const typename C::in_t x[C::KF][C::GROUPS][C::GROUP], typename C::out_t y[C::NF][C::PE],
                    const typename C::limb_t weights[C::ROM_BANKS][C::ROM_DEPTH][C::LIMBS],
                    const typename C::acc_t bias[C::PE][C::NF],
                    const typename C::mult_t mult[C::PE][C::MULT_DEPTH]) {
#pragma HLS INLINE
        linear_compute<C>(x, y, weights, bias, mult);
    }
};

template <class C>
struct linear_macs<C, true> {
    static void run(const typename C::in_t x[C::KF][C::GROUPS][C::GROUP], typename C::out_t y[C::NF][C::PE],
                    const typename C::limb_t weights[C::ROM_BANKS][C::ROM_DEPTH][C::LIMBS],
                    const typename C::acc_t bias[C::PE][C::NF],
                    const typename C::mult_t mult[C::PE][C::MULT_DEPTH]) {
#pragma HLS INLINE
        static_assert(C::GROUP == 1 && C::NZ == 1 && C::PE % 4 == 0, "PE quads: dense, PE a multiple of 4");
        static_assert(C::QUAD_SHIFT >= C::W_BITS && (C::QUAD_CHAIN == 1 || C::QUAD_CHAIN == 2),
                      "PE quads: a digit fits its field; a chain sums one or two packed products");
        linear_quad_compute<C>(x, y, weights, bias, mult);
    }
};

// Stage 3: the N outputs of the frame, OUT_LANES per beat (rows of PE results, BeatRows).
template <class C>
void linear_write(const typename C::out_t y[C::NF][C::PE], hls::stream<ap_uint<C::OUT_LANES * C::OUT_BITS> >& out) {
    typedef BeatRows<C::OUT_LANES, C::PE> R;
    const unsigned LAST_LANES = C::N - (C::OUT_BEATS - 1) * C::OUT_LANES;   // lanes of the last beat
    EINHLS_CSIM_PROCESS();
    unsigned phase = 0, nf = 0;   // b mod PHASES, (b * OUT_LANES) / PE
write_beats:
    for (unsigned b = 0; b < C::OUT_BEATS; b++) {
#pragma HLS PIPELINE II=1
        EINHLS_CSIM_COUNT();
        ap_uint<C::OUT_LANES * C::OUT_BITS> word = 0;  // lanes past the end of the frame stay zero
        const bool last = b == C::OUT_BEATS - 1;
        unsigned next_nf = nf;
    phases:
        for (unsigned j = 0; j < R::PHASES; j++) {
#pragma HLS UNROLL
            if (phase == j) {
            write_lanes:
                for (unsigned l = 0; l < C::OUT_LANES; l++) {
#pragma HLS UNROLL
                    if (!last || l < LAST_LANES) set_lane<C::OUT_BITS>(word, l, y[nf + R::fold(j, l)][R::pos(j, l)]);
                }
                next_nf = nf + R::advance(j);
            }
        }
        out.write(word);
        nf = next_nf;
        phase = phase == R::PHASES - 1 ? 0 : phase + 1;
    }
}

// Where the weight ROM lives is the scheduler's choice (cfg::ROM_KIND: 0 LUTRAM, 1 block RAM,
// 2 UltraRAM; codegen/schedule/cost.py: place_roms).  A pragma cannot depend on a template
// constant, so the UltraRAM binding is a specialisation; the other kinds leave it to HLS, which
// picks LUTRAM or block RAM by size as the cost model does, with one ROM per PE and limb (read side
// by side).  In UltraRAM the banks and limbs are reshaped into one wide memory instead: the row
// the cost model counted (uram_packing: ceil(row bits / 72) URAM288 side by side; a packed row's
// limbs are 8 bits, so they pad it to at most the next multiple of 8, within the same 72-bit
// columns), not one memory per limb.
template <class C, bool PE_QUADS, bool URAM = (C::ROM_KIND == 2)>
struct linear_mac_array {
    static void run(const typename C::in_t x[C::KF][C::GROUPS][C::GROUP], typename C::out_t y[C::NF][C::PE],
                    const typename C::limb_t weights[C::ROM_BANKS][C::ROM_DEPTH][C::LIMBS],
                    const typename C::acc_t bias[C::PE][C::NF],
                    const typename C::mult_t mult[C::PE][C::MULT_DEPTH]) {
#pragma HLS INLINE
#pragma HLS ARRAY_PARTITION variable=weights complete dim=1
#pragma HLS ARRAY_PARTITION variable=weights complete dim=3
        linear_macs<C, PE_QUADS>::run(x, y, weights, bias, mult);
    }
};

template <class C, bool PE_QUADS>
struct linear_mac_array<C, PE_QUADS, true> {
    static void run(const typename C::in_t x[C::KF][C::GROUPS][C::GROUP], typename C::out_t y[C::NF][C::PE],
                    const typename C::limb_t weights[C::ROM_BANKS][C::ROM_DEPTH][C::LIMBS],
                    const typename C::acc_t bias[C::PE][C::NF],
                    const typename C::mult_t mult[C::PE][C::MULT_DEPTH]) {
#pragma HLS INLINE
#pragma HLS ARRAY_RESHAPE variable=weights complete dim=1
#pragma HLS ARRAY_RESHAPE variable=weights complete dim=3
#pragma HLS BIND_STORAGE variable=weights type=rom_1p impl=uram
        linear_macs<C, PE_QUADS>::run(x, y, weights, bias, mult);
    }
};

// The Linear unit: read, compute and write as a dataflow pipeline, so the activation and result
// buffers become ping-pong buffers and the next frame loads while this one computes.  Partitioning
// the buffers by group and lane (x) and by PE (y) makes every access of the MAC loop, the loop that
// runs NF * KF times per frame, a fixed register bank or a GROUP:1 multiplexer.  PE_QUADS: four
// PEs share each DSP (linear_quad_compute; the emitter sets it only where it proved them exact).
template <class C, bool PE_QUADS = false>
void linear(hls::stream<ap_uint<C::IN_LANES * C::IN_BITS> >& in,
            hls::stream<ap_uint<C::OUT_LANES * C::OUT_BITS> >& out,
            const typename C::limb_t weights[C::ROM_BANKS][C::ROM_DEPTH][C::LIMBS],
            const typename C::acc_t bias[C::PE][C::NF],
            const typename C::mult_t mult[C::PE][C::MULT_DEPTH]) {
#pragma HLS DATAFLOW
    static_assert(C::KF == (C::K + C::SIMD - 1) / C::SIMD, "KF must be ceil(K / SIMD)");
    static_assert(C::NF == (C::N + C::PE - 1) / C::PE, "NF must be ceil(N / PE)");
    static_assert(C::IN_BEATS == (C::K + C::IN_LANES - 1) / C::IN_LANES, "IN_BEATS must be ceil(K / IN_LANES)");
    static_assert(C::OUT_BEATS == (C::N + C::OUT_LANES - 1) / C::OUT_LANES, "OUT_BEATS must be ceil(N / OUT_LANES)");
    static_assert(C::GROUPS * C::GROUP == C::SIMD, "SIMD must be a multiple of the group size M");
    static_assert(C::NZ >= 1 && C::NZ <= C::GROUP, "N:M needs 1 <= N <= M");
    static_assert(C::SLOT_BITS == C::W_BITS + C::IDX_BITS, "a slot is a weight value and its index");
    static_assert(C::WORD_BITS == C::GROUPS * C::NZ * C::SLOT_BITS, "a word holds GROUPS * NZ slots");
    static_assert(C::LIMBS * C::LIMB_BITS >= C::ROW_BITS && (C::LIMBS - 1) * C::LIMB_BITS < C::ROW_BITS,
                  "LIMBS must be ceil(ROW_BITS / LIMB_BITS)");
    static_assert(C::WORDS_PER_ROW == 1 ? (C::ROW_BITS == C::WORD_BITS && C::ROM_BANKS == C::PE
                                           && C::ROM_DEPTH == C::NF * C::KF)
                                        : (C::ROW_BITS == C::WORDS_PER_ROW * C::PE * C::WORD_BITS && C::ROM_BANKS == 1
                                           && C::ROM_DEPTH == (C::NF * C::KF + C::WORDS_PER_ROW - 1) / C::WORDS_PER_ROW),
                  "a ROM row is one word, or WORDS_PER_ROW steps of all PE words");
    static_assert(C::MULT_DEPTH == 1 || C::MULT_DEPTH == C::NF, "multipliers are per tensor or per channel");
    static_assert(ap_fits(C::ROW_BITS), "linear: the weight row exceeds AP_INT_MAX_W");
    static_assert(ap_fits(C::IN_LANES * C::IN_BITS) && ap_fits(C::OUT_LANES * C::OUT_BITS),
                  "linear: a stream beat exceeds AP_INT_MAX_W");
    typename C::in_t x[C::KF][C::GROUPS][C::GROUP];
#pragma HLS ARRAY_PARTITION variable=x complete dim=2
#pragma HLS ARRAY_PARTITION variable=x complete dim=3
    typename C::out_t y[C::NF][C::PE];
#pragma HLS ARRAY_PARTITION variable=y complete dim=2
    linear_read<C>(in, x);
    linear_mac_array<C, PE_QUADS>::run(x, y, weights, bias, mult);
    linear_write<C>(y, out);
}

// ---------------------------------------------------------------------------------------------
// Token pairs (cfg::TOKEN_SHIFT, cfg::PAIR_CHAIN; the Verilog unit's TOKEN_PACK = 2): two
// consecutive tokens share every weight read.  Each multiplier computes
//     P = w * (x_t1 * 2^S + x_t0) + 2^(S-1)           (S = TOKEN_SHIFT)
// summed over PAIR_CHAIN consecutive slots of a word (the second DSP's post-adder), the same
// arithmetic as einhls_linear.v: the emitter proved that token 0's sum over a chain lies in
// [-2^(S-1), 2^(S-1)) (codegen/schedule/packing.py token_pair_config), so it is the low field
// minus 2^(S-1) and token 1's sum is P >> S, exactly.  An N:M multiplier's index picks x_t0 and
// x_t1 alike.  One call handles two tokens: both are read, the fold runs once (NF * KF steps),
// and token 0's outputs are written before token 1's.
// With cfg::PE_SHIFT = T > 0 (the Verilog unit's PACK = 2 with TOKEN_PACK = 2) PEs 2q and 2q+1
// share each DSP as well, four products per DSP:
//     P = (w[2q+1] * 2^T + w[2q]) * (x_t1 * 2^S + x_t0) + 2^(T-1) + 2^(S-1) + 2^(S+T-1)
// with fields at 0 (PE 2q, token 0), T (2q+1, 0), S (2q, 1) and S + T (2q+1, 1), each of the low
// three proven by the emitter to hold its sums (schedule/packing.py quad_config).


template <class C>
void linear_pair_compute(const typename C::in_t x0[C::KF][C::GROUPS][C::GROUP],
                         const typename C::in_t x1[C::KF][C::GROUPS][C::GROUP],
                         typename C::out_t y0[C::NF][C::PE], typename C::out_t y1[C::NF][C::PE],
                         const typename C::limb_t weights[C::ROM_BANKS][C::ROM_DEPTH][C::LIMBS],
                         const typename C::acc_t bias[C::PE][C::NF],
                         const typename C::mult_t mult[C::PE][C::MULT_DEPTH]) {
    EINHLS_CSIM_PROCESS();
#pragma HLS ARRAY_PARTITION variable=bias complete dim=1
#pragma HLS ARRAY_PARTITION variable=mult complete dim=1
    const int S = C::TOKEN_SHIFT;
    const int T = C::PE_SHIFT;                              // 0: no PE pairs
    const bool QUAD = T > 0;
    const int T_FIELD = QUAD ? T : 2, MID_FIELD = QUAD ? S - T : 2;   // field widths (QUAD only)
    const unsigned OWNERS = QUAD ? C::PE / 2 : C::PE;       // DSP groups: PE pairs or single PEs
    const int XB = C::PAIR_X_BITS;                          // an input code as a signed number
    typedef ap_int<XB> x_t;
    typedef ap_int<XB + S + 1> packed_x_t;                  // x_t1 * 2^S + x_t0
    typedef ap_int<C::W_BITS + T + 1> packed_w_t;          // w[2q+1] * 2^T + w[2q] (w when T = 0)
    typedef ap_int<C::W_BITS + XB + S + T + 3> packed_p_t; // a chain's packed sum
    const unsigned SLOTS = C::GROUPS * C::NZ;
    // the rounding constant: half of each field below the top one, so none borrows from the next
    const packed_p_t half = QUAD ? packed_p_t((packed_p_t(1) << (T - 1)) + (packed_p_t(1) << (S - 1))
                                              + (packed_p_t(1) << (S + T - 1)))
                                 : packed_p_t(packed_p_t(1) << (S - 1));
    typename C::acc_t acc0[C::PE], acc1[C::PE];
#pragma HLS ARRAY_PARTITION variable=acc0 complete
#pragma HLS ARRAY_PARTITION variable=acc1 complete
    unsigned row = 0, sel = 0;

pair_fold_out:
    for (unsigned nf = 0; nf < C::NF; nf++) {
    pair_fold_in:
        for (unsigned kf = 0; kf < C::KF; kf++) {
#pragma HLS PIPELINE II=1
            EINHLS_CSIM_COUNT();
            typename C::acc_t dot0[C::PE], dot1[C::PE];   // modulo 2^ACC_BITS, exact at the end
#pragma HLS ARRAY_PARTITION variable=dot0 complete
#pragma HLS ARRAY_PARTITION variable=dot1 complete
        pair_owner:
            for (unsigned q = 0; q < OWNERS; q++) {
#pragma HLS UNROLL
                const unsigned p = QUAD ? 2 * q : q;      // the PE in the low fields
                const typename C::word_t word = WeightRom<C>::word(weights, row, sel, p);
                const typename C::word_t word_hi = WeightRom<C>::word(weights, row, sel, QUAD ? p + 1 : p);
                // the packed product of every slot t = g * NZ + j (one DSP each)
                packed_p_t prod[SLOTS];
#pragma HLS ARRAY_PARTITION variable=prod complete
            pair_group:
                for (unsigned g = 0; g < C::GROUPS; g++) {
#pragma HLS UNROLL
                pair_multiplier:
                    for (unsigned j = 0; j < C::NZ; j++) {
#pragma HLS UNROLL
                        const unsigned t = g * C::NZ + j;
                        const ap_int<C::W_BITS> w = ap_int<C::W_BITS>(WeightSlot<C>::bits(word, t));
                        const ap_int<C::W_BITS> w_hi = ap_int<C::W_BITS>(WeightSlot<C>::bits(word_hi, t));
                        const packed_w_t pw = QUAD ? packed_w_t((packed_w_t(w_hi) << T) + packed_w_t(w))
                                                   : packed_w_t(w);
                        const unsigned i = WeightSlot<C>::index(word, t);
                        const x_t a0 = x0[kf][g][i], a1 = x1[kf][g][i];   // one select, both tokens
                        const packed_x_t px = (packed_x_t(a1) << S) + packed_x_t(a0);
                        prod[t] = packed_p_t(pw) * packed_p_t(px);
                    }
                }
                typename C::acc_t lo0 = 0, lo1 = 0, hi0 = 0, hi1 = 0;
            chains:
                for (unsigned c = 0; c < SLOTS; c += C::PAIR_CHAIN) {
#pragma HLS UNROLL
                    // a chain's fields: PAIR_CHAIN products (a lone last slot adds nothing) + half
                    packed_p_t leaf = half + prod[c];
                    if (C::PAIR_CHAIN == 2 && c + 1 < SLOTS) leaf += prod[c + 1];
                    if (QUAD) {
                        // fields at 0 (PE p, token 0), T (p + 1, 0), S (p, 1) and S + T (p + 1, 1)
                        lo0 += typename C::acc_t(low_field<T_FIELD>(leaf, 0));
                        hi0 += typename C::acc_t(low_field<MID_FIELD>(leaf, T));
                        lo1 += typename C::acc_t(low_field<T_FIELD>(leaf, S));
                        hi1 += typename C::acc_t(leaf >> (S + T));
                    } else {
                        lo0 += typename C::acc_t(low_field<S>(leaf, 0));
                        lo1 += typename C::acc_t(leaf >> S);
                    }
                }
                dot0[p] = lo0;
                dot1[p] = lo1;
                if (QUAD) {
                    dot0[p + 1] = hi0;
                    dot1[p + 1] = hi1;
                }
            }
        pair_pe:
            for (unsigned p = 0; p < C::PE; p++) {
#pragma HLS UNROLL
                typedef FoldTail<C> tail;
                const typename C::acc_t sum0 = tail::accumulate(acc0[p], dot0[p], bias, p, nf, kf);
                const typename C::acc_t sum1 = tail::accumulate(acc1[p], dot1[p], bias, p, nf, kf);
                if (tail::last(kf)) {
                    const typename C::mult_t m = tail::multiplier(mult, p, nf);   // one read, both tokens
                    y0[nf][p] = tail::requantized(sum0, m);
                    y1[nf][p] = tail::requantized(sum1, m);
                }
            }
            next_rom_step<C>(row, sel);
        }
    }
}

// Two tokens in (one process: the reads follow each other), two out, token 0 first.
template <class C>
void linear_read_pair(hls::stream<ap_uint<C::IN_LANES * C::IN_BITS> >& in,
                      typename C::in_t x0[C::KF][C::GROUPS][C::GROUP],
                      typename C::in_t x1[C::KF][C::GROUPS][C::GROUP]) {
    linear_read<C>(in, x0);
    linear_read<C>(in, x1);
}

template <class C>
void linear_write_pair(const typename C::out_t y0[C::NF][C::PE], const typename C::out_t y1[C::NF][C::PE],
                       hls::stream<ap_uint<C::OUT_LANES * C::OUT_BITS> >& out) {
    linear_write<C>(y0, out);
    linear_write<C>(y1, out);
}

// The weight ROM's placement, as linear_mac_array: one ROM per PE and limb, or one wide UltraRAM.
template <class C, bool URAM = (C::ROM_KIND == 2)>
struct pair_mac_array {
    static void run(const typename C::in_t x0[C::KF][C::GROUPS][C::GROUP],
                    const typename C::in_t x1[C::KF][C::GROUPS][C::GROUP],
                    typename C::out_t y0[C::NF][C::PE], typename C::out_t y1[C::NF][C::PE],
                    const typename C::limb_t weights[C::ROM_BANKS][C::ROM_DEPTH][C::LIMBS],
                    const typename C::acc_t bias[C::PE][C::NF],
                    const typename C::mult_t mult[C::PE][C::MULT_DEPTH]) {
#pragma HLS INLINE
#pragma HLS ARRAY_PARTITION variable=weights complete dim=1
#pragma HLS ARRAY_PARTITION variable=weights complete dim=3
        linear_pair_compute<C>(x0, x1, y0, y1, weights, bias, mult);
    }
};

template <class C>
struct pair_mac_array<C, true> {
    static void run(const typename C::in_t x0[C::KF][C::GROUPS][C::GROUP],
                    const typename C::in_t x1[C::KF][C::GROUPS][C::GROUP],
                    typename C::out_t y0[C::NF][C::PE], typename C::out_t y1[C::NF][C::PE],
                    const typename C::limb_t weights[C::ROM_BANKS][C::ROM_DEPTH][C::LIMBS],
                    const typename C::acc_t bias[C::PE][C::NF],
                    const typename C::mult_t mult[C::PE][C::MULT_DEPTH]) {
#pragma HLS INLINE
#pragma HLS ARRAY_RESHAPE variable=weights complete dim=1
#pragma HLS ARRAY_RESHAPE variable=weights complete dim=3
#pragma HLS BIND_STORAGE variable=weights type=rom_1p impl=uram
        linear_pair_compute<C>(x0, x1, y0, y1, weights, bias, mult);
    }
};

// The Linear unit with token pairs: read, compute and write of a pair as a dataflow pipeline.
template <class C>
void linear_pair(hls::stream<ap_uint<C::IN_LANES * C::IN_BITS> >& in,
                 hls::stream<ap_uint<C::OUT_LANES * C::OUT_BITS> >& out,
                 const typename C::limb_t weights[C::ROM_BANKS][C::ROM_DEPTH][C::LIMBS],
                 const typename C::acc_t bias[C::PE][C::NF],
                 const typename C::mult_t mult[C::PE][C::MULT_DEPTH]) {
#pragma HLS DATAFLOW
    static_assert(C::PAIR_CHAIN == 1 || C::PAIR_CHAIN == 2, "a chain sums one or two packed products");
    static_assert(C::TOKEN_SHIFT >= 2, "the low field holds at least a sign and one bit");
    static_assert(C::PE_SHIFT == 0 || (C::PE_SHIFT >= 2 && C::TOKEN_SHIFT - C::PE_SHIFT >= 2 && C::PE % 2 == 0),
                  "four products per DSP: fields of at least two bits, PEs in pairs");
    typename C::in_t x0[C::KF][C::GROUPS][C::GROUP], x1[C::KF][C::GROUPS][C::GROUP];
#pragma HLS ARRAY_PARTITION variable=x0 complete dim=2
#pragma HLS ARRAY_PARTITION variable=x0 complete dim=3
#pragma HLS ARRAY_PARTITION variable=x1 complete dim=2
#pragma HLS ARRAY_PARTITION variable=x1 complete dim=3
    typename C::out_t y0[C::NF][C::PE], y1[C::NF][C::PE];
#pragma HLS ARRAY_PARTITION variable=y0 complete dim=2
#pragma HLS ARRAY_PARTITION variable=y1 complete dim=2
    linear_read_pair<C>(in, x0, x1);
    pair_mac_array<C>::run(x0, x1, y0, y1, weights, bias, mult);
    linear_write_pair<C>(y0, y1, out);
}

}  // namespace einhls

#endif  // EINHLS_LINEAR_H

// einhls_linear: y = requant(bias + W x), dense or N:M sparse (docs/hardware.md, "Linear unit").
//
// Dataflow (every arrow a valid/ready stream, frames counted in beats):
//
//   s_axis (IN_LANES) -> einhls_lanes -> input buffer (2 banks x KF words of SIMD inputs)
//     -> MAC array: NF*KF steps per frame, nf outer / kf inner, one step per cycle
//     -> accumulators (PE x ACC_BITS) -> einhls_fifo (rows of PE sums: a frame plus those in flight)
//     -> einhls_lanes PE -> RQ_LANES -> einhls_requant (+ bias[c], * M[c], rne, clamp)
//     -> einhls_lanes RQ_LANES -> OUT_LANES -> m_axis
//
// Overlap: the loader fills one input bank while the MAC array reads the other, and the output
// FIFO holds a whole frame of sums, so frame f+1 loads, frame f computes and frame f-1 drains at
// the same time; the steady-state interval is max(NF*KF, input beats, output beats) cycles.
//
// MAC array.  Step (nf, kf) reads weight ROM word nf*KF + kf and input word kf of the bank being
// computed.  The weight word holds, for PE p (low bits first):
//   dense (NNZ == GROUP): SIMD weights W[nf*PE+p][kf*SIMD+s], W_BITS each, s = 0 first;
//   sparse N:M (NNZ < GROUP): for each of the G = SIMD/GROUP groups and each of its NNZ slots j,
//     a value (W_BITS, low) and an index (IDX_BITS, high); multiplier (p, g, j) computes
//     value * x[kf*SIMD + g*GROUP + index], its input picked by a GROUP:1 multiplexer.
// So the array has PE*SIMD multipliers dense and PE*SIMD*NNZ/GROUP sparse (half for 2:4).
// Pipeline: ROM and input buffer read -> operand registers (sparse: after the multiplexer)
// -> product registers (DSP A/B/M registers) [-> DSP post-adder, PACK_CHAIN = 2] -> adder tree
// per PE -> accumulator.  The array never stalls: a row starts only when the FIFO has room for
// it (credits), and a frame only when its input bank is full.
// PACK = 2 (dense): PEs 2q and 2q+1 share each multiplier, two products per DSP (see g_prod);
// the emitter enables it only when it has proven the packed products exact for these weights.
// PACK = 2 (N:M): the same, for a layer whose row pairs (2r, 2r+1) share one index pattern
// (codegen/ir/sparsity.py row_pairs_share_nm): the ROM holds both rows at the pair's indices, so
// the even PE's multiplexer picks the input of both products and the odd PE's is left unused
// (synthesis removes it): half the DSPs and half the multiplexers of the unpacked N:M array.
// PACK = 4 (dense, <= 4-bit operands, one token): PEs 4q..4q+3 share each multiplier, four
// products per DSP for one vector (PE quads):
//     P = (w[4q+3] * 2^(3S) + w[4q+2] * 2^(2S) + w[4q+1] * 2^S + w[4q]) * x
//         + 2^(S-1) + 2^(2S-1) + 2^(3S-1)                      (S = PACK_SHIFT)
// with PE 4q + i's product (or chain sum) in the field at bit iS.  The ROM holds the packed
// weight's digits, not the weights (codegen/schedule/packing.py quad_digits), so the packed weight
// is their concatenation: no pre-adders in the fabric (see g_weight_quad).
// MUL_LUT = 1: products built from LUT adders (the emitter's choice for operands of <= 4 bits).
// TOKEN_PACK = 2 (dense or N:M): two consecutive tokens share every weight read.  An input bank
// holds two tokens (2 x KF words), the fold runs once for both, and each multiplier computes
//     P = w * (x_t1 * 2^S + x_t0) + 2^(S-1)                (S = TOKEN_SHIFT)
// the activation pair packed in the DSP's wide port (pre-adder), one weight on the other: one
// DSP gives two products, also when an N:M multiplexer picks x (both tokens use the same index).
// The fields split as for PACK = 2 (token 0 in the low field, token 1 above), into two adder
// trees and two accumulator rows; token 0's rows go to one FIFO and token 1's to a second, and
// the output drains all of token 0, then all of token 1 (tokens leave in order).  Token pairs
// need an even number of tokens: the scheduler only pairs such tensors.  Interval: NF*KF cycles
// per PAIR of tokens; latency grows by one token's input.
// PACK = 2 with TOKEN_PACK = 2 (dense, even PE): both at once, four products per DSP:
//     P = (w[2q+1] * 2^T + w[2q]) * (x_t1 * 2^S + x_t0) + 2^(T-1) + 2^(S-1) + 2^(S+T-1)
// (T = PACK_SHIFT, S = TOKEN_SHIFT) holds PE 2q / token 0 at bit 0, PE 2q+1 / token 0 at T,
// PE 2q / token 1 at S and PE 2q+1 / token 1 at S + T (see g_packed).
//
// Exactness.  ACC_BITS is the exact range of bias + W x (codegen/ir/types.py, dot_product_range).
// The MAC array accumulates W x without the bias, modulo 2^ACC_BITS, and the requant stage adds
// the bias modulo 2^ACC_BITS: the sum is the exact accumulator because it fits ACC_BITS.
// Weights are signed two's complement (the emitter widens unsigned weight types by one bit).
//
// Requantization is done after the FIFO on RQ_LANES elements per cycle instead of on all PE
// outputs at once: the emitter picks RQ_LANES (a divisor of PE) just large enough to keep up with
// one row every KF cycles, so a layer with KF >= PE needs a single requant multiplier.
//
// Weight ROM: synchronous read, $readmemh(WEIGHT_FILE), NF*KF words; ROM_KIND says where it lives
// (LUTs, block RAM, UltraRAM), chosen by the scheduler (codegen/schedule/cost.py: place_roms).
// In UltraRAM (72 x 4096 blocks) a narrow word shares a row: WORDS_PER_ROW consecutive words per
// row, word s in row s / WORDS_PER_ROW at bits [(s mod WORDS_PER_ROW) * WWORD, +WWORD), both
// counted, not divided; WEIGHT_FILE and the w_load port then carry rows (cost.py: uram_packing).
// Bias and per-channel multipliers: ROMs of einhls_requant, RQ_LANES values per word.
//
// REPS > 1: a span fold of a contraction stage (codegen/schedule/contraction.py span_options).
// A frame is REPS input frames of K elements (the repeats r, one after another) and N = REPS x
// REP_N outputs, output o = r * REP_N + n computing W[n] x[r]: the emitter's ROM, bias and
// multipliers are those of the tiled layer (ir/contraction.py as_span_linear), so the PE slots run
// over the flattened outputs, NF = ceil(N / PE) groups of KF steps, and a group may start in one
// repeat and end in the next (PE < REP_N).  An input bank holds all REPS frames ({bank, r, kf});
// each step reads word kf of the group's first repeat and of the next one, and PE p takes the
// second where p >= REP_N - (the group's first output within its repeat).  With PACK = 2 the
// emitter keeps PE and REP_N even, so a pair never straddles two repeats.  Dense, one token.

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_linear #(
    parameter integer K          = 16,     // inputs per frame
    parameter integer N          = 8,      // outputs per frame
    parameter integer SIMD       = 4,      // inputs per step (a multiple of GROUP when sparse)
    parameter integer PE         = 2,      // outputs per step
    parameter integer IN_LANES   = 4,      // elements per input beat
    parameter integer OUT_LANES  = 2,      // elements per output beat
    parameter integer IN_BITS    = 8,
    parameter integer IN_SIGNED  = 1,
    parameter integer W_BITS     = 8,      // signed weight width
    parameter integer ACC_BITS   = 24,     // exact accumulator width (signed)
    parameter integer OUT_BITS   = 8,
    /* verilator lint_off UNUSEDPARAM */
    parameter integer OUT_SIGNED = 1,      // documentation: LO/HI already encode the output range
    /* verilator lint_on UNUSEDPARAM */
    parameter integer NNZ        = 1,      // N of N:M (non-zeros per group); NNZ == GROUP: dense
    parameter integer GROUP      = 1,      // M of N:M
    parameter integer M_BITS     = 1,      // requant multiplier width (unsigned)
    parameter integer PER_CHANNEL = 0,     // 1: one multiplier per output from MULT_FILE
    parameter [63:0]  MULT       = 1,      // the multiplier when PER_CHANNEL = 0
    parameter integer SHIFT      = 0,
    parameter signed [63:0] ZP   = 0,
    parameter signed [63:0] LO   = -128,
    parameter signed [63:0] HI   = 127,
    parameter integer RQ_LANES   = 1,      // outputs requantized per cycle (divides PE)
    parameter integer V_BITS     = ACC_BITS, // requant input width (>= ACC_BITS)
    parameter integer MUL_LUT    = 0,      // 1: products from LUT adders, never DSPs
    parameter integer PACK       = 1,      // 2 (4): two (four) PEs share one multiplier (4: dense only)
    parameter integer PACK_SHIFT = 16,     // S: offset of the next PE's product when PACK = 2 or 4
    parameter integer PACK_CHAIN = 1,      // products summed per DSP chain before the tree (1, 2)
    parameter integer TOKEN_PACK = 1,      // 2: two tokens share each weight read (with PACK = 2: four products a DSP)
    parameter integer TOKEN_SHIFT = 16,    // S: offset of token 1's product when TOKEN_PACK = 2
    parameter integer TREE_STAGE = 2,      // adder-tree levels per pipeline register
    parameter integer FIFO_DEPTH = 2,      // rows of PE sums buffered (power of two, >= 2)
    parameter integer ROM_KIND   = 1,      // weight ROM in LUTs (0), block RAM (1) or UltraRAM (2): the scheduler decides
    parameter integer WORDS_PER_ROW = 1,   // weight words per UltraRAM row (ROM_KIND = 2)
    parameter integer XBUF_LUTRAM = 0,     // 1: the input buffer in LUT RAM (ram_style "distributed"): the scheduler decides
    parameter integer REPS       = 1,      // > 1: a span fold, N = REPS x REP_N outputs over REPS input frames (see below)
    parameter integer REP_N      = N,      // outputs per repeat of a span fold
    // width of a weight memory row (WORDS_PER_ROW x WWORD below; a parameter because the
    // w_load_data port needs it)
    parameter integer W_LOAD_BITS = WORDS_PER_ROW * PE * ((NNZ != GROUP) ? SIMD / GROUP * NNZ : SIMD)
                                  * (W_BITS + ((NNZ != GROUP) ? ((GROUP <= 2) ? 1 : $clog2(GROUP)) : 0)),
    parameter         WEIGHT_FILE = "weights.mem",
    parameter         BIAS_FILE   = "bias.mem",
    parameter         MULT_FILE   = "mult.mem"
) (
    input  wire                          clk,
    input  wire                          rst,

    input  wire [IN_LANES*IN_BITS-1:0]   s_axis_tdata,
    input  wire                          s_axis_tvalid,
    output wire                          s_axis_tready,

    output wire [OUT_LANES*OUT_BITS-1:0] m_axis_tdata,
    output wire                          m_axis_tvalid,
    input  wire                          m_axis_tready,

    // weight load (ROM_KIND = 2 only: UltraRAM holds no bitstream contents): row w_load_addr of
    // the weight memory (WORDS_PER_ROW words), in the layout of WEIGHT_FILE; unused (tie to zero)
    // for the other kinds
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire                          w_load_en,
    input  wire [31:0]                   w_load_addr,
    input  wire [W_LOAD_BITS-1:0]        w_load_data
    /* verilator lint_on UNUSEDSIGNAL */
);

    function integer cw(input integer n);   // counter width for 0..n-1, at least 1
        cw = (n <= 2) ? 1 : $clog2(n);
    endfunction

    localparam integer KF       = (K + SIMD - 1) / SIMD;
    localparam integer NF       = (N + PE - 1) / PE;
    localparam integer STEPS    = NF * KF;
    localparam         SPARSE   = NNZ != GROUP;
    localparam integer G        = SPARSE ? SIMD / GROUP : SIMD;    // groups per PE word
    localparam integer MULTS    = SPARSE ? G * NNZ : SIMD;         // multipliers per PE
    localparam integer IDX_BITS = (GROUP <= 2) ? 1 : $clog2(GROUP);
    localparam integer SLOT     = W_BITS + (SPARSE ? IDX_BITS : 0); // bits per multiplier slot
    localparam integer WWORD    = PE * MULTS * SLOT;               // weight ROM word
    localparam integer XB       = IN_BITS + ((IN_SIGNED != 0) ? 0 : 1);   // input as a signed number
    localparam integer PW       = W_BITS + XB;                     // exact product width
    localparam integer LW       = PW + PACK_CHAIN - 1;             // exact width of a tree leaf
    localparam integer TIN      = (LW < ACC_BITS) ? LW : ACC_BITS; // leaf as summed (mod 2^ACC)
    localparam integer MW       = (PW > TIN) ? PW : TIN;          // a product, sign-extended
    localparam integer XWORD    = SIMD * IN_BITS;
    localparam integer TP       = (TOKEN_PACK == 2) ? 2 : 1;       // tokens per fold
    // PE pairs (quads) sharing DSPs; an N:M layer packs pairs only (whose rows share indices)
    localparam integer PACKS    = (PACK == 2 || (PACK >= 2 && !SPARSE)) ? PE / PACK : 0;
    localparam integer PACKED_PE = PACK * PACKS;                    // PEs in pairs (quads)
    localparam integer QWA      = W_BITS + 3 * PACK_SHIFT;          // a packed quad weight (PACK = 4)
    localparam integer LEAVES   = (MULTS + PACK_CHAIN - 1) / PACK_CHAIN; // adder-tree inputs per PE

    // w * x as a sum of shifted copies of the wider operand, one per bit of the narrower one
    // (two's complement: the top bit weighs -2^(n-1)).  Only adders, so synthesis keeps it in
    // LUTs; Yosys would put every product of 9 bits or more into a DSP, which is a waste for
    // the narrow operands MUL_LUT is chosen for.
    function automatic signed [MW-1:0] lut_mul(input signed [W_BITS-1:0] w, input signed [XB-1:0] x);
        integer i;
        reg signed [MW-1:0] sum;
        begin
            sum = 0;
            if (W_BITS <= XB) begin
                for (i = 0; i < W_BITS - 1; i = i + 1) begin
                    if (w[i]) sum = sum + (x <<< i);
                end
                if (w[W_BITS-1]) sum = sum - (x <<< (W_BITS - 1));
            end else begin
                for (i = 0; i < XB - 1; i = i + 1) begin
                    if (x[i]) sum = sum + (w <<< i);
                end
                if (x[XB-1]) sum = sum - (w <<< (XB - 1));
            end
            lut_mul = sum;
        end
    endfunction

    // Packed products (g_packed): field f of a product of WP weights and TP tokens holds weight
    // f % WP of token f / WP and starts at this bit.
    function automatic integer field_offset(input integer f, input integer wp);
        field_offset = (f % wp) * PACK_SHIFT + (f / wp) * TOKEN_SHIFT;
    endfunction

    // the constant that lifts every field of a packed product but the top one by half its range
    function automatic [63:0] field_halves(input integer fields, input integer wp);
        integer f;
        begin
            field_halves = 64'd0;
            for (f = 1; f < fields; f = f + 1) begin
                field_halves = field_halves + (64'd1 << (field_offset(f, wp) - 1));
            end
        end
    endfunction

    // The packed weight of a PE quad, V = w3 * 2^(3S) + w2 * 2^(2S) + w1 * 2^S + w0, from the
    // digits e3..e0 its ROM slots hold (packing.py quad_digits: e0 = w0, e_i = w_i - 1 where
    // e_(i-1) < 0): V's two's complement is {e3, e2, e1, e0} with the low three sign-extended to
    // S bits each, so the packing is wiring.
    function automatic [QWA-1:0] quad_weight(input [4*W_BITS-1:0] digits);
        reg signed [PACK_SHIFT-1:0] d0, d1, d2;
        begin
            d0 = $signed(digits[0 +: W_BITS]);
            d1 = $signed(digits[W_BITS +: W_BITS]);
            d2 = $signed(digits[2*W_BITS +: W_BITS]);
            quad_weight = {digits[3*W_BITS +: W_BITS], d2, d1, d0};
        end
    endfunction

    localparam integer KW = cw(KF);
    localparam integer NW = cw(NF);
    localparam integer SW = cw(STEPS);
    localparam integer LAST_KF_I   = KF - 1;
    localparam integer LAST_NF_I   = NF - 1;
    localparam integer LAST_STEP_I = STEPS - 1;
    localparam [KW-1:0] LAST_KF   = LAST_KF_I[KW-1:0];
    localparam [NW-1:0] LAST_NF   = LAST_NF_I[NW-1:0];
    localparam [SW-1:0] LAST_STEP = LAST_STEP_I[SW-1:0];

    // =============================================================== input: lanes -> SIMD words
    wire [XWORD-1:0] xin_tdata;
    wire             xin_tvalid;
    wire             xin_tready;

    einhls_lanes #(
        .SIZE(K), .BITS(IN_BITS), .IN_LANES(IN_LANES), .OUT_LANES(SIMD)
    ) u_in_lanes (
        .clk(clk), .rst(rst),
        .s_axis_tdata(s_axis_tdata), .s_axis_tvalid(s_axis_tvalid), .s_axis_tready(s_axis_tready),
        .m_axis_tdata(xin_tdata), .m_axis_tvalid(xin_tvalid), .m_axis_tready(xin_tready)
    );

    // ========================================================= double-buffered input memory
    // Address {bank, kf} ({bank, token, kf} with TOKEN_PACK = 2); bank_full[b] is set when the
    // loader has written all KF words (of both tokens) of bank b and cleared when the MAC array has
    // issued the last step that reads it.
    localparam integer SPAN = (REPS > 1) ? 1 : 0;
    localparam integer RPW  = cw(REPS);                   // repeat index of a span fold's bank
    localparam integer XAW = KW + 1 + TP - 1 + SPAN * RPW;
    // where block RAM is what a design runs out of, the scheduler puts this buffer in LUT RAM
    // (schedule/lutram.py); "auto" leaves it to synthesis, as without the attribute
    /* verilator lint_off UNUSEDPARAM */   // read by the ram_style attribute only
    localparam XBUF_STYLE = (XBUF_LUTRAM != 0) ? "distributed" : "auto";
    /* verilator lint_on UNUSEDPARAM */
    (* ram_style = XBUF_STYLE *)
    reg [XWORD-1:0] xbuf [0:(1 << XAW)-1];
    reg [1:0]       bank_full = 2'b00;
    reg             load_bank = 1'b0;
    reg [KW-1:0]    load_idx = 0;
    reg             load_tok = 1'b0;    // the token of the pair being loaded (TOKEN_PACK = 2)
    /* verilator lint_off UNUSEDSIGNAL */
    reg [RPW-1:0]   load_rep = 0;       // the repeat being loaded (span fold)
    /* verilator lint_on UNUSEDSIGNAL */
    localparam integer LAST_REP_I = REPS - 1;
    localparam [RPW-1:0] LAST_REP = LAST_REP_I[RPW-1:0];
    reg             comp_bank = 1'b0;
    wire [XAW-1:0]  load_addr;

    assign xin_tready = !bank_full[load_bank];
    wire load_fire = xin_tvalid && xin_tready;
    wire load_last = load_fire && load_idx == LAST_KF;          // the last word of a token
    wire load_done = load_last && (TP == 1 || load_tok)         // ... and of the bank
                     && (SPAN == 0 || load_rep == LAST_REP);

    always @(posedge clk) begin
        if (load_fire) begin
            xbuf[load_addr] <= xin_tdata;
        end
    end

    // ============================================================= MAC array: issue (stage 0)
    reg [KW-1:0] kf = 0;
    reg [NW-1:0] nf = 0;
    reg [SW-1:0] step = 0;

    // Credits: free FIFO rows not yet claimed by a row in flight.  A row is claimed when its
    // first step issues, so the FIFO can never overflow and the MAC pipeline never stalls.
    localparam integer CRW = $clog2(FIFO_DEPTH + 1) + 1;
    localparam [CRW-1:0] CREDITS = FIFO_DEPTH[CRW-1:0];
    // With TOKEN_PACK = 2 a row goes to two FIFOs (one per token), each with its own credits.
    reg  [CRW-1:0] credits = CREDITS;
    /* verilator lint_off UNUSEDSIGNAL */
    reg  [CRW-1:0] credits_t1 = CREDITS;
    /* verilator lint_on UNUSEDSIGNAL */
    wire           row_start = kf == {KW{1'b0}};
    wire           have_credit = credits != {CRW{1'b0}} && (TP == 1 || credits_t1 != {CRW{1'b0}});
    wire           issue = bank_full[comp_bank] && (!row_start || have_credit);
    wire           frame_done = issue && kf == LAST_KF && nf == LAST_NF;
    wire           fifo_pop;
    wire           fifo_pop_t1;

    always @(posedge clk) begin
        if (issue) begin
            kf   <= (kf == LAST_KF) ? {KW{1'b0}} : kf + 1'b1;
            step <= (step == LAST_STEP) ? {SW{1'b0}} : step + 1'b1;
            if (kf == LAST_KF) begin
                nf <= (nf == LAST_NF) ? {NW{1'b0}} : nf + 1'b1;
            end
        end
        if (frame_done) begin
            comp_bank <= ~comp_bank;
        end
        if (load_fire) begin
            load_idx <= (load_idx == LAST_KF) ? {KW{1'b0}} : load_idx + 1'b1;
        end
        if (load_last) begin
            load_tok <= (TP == 2) ? ~load_tok : 1'b0;
            load_rep <= (SPAN == 0 || load_rep == LAST_REP) ? {RPW{1'b0}} : load_rep + 1'b1;
        end
        if (load_done) begin
            load_bank <= ~load_bank;
        end
        bank_full[0] <= (bank_full[0] || (load_done && !load_bank)) && !(frame_done && !comp_bank);
        bank_full[1] <= (bank_full[1] || (load_done &&  load_bank)) && !(frame_done &&  comp_bank);
        credits <= credits - {{(CRW-1){1'b0}}, issue && row_start} + {{(CRW-1){1'b0}}, fifo_pop};
        if (TP == 2) begin   // (unused, held at CREDITS, without token pairs)
            credits_t1 <= credits_t1 - {{(CRW-1){1'b0}}, issue && row_start} + {{(CRW-1){1'b0}}, fifo_pop_t1};
        end
        if (rst) begin
            kf        <= {KW{1'b0}};
            nf        <= {NW{1'b0}};
            step      <= {SW{1'b0}};
            comp_bank <= 1'b0;
            load_idx  <= {KW{1'b0}};
            load_bank <= 1'b0;
            load_tok  <= 1'b0;
            load_rep  <= {RPW{1'b0}};
            bank_full <= 2'b00;
            credits   <= CREDITS;
            credits_t1 <= CREDITS;
        end
    end

    // ============================================================ stage 1: memory reads
    wire [WWORD-1:0] w1;   // the step's weight word, one cycle after the step is issued
    // Deep ROMs go to block RAM or UltraRAM; shallow ones (a few words of a wide word) would waste
    // almost all of a BRAM's bits, so the scheduler's cost model puts them in LUTs.
    generate
        if (ROM_KIND == 2) begin : g_rom_ultra
            // UltraScale+ UltraRAM has no INIT contents: it powers up as zero (UG901, "Differences
            // between UltraRAM and Block RAM"), so the bitstream cannot hold these weights and
            // synthesis (Vivado, Yosys) maps only a memory with a write port to URAM288.  The
            // weights are written through the w_load port after configuration; a simulation
            // starts with them loaded (the `$readmemh` is not seen by synthesis).
            localparam integer ROWS = (STEPS + WORDS_PER_ROW - 1) / WORDS_PER_ROW;
            localparam integer RW = cw(ROWS);
            (* ram_style = "ultra" *)
            reg [W_LOAD_BITS-1:0] wrom [0:ROWS-1];
`ifndef SYNTHESIS
            initial begin
                $readmemh(WEIGHT_FILE, wrom);
            end
`endif
            always @(posedge clk) begin
                if (w_load_en) wrom[w_load_addr[RW-1:0]] <= w_load_data;
            end
            if (WORDS_PER_ROW == 1) begin : g_row_is_word
                reg [WWORD-1:0] word1 = 0;
                always @(posedge clk) word1 <= wrom[step];
                assign w1 = word1;
            end else begin : g_row_of_words
                // row = step / WORDS_PER_ROW and sel = step mod WORDS_PER_ROW, counted alongside
                // step (no divider, any WORDS_PER_ROW); the row is read, and sel, registered with
                // it, picks the word (a WORDS_PER_ROW:1 multiplexer after the memory's output)
                localparam integer SEL_BITS = cw(WORDS_PER_ROW);
                localparam integer LAST_SEL_I = WORDS_PER_ROW - 1;
                localparam [SEL_BITS-1:0] LAST_SEL = LAST_SEL_I[SEL_BITS-1:0];
                reg [RW-1:0]          row = 0;
                reg [SEL_BITS-1:0]    sel = 0;
                reg [W_LOAD_BITS-1:0] row1 = 0;
                reg [SEL_BITS-1:0]    sel1 = 0;
                always @(posedge clk) begin
                    if (issue) begin
                        if (step == LAST_STEP) begin
                            row <= {RW{1'b0}};
                            sel <= {SEL_BITS{1'b0}};
                        end else if (sel == LAST_SEL) begin
                            row <= row + 1'b1;
                            sel <= {SEL_BITS{1'b0}};
                        end else begin
                            sel <= sel + 1'b1;
                        end
                    end
                    if (rst) begin
                        row <= {RW{1'b0}};
                        sel <= {SEL_BITS{1'b0}};
                    end
                end
                always @(posedge clk) begin
                    row1 <= wrom[row];
                    sel1 <= sel;
                end
                assign w1 = row1[sel1 * WWORD +: WWORD];
            end
        end else if (ROM_KIND == 1) begin : g_rom_block
            (* rom_style = "block" *)
            reg [WWORD-1:0] wrom [0:STEPS-1];
            reg [WWORD-1:0] word1 = 0;
            initial begin
                $readmemh(WEIGHT_FILE, wrom);
            end
            always @(posedge clk) word1 <= wrom[step];
            assign w1 = word1;
        end else begin : g_rom_lut
            // no attribute: Vivado infers a distributed ROM; Yosys maps it to LUT RAM or logic
            reg [WWORD-1:0] wrom [0:STEPS-1];
            reg [WWORD-1:0] word1 = 0;
            initial begin
                $readmemh(WEIGHT_FILE, wrom);
            end
            always @(posedge clk) word1 <= wrom[step];
            assign w1 = word1;
        end
    endgenerate

    reg [XWORD-1:0] x1 = 0;
    /* verilator lint_off UNUSEDSIGNAL */
    reg [XWORD-1:0] x1_t1 = 0;          // token 1's word (TOKEN_PACK = 2)
    /* verilator lint_on UNUSEDSIGNAL */
    reg             valid1 = 1'b0;
    reg             first1 = 1'b0;
    reg             last1 = 1'b0;
    wire [XAW-1:0]  comp_addr;           // token 0's word; token 1's is KF words (2^KW) above

    // span fold: the group's first repeat, and where in it the group starts (the first PE
    // reading the next repeat is REP_N - rep_base); x1_next is word kf of the next repeat
    localparam integer BW = cw(REP_N + PE + 1) + 1;
    /* verilator lint_off UNUSEDSIGNAL */
    reg [RPW-1:0]   rep0 = 0;
    reg [BW-1:0]    rep_base = 0;
    reg [XWORD-1:0] x1_next = 0;
    reg [BW-1:0]    split1 = 0;          // PEs p >= split1 take x1_next (stage 1, with x1)
    /* verilator lint_on UNUSEDSIGNAL */
    localparam [BW-1:0] REP_N_W = REP_N[BW-1:0];
    localparam [BW-1:0] PE_W    = PE[BW-1:0];

    generate
        if (SPAN != 0) begin : g_addr_span
            wire [BW-1:0] next_base = rep_base + PE_W;
            assign load_addr = {load_bank, load_rep, load_idx};
            assign comp_addr = {comp_bank, rep0, kf};
            always @(posedge clk) begin
                x1_next <= xbuf[{comp_bank, rep0 + 1'b1, kf}];
                split1  <= REP_N_W - rep_base;
                if (issue && kf == LAST_KF) begin
                    if (nf == LAST_NF) begin
                        rep0     <= {RPW{1'b0}};
                        rep_base <= {BW{1'b0}};
                    end else if (next_base >= REP_N_W) begin
                        rep0     <= rep0 + 1'b1;
                        rep_base <= next_base - REP_N_W;
                    end else begin
                        rep_base <= next_base;
                    end
                end
                if (rst) begin
                    rep0     <= {RPW{1'b0}};
                    rep_base <= {BW{1'b0}};
                end
            end
        end else if (TP == 2) begin : g_addr_pair
            assign load_addr = {load_bank, load_tok, load_idx};
            assign comp_addr = {comp_bank, 1'b0, kf};
            always @(posedge clk) begin
                x1_t1 <= xbuf[{comp_bank, 1'b1, kf}];
            end
        end else begin : g_addr_one
            assign load_addr = {load_bank, load_idx};
            assign comp_addr = {comp_bank, kf};
        end
    endgenerate

    always @(posedge clk) begin
        x1     <= xbuf[comp_addr];
        valid1 <= issue;
        first1 <= kf == {KW{1'b0}};
        last1  <= kf == LAST_KF;
        if (rst) begin
            valid1 <= 1'b0;
        end
    end

    // ========================================== stage 2: operands (stage 3: products)
    reg [PE*MULTS*W_BITS-1:0] a2 = 0;      // weights
    /* verilator lint_off UNUSEDSIGNAL */   // PACK = 2: the odd PE of a pair uses the even one's
    reg [PE*MULTS*XB-1:0]     b2 = 0;      // the input each multiplier uses, as signed numbers
    reg [PE*MULTS*XB-1:0]     b2_t1 = 0;   // token 1's input of each multiplier (TOKEN_PACK = 2)
    /* verilator lint_on UNUSEDSIGNAL */
    reg [2:0]                 tag2 = 0, tag3 = 0, tag4 = 0;   // {valid, first, last}
    wire [PE*MULTS*W_BITS-1:0] a_next;
    wire [PE*MULTS*XB-1:0]     b_next;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [PE*MULTS*XB-1:0]     b_next_t1;
    /* verilator lint_on UNUSEDSIGNAL */
    wire [TP*PE*LEAVES*TIN-1:0] leaves;    // registered products (sums of PACK_CHAIN), tree inputs

    genvar p, j, f;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_pe
            for (j = 0; j < MULTS; j = j + 1) begin : g_operand
                localparam integer M = p * MULTS + j;
                wire [SLOT-1:0] slot = w1[M*SLOT +: SLOT];
                wire [IN_BITS-1:0] x;
                /* verilator lint_off UNUSEDSIGNAL */
                wire [IN_BITS-1:0] x_t1;     // the same select on token 1's word
                /* verilator lint_on UNUSEDSIGNAL */
                if (SPARSE) begin : g_sparse
                    // multiplier j of group g picks x[g*GROUP + index]: a GROUP:1 multiplexer
                    localparam integer GI = j / NNZ;
                    wire [GROUP*IN_BITS-1:0] grp = x1[GI*GROUP*IN_BITS +: GROUP*IN_BITS];
                    wire [GROUP*IN_BITS-1:0] grp_t1 = x1_t1[GI*GROUP*IN_BITS +: GROUP*IN_BITS];
                    wire [IDX_BITS-1:0] index = slot[W_BITS +: IDX_BITS];
                    assign x = grp[index*IN_BITS +: IN_BITS];
                    assign x_t1 = grp_t1[index*IN_BITS +: IN_BITS];
                end else if (SPAN != 0) begin : g_span
                    localparam [BW-1:0] P_W = p;
                    assign x = (P_W >= split1) ? x1_next[j*IN_BITS +: IN_BITS] : x1[j*IN_BITS +: IN_BITS];
                    assign x_t1 = x1_t1[j*IN_BITS +: IN_BITS];
                end else begin : g_dense
                    assign x = x1[j*IN_BITS +: IN_BITS];
                    assign x_t1 = x1_t1[j*IN_BITS +: IN_BITS];
                end
                assign a_next[M*W_BITS +: W_BITS] = slot[W_BITS-1:0];
                if (IN_SIGNED != 0) begin : g_signed
                    assign b_next[M*XB +: XB] = x;
                    assign b_next_t1[M*XB +: XB] = x_t1;
                end else begin : g_unsigned
                    assign b_next[M*XB +: XB] = {1'b0, x};
                    assign b_next_t1[M*XB +: XB] = {1'b0, x_t1};
                end
            end
        end

        // Products.  With PACK = 2 the first PACKED_PE PEs go in pairs (2q, 2q+1) that share the
        // input x, so one DSP computes both products:
        //     P = (w[2q+1] * 2^S + w[2q]) * x + 2^(S-1)          (S = PACK_SHIFT)
        // the packing in the DSP pre-adder, the constant in its post-adder.  With PACK_CHAIN = 2
        // a second DSP adds the packed product of the next input slot in its post-adder, so the
        // low field holds the sum of two products.  The emitter checks from the actual weights
        // that the low field's sum of w[2q] * x terms always lies in [-2^(S-1), 2^(S-1)); then
        // the field holds that sum + 2^(S-1), nothing borrows from the high part, and
        //     sum of w[2q] * x   = P[S-1:0] - 2^(S-1)   (the top bit of the field inverted)
        //     sum of w[2q+1] * x = P >>> S              (exactly)
        // PEs outside pairs (and every PE when PACK = 1) sum the same PACK_CHAIN products each.
        // Each leaf of the adder tree is one such sum: LEAVES = ceil(MULTS / PACK_CHAIN) per PE.
        for (p = 0; p < PE; p = p + 1) begin : g_prod
            for (j = 0; j < LEAVES; j = j + 1) begin : g_leaf
                localparam integer M0  = p * MULTS + j * PACK_CHAIN;    // first product of the leaf
                localparam integer TWO = (PACK_CHAIN == 2) && (j * 2 + 1 < MULTS);
                localparam integer L   = p * LEAVES + j;
                /* verilator lint_off UNUSEDSIGNAL */   // odd PEs of pairs; x_b when PACK_CHAIN = 1
                wire signed [XB-1:0] x_a = b2[M0*XB +: XB];
                wire signed [XB-1:0] x_b = b2[(M0 + TWO)*XB +: XB];
                /* verilator lint_on UNUSEDSIGNAL */
                if ((p < PACKED_PE && p % PACK == 0) || (TP == 2 && p >= PACKED_PE)) begin : g_packed
                    // One DSP, FIELDS = WP * TP products: the weight operand packs WP weights
                    // (PEs 2q and 2q+1, the second shifted by PACK_SHIFT), the input operand TP
                    // tokens (token 1 shifted by TOKEN_SHIFT, through the pre-adder), so
                    //     P = (w[2q+1] * 2^T + w[2q]) * (x_t1 * 2^S + x_t0) + HALF
                    // with the terms absent where WP or TP is 1: a pair (PACK = 2), a token pair
                    // (TOKEN_PACK = 2) or both, a quad; with PACK = 4 (one token) the weight
                    // operand packs PEs 4q..4q+3 at 0, S, 2S and 3S (S = PACK_SHIFT) and x is
                    // one input, a PE quad.  Field f (weight f % WP, token f / WP)
                    // starts at bit field_offset(f); HALF lifts every field but the top one by
                    // half its range.  The emitter proved every sum of PACK_CHAIN products in a
                    // low field lies in [-2^(w-1), 2^(w-1)) for its width w, so no field borrows
                    // from the next and each is its bits with the top bit inverted; the top field
                    // is P >>> field_offset(FIELDS - 1), exactly.
                    localparam integer WP     = (p < PACKED_PE) ? PACK : 1;
                    localparam integer FIELDS = WP * TP;
                    localparam integer WA     = (WP == 4) ? QWA : (WP == 2) ? W_BITS + PACK_SHIFT + 1 : W_BITS;
                    localparam integer XA     = (TP == 2) ? XB + TOKEN_SHIFT + 1 : XB;
                    localparam integer PPW    = WA + XA + 1;      // packed product (+1: sum of 2)
                    localparam [63:0] HALVES  = field_halves(FIELDS, WP);
                    localparam signed [PPW-1:0] HALF = HALVES[PPW-1:0];
                    /* verilator lint_off UNUSEDSIGNAL */   // w_b, v_b when PACK_CHAIN = 1
                    wire signed [WA-1:0] w_a;
                    wire signed [WA-1:0] w_b;
                    wire signed [XA-1:0] v_a;
                    wire signed [XA-1:0] v_b;
                    /* verilator lint_on UNUSEDSIGNAL */
                    if (WP == 2) begin : g_weight_pair
                        assign w_a = ($signed(a2[(M0+MULTS)*W_BITS +: W_BITS]) <<< PACK_SHIFT)
                                     + $signed(a2[M0*W_BITS +: W_BITS]);
                        assign w_b = ($signed(a2[(M0+TWO+MULTS)*W_BITS +: W_BITS]) <<< PACK_SHIFT)
                                     + $signed(a2[(M0+TWO)*W_BITS +: W_BITS]);
                    end else if (WP == 4) begin : g_weight_quad
                        // PE quads: the four weights' slots hold the packed weight's digits
                        assign w_a = quad_weight({a2[(M0+3*MULTS)*W_BITS +: W_BITS], a2[(M0+2*MULTS)*W_BITS +: W_BITS],
                                                  a2[(M0+MULTS)*W_BITS +: W_BITS], a2[M0*W_BITS +: W_BITS]});
                        assign w_b = quad_weight({a2[(M0+TWO+3*MULTS)*W_BITS +: W_BITS],
                                                  a2[(M0+TWO+2*MULTS)*W_BITS +: W_BITS],
                                                  a2[(M0+TWO+MULTS)*W_BITS +: W_BITS], a2[(M0+TWO)*W_BITS +: W_BITS]});
                    end else begin : g_weight_one
                        assign w_a = a2[M0*W_BITS +: W_BITS];
                        assign w_b = a2[(M0+TWO)*W_BITS +: W_BITS];
                    end
                    if (TP == 2) begin : g_token_pair
                        assign v_a = ($signed(b2_t1[M0*XB +: XB]) <<< TOKEN_SHIFT) + x_a;
                        assign v_b = ($signed(b2_t1[(M0+TWO)*XB +: XB]) <<< TOKEN_SHIFT) + x_b;
                    end else begin : g_token_one
                        assign v_a = x_a;
                        assign v_b = x_b;
                    end
                    reg  signed [PPW-1:0] pa = 0;     // stage 3
                    wire signed [PPW-1:0] leaf;
                    always @(posedge clk) begin
                        pa <= w_a * v_a + HALF;
                    end
                    if (PACK_CHAIN == 1) begin : g_one
                        assign leaf = pa;
                    end else begin : g_two
                        reg signed [PPW-1:0] pb = 0;      // stage 3
                        reg signed [PPW-1:0] pab = 0;     // stage 4: the post-adder of pb's DSP
                        if (TWO != 0) begin : g_b
                            always @(posedge clk) begin
                                pb <= w_b * v_b;
                            end
                        end
                        always @(posedge clk) begin
                            pab <= pa + pb;               // a lone last slot adds pb = 0
                        end
                        assign leaf = pab;
                    end
                    // field f feeds PE 2q + f % WP (its tree inputs follow PE 2q's by LEAVES) of
                    // token f / WP (token 1's trees follow token 0's by PE * LEAVES)
                    for (f = 0; f < FIELDS; f = f + 1) begin : g_field
                        localparam integer F_LO = field_offset(f, WP);
                        localparam integer OUT  = L + (f % WP) * LEAVES + (f / WP) * PE * LEAVES;
                        /* verilator lint_off UNUSEDSIGNAL */   // the sums fit TIN bits
                        if (f == FIELDS - 1) begin : g_top
                            wire signed [PPW-F_LO-1:0] field = leaf[PPW-1:F_LO];
                            assign leaves[OUT*TIN +: TIN] = field[TIN-1:0];
                        end else begin : g_low
                            localparam integer F_HI = field_offset(f + 1, WP);
                            localparam integer EW   = (F_HI - F_LO > TIN) ? F_HI - F_LO : TIN;
                            wire signed [F_HI-F_LO-1:0] field = {~leaf[F_HI-1], leaf[F_HI-2:F_LO]};
                            wire signed [EW-1:0] field_ext = field;
                            assign leaves[OUT*TIN +: TIN] = field_ext[TIN-1:0];
                        end
                        /* verilator lint_on UNUSEDSIGNAL */
                    end
                end else if (TP == 1 && p >= PACKED_PE) begin : g_single
                    wire signed [W_BITS-1:0] w_a = a2[M0*W_BITS +: W_BITS];
                    /* verilator lint_off UNUSEDSIGNAL */
                    wire signed [W_BITS-1:0] w_b = a2[(M0+TWO)*W_BITS +: W_BITS];
                    /* verilator lint_on UNUSEDSIGNAL */
                    /* verilator lint_off UNUSEDSIGNAL */
                    wire signed [MW-1:0] m_a;
                    wire signed [MW-1:0] m_b;
                    /* verilator lint_on UNUSEDSIGNAL */
                    if (MUL_LUT != 0) begin : g_lut
                        assign m_a = lut_mul(w_a, x_a);
                        assign m_b = lut_mul(w_b, x_b);
                    end else begin : g_dsp
                        assign m_a = w_a * x_a;      // exact, sign-extended to TIN
                        assign m_b = w_b * x_b;
                    end
                    reg  [TIN-1:0] pa = 0;            // stage 3
                    always @(posedge clk) begin
                        pa <= m_a[TIN-1:0];
                    end
                    if (PACK_CHAIN == 1) begin : g_one
                        assign leaves[L*TIN +: TIN] = pa;
                    end else begin : g_two
                        reg [TIN-1:0] pb = 0;             // stage 3
                        reg [TIN-1:0] pab = 0;            // stage 4
                        always @(posedge clk) begin
                            pb  <= (TWO != 0) ? m_b[TIN-1:0] : {TIN{1'b0}};
                            pab <= pa + pb;
                        end
                        assign leaves[L*TIN +: TIN] = pab;
                    end
                end
            end
        end
    endgenerate

    always @(posedge clk) begin
        a2    <= a_next;
        b2    <= b_next;
        b2_t1 <= b_next_t1;
        tag2  <= {valid1, first1, last1};
        tag3  <= tag2;
        tag4  <= tag3;
        if (rst) begin
            tag2 <= 3'b000;
            tag3 <= 3'b000;
            tag4 <= 3'b000;
        end
    end
    wire [2:0] leaf_tag = (PACK_CHAIN == 2) ? tag4 : tag3;

    // ====================================================== adder tree and accumulators
    wire [TP*PE*ACC_BITS-1:0] sum;       // token 0's PE sums, then token 1's (TOKEN_PACK = 2)
    wire [2:0]             sum_tag;

    einhls_adder_tree #(
        .GROUPS(TP*PE), .N_IN(LEAVES), .IN_BITS(TIN), .OUT_BITS(ACC_BITS),
        .STAGE(TREE_STAGE), .TAG_BITS(3)
    ) u_tree (
        .clk(clk), .in_data(leaves), .in_tag(leaf_tag), .out_data(sum), .out_tag(sum_tag)
    );

    wire sum_valid = sum_tag[2];
    wire sum_first = sum_tag[1];
    wire sum_last  = sum_tag[0];

    reg [TP*PE*ACC_BITS-1:0] acc = 0;
    reg                   row_valid = 1'b0;   // acc holds a finished row

    generate
        for (p = 0; p < TP*PE; p = p + 1) begin : g_acc
            always @(posedge clk) begin
                if (sum_valid) begin
                    acc[p*ACC_BITS +: ACC_BITS] <= (sum_first ? {ACC_BITS{1'b0}} : acc[p*ACC_BITS +: ACC_BITS])
                                                   + sum[p*ACC_BITS +: ACC_BITS];
                end
            end
        end
    endgenerate

    always @(posedge clk) begin
        // the finished row is written to the FIFO the cycle after; acc may already take the
        // first sum of the next row in that cycle (the FIFO samples the old value)
        row_valid <= sum_valid && sum_last;
        if (rst) begin
            row_valid <= 1'b0;
        end
    end

    // =============================================================== output FIFO of rows
    wire [PE*ACC_BITS-1:0] row_tdata;
    wire                   row_tvalid;
    wire                   row_tready;
    /* verilator lint_off UNUSEDSIGNAL */
    wire                   fifo_in_ready;     // always 1 thanks to the credits
    /* verilator lint_on UNUSEDSIGNAL */

    wire [PE*ACC_BITS-1:0] row0_tdata;
    wire                   row0_tvalid;
    wire                   row0_tready;

    einhls_fifo #(
        .DEPTH(FIFO_DEPTH), .WIDTH(PE*ACC_BITS)
    ) u_fifo (
        .clk(clk), .rst(rst),
        .s_axis_tdata(acc[PE*ACC_BITS-1:0]), .s_axis_tvalid(row_valid), .s_axis_tready(fifo_in_ready),
        .m_axis_tdata(row0_tdata), .m_axis_tvalid(row0_tvalid), .m_axis_tready(row0_tready)
    );

    assign fifo_pop = row0_tvalid && row0_tready;

    generate
        if (TP == 2) begin : g_fifo_t1
            // token 1's rows wait here while token 0's NF rows drain (FIFO_DEPTH >= NF)
            wire [PE*ACC_BITS-1:0] row1_tdata;
            wire                   row1_tvalid;
            /* verilator lint_off UNUSEDSIGNAL */
            wire                   fifo1_in_ready;   // always 1 thanks to the credits
            /* verilator lint_on UNUSEDSIGNAL */
            reg                    phase = 1'b0;     // the token being drained
            reg  [NW-1:0]          drained = 0;      // rows of it drained so far
            einhls_fifo #(
                .DEPTH(FIFO_DEPTH), .WIDTH(PE*ACC_BITS)
            ) u_fifo_t1 (
                .clk(clk), .rst(rst),
                .s_axis_tdata(acc[PE*ACC_BITS +: PE*ACC_BITS]), .s_axis_tvalid(row_valid),
                .s_axis_tready(fifo1_in_ready),
                .m_axis_tdata(row1_tdata), .m_axis_tvalid(row1_tvalid), .m_axis_tready(row_tready && phase)
            );
            assign fifo_pop_t1 = row1_tvalid && row_tready && phase;
            assign row0_tready = row_tready && !phase;
            assign row_tdata   = phase ? row1_tdata : row0_tdata;
            assign row_tvalid  = phase ? row1_tvalid : row0_tvalid;
            always @(posedge clk) begin
                if (row_tvalid && row_tready) begin
                    drained <= (drained == LAST_NF) ? {NW{1'b0}} : drained + 1'b1;
                    if (drained == LAST_NF) phase <= ~phase;
                end
                if (rst) begin
                    drained <= {NW{1'b0}};
                    phase   <= 1'b0;
                end
            end
        end else begin : g_fifo_one
            assign fifo_pop_t1 = 1'b0;
            assign row0_tready = row_tready;
            assign row_tdata   = row0_tdata;
            assign row_tvalid  = row0_tvalid;
        end
    endgenerate

    // ======================================= requantization on RQ_LANES outputs per cycle
    wire [RQ_LANES*ACC_BITS-1:0] rq_in_tdata;
    wire                         rq_in_tvalid;
    wire                         rq_in_tready;
    wire [RQ_LANES*OUT_BITS-1:0] rq_out_tdata;
    wire                         rq_out_tvalid;
    wire                         rq_out_tready;

    einhls_lanes #(
        .SIZE(N), .BITS(ACC_BITS), .IN_LANES(PE), .OUT_LANES(RQ_LANES)
    ) u_rq_lanes (
        .clk(clk), .rst(rst),
        .s_axis_tdata(row_tdata), .s_axis_tvalid(row_tvalid), .s_axis_tready(row_tready),
        .m_axis_tdata(rq_in_tdata), .m_axis_tvalid(rq_in_tvalid), .m_axis_tready(rq_in_tready)
    );

    einhls_requant #(
        .SIZE(N), .LANES(RQ_LANES), .IN_BITS(ACC_BITS), .IN_SIGNED(1), .V_BITS(V_BITS),
        .OFFSET_ROM(1), .OFF_BITS(ACC_BITS), .OFFSET_FILE(BIAS_FILE),
        .M_BITS(M_BITS), .MULT_ROM(PER_CHANNEL), .MULT(MULT), .MULT_FILE(MULT_FILE),
        .SHIFT(SHIFT), .ZP(ZP), .LO(LO), .HI(HI), .OUT_BITS(OUT_BITS)
    ) u_requant (
        .clk(clk), .rst(rst),
        .s_axis_tdata(rq_in_tdata), .s_axis_tvalid(rq_in_tvalid), .s_axis_tready(rq_in_tready),
        .m_axis_tdata(rq_out_tdata), .m_axis_tvalid(rq_out_tvalid), .m_axis_tready(rq_out_tready)
    );

    einhls_lanes #(
        .SIZE(N), .BITS(OUT_BITS), .IN_LANES(RQ_LANES), .OUT_LANES(OUT_LANES)
    ) u_out_lanes (
        .clk(clk), .rst(rst),
        .s_axis_tdata(rq_out_tdata), .s_axis_tvalid(rq_out_tvalid), .s_axis_tready(rq_out_tready),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready)
    );

endmodule

`resetall

// einhls_actmatmul: the per-head product of two activations over a sequence (self-attention's
// scores Q K^T and context P V), exactly codegen/ir/attention.py ActMatMul.reference:
//
//     acc[i, h, n] = sum_k (a[i, h, k] - A_ZP) * (B[h, k, n] - B_ZP)
//     y[i, h, n]   = clamp(rne(acc * MULT, SHIFT) + OUT_ZP, LO, HI)
//
// A sequence (frame) is TOKENS tokens on each input.  a (s0_axis) carries HEADS x INNER codes per
// token, element h * INNER + k.  b (s1_axis) carries, per token j:
//   LAYOUT = 0 ("nt", keys):   HEADS x INNER codes, B[h, k, n] = b[n = j, h * INNER + k] (COLS = TOKENS)
//   LAYOUT = 1 ("nn", values): HEADS x COLS codes,  B[h, k, n] = b[k = j, h * COLS + n]  (INNER = TOKENS)
// The output (m_axis) carries HEADS x COLS codes per a token, element h * COLS + n.
//
// Dataflow:
//
//   s1_axis (B_LANES) -> einhls_lanes -> words of WC codes, centred -> b buffer: NB banks x B_SEQS
//       sequences (B_SEQS = 2, ping-pong: the next sequence loads while this one computes;
//       B_SEQS = 1: the next sequence loads after this one's last row, half the memory)
//   s0_axis (A_LANES) -> einhls_lanes -> words of SIMD codes, centred -> a row buffer (2 rows)
//   MAC array: per a row HEADS x NF x KF steps (h outer, kf inner), SIMD x PE products per step
//   -> adder tree per PE -> accumulators -> einhls_fifo of PE sums
//   -> einhls_lanes PE -> RQ_LANES -> einhls_requant -> einhls_lanes RQ_LANES -> OUT_LANES -> m_axis
//
// b buffer.  Step (h, nf, kf) needs B[h, kf*SIMD + s, nf*PE + p] for every s < SIMD, p < PE:
//   nt: NB = PE banks, bank p holds the tokens n = p (mod PE), a word is SIMD codes (WC = SIMD)
//       of one token: features h*INNER + kf*SIMD + s;
//   nn: NB = SIMD banks, bank s holds the tokens k = s (mod SIMD), a word is PE codes (WC = PE)
//       of one token: features h*COLS + nf*PE + p.
// Every bank is read at the same address, the step number h*NF*KF + nf*KF + kf, so a row reads
// each bank's words 0..D-1 in order (D = HEADS*NF*KF words per bank and sequence, the row's
// cycle count) and all SIMD x PE operands of a step come from distinct banks.  Each bank is a
// simple dual-port memory of B_SEQS*D words (one write port for the loader, one read port); the
// loader's address walks the layout with running sums (no multiplier): token j goes to bank
// j % NB, group g = j / NB, its word (hi, lo) to
//   nt: hi = h, lo = kf:  address h*NF*KF + g*KF + kf
//   nn: hi = h, lo = nf:  address h*NF*KF + nf*KF + g
// plus D for the second sequence bank.  Codes are stored centred (B_BITS + 1 bits, signed): block
// RAM and UltraRAM words are multiples of 9 bits, so raw 8-bit codes would take the same blocks.
// B_URAM = 1 asks for UltraRAM ((* ram_style = "ultra" *), the scheduler's choice where block RAM
// is the fuller memory: codegen/schedule/fifo_memory.py place_memories); the bank's read is
// registered either way (b1), which the URAM288 needs.
//
// Ordering.  A row of sequence s is computed only when all TOKENS tokens of b of sequence s are
// in the buffer (b_full[bank]); the bank is released after the last step of the sequence's last
// row (with B_SEQS = 1 the loader waits for that release: a sequence takes the load of its b plus
// its rows, TOKENS x (b words + HEADS*NF*KF) cycles and SINGLE_GAP more, measured in the unit test).  The a row buffer holds two rows (one loading, one computing), so at steady state a row
// starts the cycle after the previous one ends: HEADS*NF*KF cycles per a token.
//
// Exactness.  ACC_BITS is the exact range of the dot product (codegen/ir/attention.py acc_range).
// Products are exact ((A_BITS+1) x (B_BITS+1) bits); adder tree and accumulator work modulo
// 2^ACC_BITS, which gives the exact sum because the final value fits.  MUL_LUT = 1 builds the
// products from LUT adders (the emitter's choice for operands of <= 4 bits, as einhls_linear).
//
// Back-pressure: the MAC array never stalls once a group of PE sums has started (credits: a group
// starts only when the output FIFO has room for it); the output side stalls the array through
// the credits, the inputs through the buffer-full flags.  m_axis comes from registers.

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_actmatmul #(
    parameter integer HEADS      = 1,
    parameter integer INNER      = 4,      // K: the summed axis
    parameter integer COLS       = 4,      // N: output columns per head
    parameter integer TOKENS     = 4,      // L: tokens per sequence (COLS in nt, INNER in nn)
    parameter integer LAYOUT     = 0,      // 0: nt (b = keys), 1: nn (b = values)
    parameter integer SIMD       = 1,      // k per cycle (divides INNER)
    parameter integer PE         = 1,      // n per cycle (divides COLS)
    parameter integer A_LANES    = 1,      // codes per beat of a (divides HEADS*INNER)
    parameter integer B_LANES    = 1,      // codes per beat of b (divides its features per token)
    parameter integer OUT_LANES  = 1,      // codes per beat of the output (divides HEADS*COLS)
    parameter integer A_BITS     = 8,
    parameter integer A_SIGNED   = 1,
    parameter signed [63:0] A_ZP = 0,
    parameter integer B_BITS     = 8,
    parameter integer B_SIGNED   = 1,
    parameter signed [63:0] B_ZP = 0,
    parameter integer ACC_BITS   = 20,     // exact accumulator width (signed)
    parameter integer OUT_BITS   = 8,
    parameter integer MULT_BITS  = 1,      // width of the unsigned requant multiplier
    parameter [63:0]  MULT       = 1,
    parameter integer SHIFT      = 0,
    parameter signed [63:0] OUT_ZP = 0,
    parameter signed [63:0] LO   = -128,
    parameter signed [63:0] HI   = 127,
    parameter integer V_BITS     = ACC_BITS, // requant input width (>= ACC_BITS, > SHIFT - MULT_BITS)
    parameter integer RQ_LANES   = 1,      // outputs requantized per cycle (divides PE)
    parameter integer MUL_LUT    = 0,      // 1: products from LUT adders, never DSPs
    parameter integer TREE_STAGE = 2,      // adder-tree levels per pipeline register
    parameter integer FIFO_DEPTH = 4,      // groups of PE sums buffered (power of two, >= 2)
    parameter integer B_SEQS     = 2,      // sequences of b held: 2 (ping-pong) or 1
    parameter integer B_URAM     = 0,      // 1: the b banks in UltraRAM (ram_style "ultra")
    parameter integer A_LUTRAM   = 0       // 1: the a row buffer in LUT RAM (ram_style "distributed")
) (
    input  wire                          clk,
    input  wire                          rst,

    input  wire [A_LANES*A_BITS-1:0]     s0_axis_tdata,     // a
    input  wire                          s0_axis_tvalid,
    output wire                          s0_axis_tready,

    input  wire [B_LANES*B_BITS-1:0]     s1_axis_tdata,     // b
    input  wire                          s1_axis_tvalid,
    output wire                          s1_axis_tready,

    output wire [OUT_LANES*OUT_BITS-1:0] m_axis_tdata,
    output wire                          m_axis_tvalid,
    input  wire                          m_axis_tready
);

    function integer cw(input integer n);   // counter width for 0..n-1, at least 1
        cw = (n <= 2) ? 1 : $clog2(n);
    endfunction

    localparam integer KF  = INNER / SIMD;
    localparam integer NF  = COLS / PE;
    localparam integer D   = HEADS * NF * KF;                 // steps per row = b words per bank
    localparam integer NB  = (LAYOUT == 0) ? PE : SIMD;       // b banks
    localparam integer WC  = (LAYOUT == 0) ? SIMD : PE;       // codes per b word
    localparam integer FB  = HEADS * ((LAYOUT == 0) ? INNER : COLS);   // b features per token
    localparam integer GROUPS = TOKENS / NB;                  // tokens per bank and sequence
    localparam integer DA  = A_BITS + 1;                      // a - A_ZP
    localparam integer DB  = B_BITS + 1;                      // b - B_ZP
    localparam integer PW  = DA + DB;                         // exact product
    localparam integer TIN = (PW < ACC_BITS) ? PW : ACC_BITS; // a product as summed (mod 2^ACC)
    localparam integer AW  = cw(HEADS * KF);                  // a row buffer index
    localparam integer BAW = cw(B_SEQS * D);                  // b bank address
    localparam         SEQ2 = B_SEQS == 2;                    // a second sequence bank

    // loader walk: word (hi, lo) of token j, group g (see the header)
    localparam integer LO_N      = (LAYOUT == 0) ? KF : NF;
    localparam integer LO_STRIDE = (LAYOUT == 0) ? 1 : KF;
    localparam integer HI_STRIDE = NF * KF;
    localparam integer G_STRIDE  = (LAYOUT == 0) ? KF : 1;

    // ============================================================ a: lanes -> SIMD words
    wire [SIMD*A_BITS-1:0] a_word;
    wire                   a_word_valid;
    wire                   a_word_ready;

    einhls_lanes #(
        .SIZE(HEADS * INNER), .BITS(A_BITS), .IN_LANES(A_LANES), .OUT_LANES(SIMD)
    ) u_a_lanes (
        .clk(clk), .rst(rst),
        .s_axis_tdata(s0_axis_tdata), .s_axis_tvalid(s0_axis_tvalid), .s_axis_tready(s0_axis_tready),
        .m_axis_tdata(a_word), .m_axis_tvalid(a_word_valid), .m_axis_tready(a_word_ready)
    );

    localparam signed [DA+63:0] AZ_X = A_ZP;   // sign-extended, then cut
    localparam signed [DB+63:0] BZ_X = B_ZP;
    localparam signed [DA-1:0]  AZ_C = AZ_X[DA-1:0];
    localparam signed [DB-1:0]  BZ_C = BZ_X[DB-1:0];

    wire [SIMD*DA-1:0] a_centred;
    wire [WC*DB-1:0]   b_centred;
    wire [WC*B_BITS-1:0] b_word;

    genvar s, p;
    generate
        for (s = 0; s < SIMD; s = s + 1) begin : g_a_centre
            wire [A_BITS-1:0] raw = a_word[s*A_BITS +: A_BITS];
            wire signed [DA-1:0] v = (A_SIGNED != 0) ? $signed({raw[A_BITS-1], raw}) : $signed({1'b0, raw});
            assign a_centred[s*DA +: DA] = v - AZ_C;
        end
        for (s = 0; s < WC; s = s + 1) begin : g_b_centre
            wire [B_BITS-1:0] raw = b_word[s*B_BITS +: B_BITS];
            wire signed [DB-1:0] v = (B_SIGNED != 0) ? $signed({raw[B_BITS-1], raw}) : $signed({1'b0, raw});
            assign b_centred[s*DB +: DB] = v - BZ_C;
        end
    endgenerate

    // ================================================== a row buffer: 2 rows of HEADS*KF words
    // Address {row bank, h*KF + kf}; a_full[r] is set when the loader has written the whole row and
    // cleared when the MAC array has issued the row's last step.
    localparam integer A_WORDS = HEADS * KF;
    localparam integer LAST_AW_I = A_WORDS - 1;
    localparam [AW-1:0] LAST_AW = LAST_AW_I[AW-1:0];

    // where block RAM is what a design runs out of, the scheduler puts this buffer in LUT RAM
    // (codegen/schedule/lutram.py); "auto" leaves it to synthesis, as without the attribute
    /* verilator lint_off UNUSEDPARAM */   // read by the ram_style attribute only
    localparam A_STYLE = (A_LUTRAM != 0) ? "distributed" : "auto";
    /* verilator lint_on UNUSEDPARAM */
    (* ram_style = A_STYLE *)
    reg [SIMD*DA-1:0] abuf [0:(1 << (AW + 1))-1];
    reg [1:0]         a_full = 2'b00;
    reg               a_load_bank = 1'b0;
    reg [AW-1:0]      a_load_idx = 0;
    reg               a_comp_bank = 1'b0;

    assign a_word_ready = !a_full[a_load_bank];
    wire a_load_fire = a_word_valid && a_word_ready;
    wire a_load_done = a_load_fire && a_load_idx == LAST_AW;

    always @(posedge clk) begin
        if (a_load_fire) begin
            abuf[{a_load_bank, a_load_idx}] <= a_centred;
        end
    end

    // ============================================================ b: lanes -> WC words
    wire b_word_valid;
    wire b_word_ready;

    einhls_lanes #(
        .SIZE(FB), .BITS(B_BITS), .IN_LANES(B_LANES), .OUT_LANES(WC)
    ) u_b_lanes (
        .clk(clk), .rst(rst),
        .s_axis_tdata(s1_axis_tdata), .s_axis_tvalid(s1_axis_tvalid), .s_axis_tready(s1_axis_tready),
        .m_axis_tdata(b_word), .m_axis_tvalid(b_word_valid), .m_axis_tready(b_word_ready)
    );

    // ======================================================== b loader: address walk
    localparam integer LW  = cw(LO_N);
    localparam integer HW  = cw(HEADS);
    localparam integer SW  = cw(NB);
    localparam integer GW  = cw(GROUPS);
    localparam integer LAST_LO_I = LO_N - 1;
    localparam integer LAST_H_I  = HEADS - 1;
    localparam integer LAST_S_I  = NB - 1;
    localparam integer LAST_G_I  = GROUPS - 1;
    localparam [LW-1:0] LAST_LO = LAST_LO_I[LW-1:0];
    localparam [HW-1:0] LAST_H  = LAST_H_I[HW-1:0];
    localparam [SW-1:0] LAST_S  = LAST_S_I[SW-1:0];
    localparam [GW-1:0] LAST_G  = LAST_G_I[GW-1:0];
    // address steps: next lo; next hi (from the last lo); next group (from the group's base)
    localparam integer STEP_LO_I = LO_STRIDE;
    localparam integer STEP_HI_I = HI_STRIDE - (LO_N - 1) * LO_STRIDE;
    localparam integer STEP_G_I  = G_STRIDE;
    localparam integer D_I       = D;
    localparam [BAW-1:0] STEP_LO = STEP_LO_I[BAW-1:0];
    localparam [BAW-1:0] STEP_HI = STEP_HI_I[BAW-1:0];
    localparam [BAW-1:0] STEP_G  = STEP_G_I[BAW-1:0];
    localparam [BAW-1:0] D_C     = D_I[BAW-1:0];

    reg [1:0]     b_full = 2'b00;
    reg           b_load_bank = 1'b0;     // sequence bank being loaded
    reg [LW-1:0]  b_lo = 0;
    reg [HW-1:0]  b_hi = 0;
    reg [SW-1:0]  b_sel = 0;              // memory bank of the token (j % NB)
    reg [GW-1:0]  b_grp = 0;              // j / NB
    reg [BAW-1:0] b_addr = 0;             // address of the next word
    reg [BAW-1:0] b_grp_base = 0;         // sequence bank base + g * G_STRIDE

    assign b_word_ready = !b_full[b_load_bank];
    wire b_load_fire = b_word_valid && b_word_ready;
    wire b_word_last = b_lo == LAST_LO && b_hi == LAST_H;              // last word of a token
    wire b_seq_last  = b_word_last && b_sel == LAST_S && b_grp == LAST_G;
    wire b_load_done = b_load_fire && b_seq_last;

    always @(posedge clk) begin
        if (b_load_fire) begin
            if (b_seq_last) begin
                b_load_bank <= SEQ2 && !b_load_bank;
                b_lo        <= {LW{1'b0}};
                b_hi        <= {HW{1'b0}};
                b_sel       <= {SW{1'b0}};
                b_grp       <= {GW{1'b0}};
                b_addr      <= (SEQ2 && !b_load_bank) ? D_C : {BAW{1'b0}};
                b_grp_base  <= (SEQ2 && !b_load_bank) ? D_C : {BAW{1'b0}};
            end else if (b_word_last) begin
                b_lo <= {LW{1'b0}};
                b_hi <= {HW{1'b0}};
                if (b_sel == LAST_S) begin    // next group of tokens, bank 0
                    b_sel      <= {SW{1'b0}};
                    b_grp      <= b_grp + 1'b1;
                    b_addr     <= b_grp_base + STEP_G;
                    b_grp_base <= b_grp_base + STEP_G;
                end else begin                // next bank, same group
                    b_sel  <= b_sel + 1'b1;
                    b_addr <= b_grp_base;
                end
            end else if (b_lo == LAST_LO) begin
                b_lo   <= {LW{1'b0}};
                b_hi   <= b_hi + 1'b1;
                b_addr <= b_addr + STEP_HI;
            end else begin
                b_lo   <= b_lo + 1'b1;
                b_addr <= b_addr + STEP_LO;
            end
        end
        if (rst) begin
            b_load_bank <= 1'b0;
            b_lo        <= {LW{1'b0}};
            b_hi        <= {HW{1'b0}};
            b_sel       <= {SW{1'b0}};
            b_grp       <= {GW{1'b0}};
            b_addr      <= {BAW{1'b0}};
            b_grp_base  <= {BAW{1'b0}};
        end
    end

    // ============================================================ MAC array: issue (stage 0)
    localparam integer KW  = cw(KF);
    localparam integer NW  = cw(NF);
    localparam integer RW  = cw(TOKENS);
    localparam integer LAST_KF_I  = KF - 1;
    localparam integer LAST_NF_I  = NF - 1;
    localparam integer LAST_ROW_I = TOKENS - 1;
    localparam integer KF_I = KF;
    localparam [KW-1:0] LAST_KF  = LAST_KF_I[KW-1:0];
    localparam [NW-1:0] LAST_NF  = LAST_NF_I[NW-1:0];
    localparam [RW-1:0] LAST_ROW = LAST_ROW_I[RW-1:0];
    localparam [AW-1:0] KF_C     = KF_I[AW-1:0];

    reg [KW-1:0]  kf = 0;
    reg [NW-1:0]  nf = 0;
    reg [HW-1:0]  h = 0;
    reg [RW-1:0]  row = 0;
    reg [AW-1:0]  a_head = 0;             // h * KF
    reg [BAW-1:0] rd_addr = 0;            // b word of this step: sequence bank base + step
    reg           b_comp_bank = 1'b0;

    // Credits: free FIFO entries not yet claimed by a group in flight.  A group of PE sums claims
    // one when its first step issues, so the FIFO never overflows and the pipeline never stalls.
    localparam integer CRW = $clog2(FIFO_DEPTH + 1) + 1;
    localparam [CRW-1:0] CREDITS = FIFO_DEPTH[CRW-1:0];
    reg  [CRW-1:0] credits = CREDITS;
    wire           group_start = kf == {KW{1'b0}};
    wire           issue = a_full[a_comp_bank] && b_full[b_comp_bank]
                           && (!group_start || credits != {CRW{1'b0}});
    wire           group_last = kf == LAST_KF;
    wire           row_last = group_last && nf == LAST_NF && h == LAST_H;
    wire           row_done = issue && row_last;
    wire           seq_done = row_done && row == LAST_ROW;
    wire           fifo_pop;

    always @(posedge clk) begin
        if (issue) begin
            kf <= group_last ? {KW{1'b0}} : kf + 1'b1;
            if (group_last) begin
                nf <= (nf == LAST_NF) ? {NW{1'b0}} : nf + 1'b1;
                if (nf == LAST_NF) begin
                    h      <= (h == LAST_H) ? {HW{1'b0}} : h + 1'b1;
                    a_head <= (h == LAST_H) ? {AW{1'b0}} : a_head + KF_C;
                end
            end
            if (row_last) begin
                row <= (row == LAST_ROW) ? {RW{1'b0}} : row + 1'b1;
                // the next row reads the same sequence bank from its start, or the other bank
                rd_addr <= (SEQ2 && (b_comp_bank ^ (row == LAST_ROW))) ? D_C : {BAW{1'b0}};
            end else begin
                rd_addr <= rd_addr + 1'b1;
            end
        end
        if (row_done) begin
            a_comp_bank <= ~a_comp_bank;
        end
        if (seq_done) begin
            b_comp_bank <= SEQ2 && !b_comp_bank;
        end
        if (a_load_fire) begin
            a_load_idx <= (a_load_idx == LAST_AW) ? {AW{1'b0}} : a_load_idx + 1'b1;
            if (a_load_idx == LAST_AW) begin
                a_load_bank <= ~a_load_bank;
            end
        end
        a_full[0] <= (a_full[0] || (a_load_done && !a_load_bank)) && !(row_done && !a_comp_bank);
        a_full[1] <= (a_full[1] || (a_load_done &&  a_load_bank)) && !(row_done &&  a_comp_bank);
        b_full[0] <= (b_full[0] || (b_load_done && !b_load_bank)) && !(seq_done && !b_comp_bank);
        b_full[1] <= (b_full[1] || (b_load_done &&  b_load_bank)) && !(seq_done &&  b_comp_bank);
        credits <= credits - {{(CRW-1){1'b0}}, issue && group_start} + {{(CRW-1){1'b0}}, fifo_pop};
        if (rst) begin
            kf          <= {KW{1'b0}};
            nf          <= {NW{1'b0}};
            h           <= {HW{1'b0}};
            row         <= {RW{1'b0}};
            a_head      <= {AW{1'b0}};
            rd_addr     <= {BAW{1'b0}};
            a_comp_bank <= 1'b0;
            b_comp_bank <= 1'b0;
            a_load_idx  <= {AW{1'b0}};
            a_load_bank <= 1'b0;
            a_full      <= 2'b00;
            b_full      <= 2'b00;
            credits     <= CREDITS;
        end
    end

    // ============================================================ stage 1: memory reads
    reg [SIMD*DA-1:0] a1 = 0;
    reg [NB*WC*DB-1:0] b1 = 0;
    reg [2:0]          tag1 = 0;          // {valid, first, last} of the group of PE sums

    // B_URAM = 1: the banks in UltraRAM; "auto" leaves the choice to synthesis, as without the attribute
    /* verilator lint_off UNUSEDPARAM */   // read by the ram_style attribute only
    localparam B_STYLE = (B_URAM != 0) ? "ultra" : "auto";
    /* verilator lint_on UNUSEDPARAM */
    genvar bank;
    generate
        for (bank = 0; bank < NB; bank = bank + 1) begin : g_bank
            // simple dual-port: the loader's write port, the MAC array's read port
            localparam integer BANK_I = bank;
            wire bank_write = b_load_fire && b_sel == BANK_I[SW-1:0];
            // UltraRAM (B_STYLE "ultra") needs the registered read (b1) that block RAM also uses
            (* ram_style = B_STYLE *)
            reg [WC*DB-1:0] mem [0:B_SEQS*D-1];
            always @(posedge clk) begin
                if (bank_write) begin
                    mem[b_addr] <= b_centred;
                end
            end
            always @(posedge clk) begin
                b1[bank*WC*DB +: WC*DB] <= mem[rd_addr];
            end
        end
    endgenerate

    wire [AW-1:0] a_rd_idx = a_head + kf;   // h * KF + kf
    always @(posedge clk) begin
        a1   <= abuf[{a_comp_bank, a_rd_idx}];
        tag1 <= {issue, kf == {KW{1'b0}}, kf == LAST_KF};
        if (rst) begin
            tag1 <= 3'b000;
        end
    end

    // ======================================= stage 2: operands, stage 3: products
    // Operand (p, s): a code s of the step and B[h, kf*SIMD + s, nf*PE + p]: in nt bank p code s,
    // in nn bank s code p.
    function automatic signed [PW-1:0] lut_mul(input signed [DA-1:0] x, input signed [DB-1:0] y);
        integer i;
        reg signed [PW-1:0] sum;
        begin
            sum = 0;
            for (i = 0; i < DA - 1; i = i + 1) begin
                if (x[i]) sum = sum + (y <<< i);
            end
            if (x[DA-1]) sum = sum - (y <<< (DA - 1));
            lut_mul = sum;
        end
    endfunction

    reg [SIMD*DA-1:0]    a2 = 0;
    reg [PE*SIMD*DB-1:0] b2 = 0;
    reg [2:0]            tag2 = 0, tag3 = 0;
    wire [PE*SIMD*DB-1:0] b_ops;
    wire [PE*SIMD*TIN-1:0] leaves;

    generate
        for (p = 0; p < PE; p = p + 1) begin : g_pe
            for (s = 0; s < SIMD; s = s + 1) begin : g_simd
                localparam integer AT = (LAYOUT == 0) ? (p * WC + s) : (s * WC + p);
                assign b_ops[(p*SIMD + s)*DB +: DB] = b1[AT*DB +: DB];
                wire signed [DA-1:0] x = a2[s*DA +: DA];
                wire signed [DB-1:0] y = b2[(p*SIMD + s)*DB +: DB];
                /* verilator lint_off UNUSEDSIGNAL */   // products wider than the accumulator
                wire signed [PW-1:0] prod;
                /* verilator lint_on UNUSEDSIGNAL */
                if (MUL_LUT != 0) begin : g_lut
                    assign prod = lut_mul(x, y);
                end else begin : g_dsp
                    assign prod = x * y;
                end
                reg [TIN-1:0] prod3 = 0;
                always @(posedge clk) begin
                    prod3 <= prod[TIN-1:0];
                end
                assign leaves[(p*SIMD + s)*TIN +: TIN] = prod3;
            end
        end
    endgenerate

    always @(posedge clk) begin
        a2   <= a1;
        b2   <= b_ops;
        tag2 <= tag1;
        tag3 <= tag2;
        if (rst) begin
            tag2 <= 3'b000;
            tag3 <= 3'b000;
        end
    end

    // ====================================================== adder tree and accumulators
    wire [PE*ACC_BITS-1:0] sum;
    wire [2:0]             sum_tag;

    einhls_adder_tree #(
        .GROUPS(PE), .N_IN(SIMD), .IN_BITS(TIN), .OUT_BITS(ACC_BITS), .STAGE(TREE_STAGE), .TAG_BITS(3)
    ) u_tree (
        .clk(clk), .in_data(leaves), .in_tag(tag3), .out_data(sum), .out_tag(sum_tag)
    );

    wire sum_valid = sum_tag[2];
    wire sum_first = sum_tag[1];
    wire sum_last  = sum_tag[0];

    reg [PE*ACC_BITS-1:0] acc = 0;
    reg                   group_valid = 1'b0;   // acc holds a finished group of PE sums

    generate
        for (p = 0; p < PE; p = p + 1) begin : g_acc
            always @(posedge clk) begin
                if (sum_valid) begin
                    acc[p*ACC_BITS +: ACC_BITS] <= (sum_first ? {ACC_BITS{1'b0}} : acc[p*ACC_BITS +: ACC_BITS])
                                                   + sum[p*ACC_BITS +: ACC_BITS];
                end
            end
        end
    endgenerate

    always @(posedge clk) begin
        // the FIFO takes the finished group the cycle after; acc may already take the first sum of
        // the next group in that cycle (the FIFO samples the old value)
        group_valid <= sum_valid && sum_last;
        if (rst) begin
            group_valid <= 1'b0;
        end
    end

    // ================================================================ output FIFO of sums
    wire [PE*ACC_BITS-1:0] grp_tdata;
    wire                   grp_tvalid;
    wire                   grp_tready;
    /* verilator lint_off UNUSEDSIGNAL */
    wire                   fifo_in_ready;     // always 1 thanks to the credits
    /* verilator lint_on UNUSEDSIGNAL */

    einhls_fifo #(
        .DEPTH(FIFO_DEPTH), .WIDTH(PE * ACC_BITS)
    ) u_fifo (
        .clk(clk), .rst(rst),
        .s_axis_tdata(acc), .s_axis_tvalid(group_valid), .s_axis_tready(fifo_in_ready),
        .m_axis_tdata(grp_tdata), .m_axis_tvalid(grp_tvalid), .m_axis_tready(grp_tready)
    );

    assign fifo_pop = grp_tvalid && grp_tready;

    // ======================================= requantization on RQ_LANES outputs per cycle
    wire [RQ_LANES*ACC_BITS-1:0] rq_in_tdata;
    wire                         rq_in_tvalid;
    wire                         rq_in_tready;
    wire [RQ_LANES*OUT_BITS-1:0] rq_out_tdata;
    wire                         rq_out_tvalid;
    wire                         rq_out_tready;

    einhls_lanes #(
        .SIZE(HEADS * COLS), .BITS(ACC_BITS), .IN_LANES(PE), .OUT_LANES(RQ_LANES)
    ) u_rq_lanes (
        .clk(clk), .rst(rst),
        .s_axis_tdata(grp_tdata), .s_axis_tvalid(grp_tvalid), .s_axis_tready(grp_tready),
        .m_axis_tdata(rq_in_tdata), .m_axis_tvalid(rq_in_tvalid), .m_axis_tready(rq_in_tready)
    );

    einhls_requant #(
        .SIZE(HEADS * COLS), .LANES(RQ_LANES), .IN_BITS(ACC_BITS), .IN_SIGNED(1), .V_BITS(V_BITS),
        .OFFSET_ROM(0), .OFF_BITS(ACC_BITS), .OFFSET(0),
        .M_BITS(MULT_BITS), .MULT_ROM(0), .MULT(MULT),
        .SHIFT(SHIFT), .ZP(OUT_ZP), .LO(LO), .HI(HI), .OUT_BITS(OUT_BITS)
    ) u_requant (
        .clk(clk), .rst(rst),
        .s_axis_tdata(rq_in_tdata), .s_axis_tvalid(rq_in_tvalid), .s_axis_tready(rq_in_tready),
        .m_axis_tdata(rq_out_tdata), .m_axis_tvalid(rq_out_tvalid), .m_axis_tready(rq_out_tready)
    );

    einhls_lanes #(
        .SIZE(HEADS * COLS), .BITS(OUT_BITS), .IN_LANES(RQ_LANES), .OUT_LANES(OUT_LANES)
    ) u_out_lanes (
        .clk(clk), .rst(rst),
        .s_axis_tdata(rq_out_tdata), .s_axis_tvalid(rq_out_tvalid), .s_axis_tready(rq_out_tready),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready)
    );

endmodule

`resetall

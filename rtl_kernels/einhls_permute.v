// einhls_permute: a frame permutation done where a ping-pong buffer is written (docs/hardware.md,
// "Contraction stages"; codegen/schedule/contraction.py computes every parameter).
//
// The frame (SIZE elements) is the row-major tensor of a Transposition's source shape; element e
// has digits d = 0 .. DIGITS-1 (digit 0 the innermost source axis, extents EXTENTS) and goes to
//
//     pos(e) = sum_d digit_d(e) * STRIDE_d                    (its place in the destination order)
//     row = pos >> log2(BANKS),  col = pos mod BANKS,  address = row
//     bank = col (SKEW 0),  (col + SKEW_MUL * row) mod BANKS (SKEW 1),  col ^ fold(row) (SKEW 2)
//
// fold(row) XORs the row's bits in groups of log2(BANKS) (spreads power-of-two strides).
//
// Each input lane keeps its own mixed-radix counter (digits of e = beat * IN_LANES + lane) and
// advances it by IN_LANES per accepted beat: no address table, no division, no copy pass.  The
// emitter has checked that the lanes of every beat of this permutation hit distinct banks, so all
// IN_LANES elements of a beat are written in one cycle.
//
// Reads go in destination order, OUT_LANES consecutive positions per cycle; OUT_LANES is a power of
// two dividing BANKS, so a read touches one row and OUT_LANES distinct banks.  Lanes after the end
// of the frame are zero.
//
// Buffering: two frames (ping-pong).  A frame becomes readable when its last element is written
// and the writer moves on to the other half at once; the reader drains one half while the writer
// fills the other, so the interval is max(input beats, output beats) and the latency one frame.
//
// Parameters EXTENTS / STRIDES: 32 bits per digit, digit 0 in the low bits, at most 8 digits.
//
// URAM = 1 puts every bank in UltraRAM ((* ram_style = "ultra" *); the scheduler's choice where
// block RAM is the scarcer memory, codegen/schedule/contraction.py uram_bank).  A URAM288 has one
// shape, 72 bits x 4096 words, so a bank of narrow elements would waste most of it: PACK
// consecutive rows of a bank share one word instead (PACK a power of two, each element in a slot of
// SLOT bits, a multiple of the URAM's 9-bit byte, PACK x SLOT <= 72).  A lane writes its element's
// slot alone (byte-write enables: no read-modify-write, still one write per bank per cycle); a read
// takes the word and selects the slot of the row, one register later, as the block RAM path's
// read.  Rows of the two halves never share a word (the half is the top address bit).

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_permute #(
    parameter integer SIZE      = 16,
    parameter integer BITS      = 8,
    parameter integer IN_LANES  = 1,
    parameter integer OUT_LANES = 1,
    parameter integer BANKS     = 1,     // power of two, >= IN_LANES, multiple of OUT_LANES
    parameter integer SKEW      = 0,     // 0: bank = col, 1: (col + SKEW_MUL * row) mod BANKS, 2: col ^ fold(row)
    parameter integer SKEW_MUL  = 1,
    parameter integer DIGITS    = 1,
    parameter [255:0] EXTENTS   = 256'd16,
    parameter [255:0] STRIDES   = 256'd1,
    parameter integer URAM      = 0      // 1: the banks in UltraRAM, PACK rows a word (see above)
) (
    input  wire                          clk,
    input  wire                          rst,

    input  wire [IN_LANES*BITS-1:0]      s_axis_tdata,
    input  wire                          s_axis_tvalid,
    output wire                          s_axis_tready,

    output wire [OUT_LANES*BITS-1:0]     m_axis_tdata,
    output wire                          m_axis_tvalid,
    input  wire                          m_axis_tready
);

    function integer cw(input integer n);   // counter width for 0..n-1, at least 1
        cw = (n <= 2) ? 1 : $clog2(n);
    endfunction

    function integer ext(input integer d);
        ext = EXTENTS[d*32 +: 32];
    endfunction

    function integer stride(input integer d);
        stride = STRIDES[d*32 +: 32];
    endfunction

    localparam integer LOGB      = (BANKS <= 1) ? 0 : $clog2(BANKS);
    localparam integer BW        = (LOGB < 1) ? 1 : LOGB;
    localparam integer ROWS      = (SIZE + BANKS - 1) / BANKS;
    localparam integer RW        = cw(ROWS);
    localparam integer PW        = cw(SIZE) + 1;              // positions (one spare bit)
    localparam integer DW        = cw(SIZE) + 1;              // one digit
    localparam integer IN_BEATS  = (SIZE + IN_LANES - 1) / IN_LANES;
    localparam integer OUT_BEATS = (SIZE + OUT_LANES - 1) / OUT_LANES;
    localparam integer IBW       = cw(IN_BEATS);
    localparam integer OBW       = cw(OUT_BEATS);
    localparam integer LAST_IN_I  = IN_BEATS - 1;
    localparam integer LAST_OUT_I = OUT_BEATS - 1;
    localparam [IBW-1:0] LAST_IN  = LAST_IN_I[IBW-1:0];
    localparam [OBW-1:0] LAST_OUT = LAST_OUT_I[OBW-1:0];
    localparam integer LAST_IN_LANES = SIZE - LAST_IN_I * IN_LANES;   // valid lanes of the last beat
    localparam integer FIFO_DEPTH = 4;
    localparam integer CRW = 4;
    // UltraRAM packing (URAM = 1): SLOT bits per element, 2^LOGP rows of a bank per word (at most
    // the rows of one half, so the half stays in the word address)
    localparam integer SLOT      = 9 * ((BITS + 8) / 9);
    localparam integer LOGP_FIT  = (SLOT > 36) ? 0 : (SLOT > 18) ? 1 : (SLOT > 9) ? 2 : 3;
    localparam integer LOGP      = (LOGP_FIT < RW) ? LOGP_FIT : RW;
    localparam integer PACK      = 1 << LOGP;

    // digits of v in the source mixed radix, packed DW bits per digit (digit 0 lowest)
    /* verilator lint_off UNUSEDSIGNAL */
    function [DIGITS*DW-1:0] digits_of(input integer v);
        integer d, q, r;
        begin
            q = v;
            digits_of = {(DIGITS*DW){1'b0}};
            for (d = 0; d < DIGITS; d = d + 1) begin
                r = q % ext(d);
                digits_of[d*DW +: DW] = r[DW-1:0];
                q = q / ext(d);
            end
        end
    endfunction
    /* verilator lint_on UNUSEDSIGNAL */

    localparam integer BMASK_I = BANKS - 1;
    localparam [BW-1:0] BMASK = BMASK_I[BW-1:0];
    localparam [PW-1:0] OUT_STEP = OUT_LANES[PW-1:0];
    localparam [BW-1:0] SKEW_MUL_B = SKEW_MUL[BW-1:0];

    // the bank of a position from its column and row (see the header)
    function [BW-1:0] bank_of(input [BW-1:0] col, input [PW-1:0] row);
        integer k;
        reg [BW-1:0] f;
        reg [PW-1:0] rest;
        begin
            f = {BW{1'b0}};
            rest = row;
            if (SKEW == 1) begin
                f = row[BW-1:0] * SKEW_MUL_B;
            end else if (SKEW == 2 && LOGB > 0) begin
                for (k = 0; k < PW; k = k + LOGB) begin
                    f = f ^ rest[BW-1:0];
                    rest = rest >> LOGB;
                end
            end
            bank_of = (SKEW == 2) ? ((col ^ f) & BMASK) : ((col + f) & BMASK);
        end
    endfunction

    localparam [DIGITS*DW-1:0] INC = digits_of(IN_LANES);

    // ================================================================== write side
    reg            wr_half = 1'b0;
    reg [1:0]      full = 2'b00;
    reg [IBW-1:0]  in_beat = 0;
    wire           set_full;                 // the last write of a frame lands this cycle
    wire           clear_full;               // the last read of a frame issues this cycle

    assign s_axis_tready = !full[wr_half];
    wire fire = s_axis_tvalid && s_axis_tready;
    wire last_beat = in_beat == LAST_IN;

    reg  [IN_LANES-1:0]      w_valid = 0;    // registered write requests, one per lane
    reg  [IN_LANES*BW-1:0]   w_bank = 0;
    reg  [IN_LANES*RW-1:0]   w_row = 0;
    reg  [IN_LANES*BITS-1:0] w_data = 0;
    reg                      w_half = 1'b0;
    reg                      w_last = 1'b0;

    genvar l, b;
    generate
        for (l = 0; l < IN_LANES; l = l + 1) begin : g_lane
            localparam [DIGITS*DW-1:0] INIT = digits_of(l);
            reg  [DIGITS*DW-1:0] dig = INIT;
            reg  [DIGITS*DW-1:0] next_dig;
            reg  [PW-1:0]        pos;
            integer d, t, acc;
            reg                  carry;
            always @* begin     // digits of e + IN_LANES, and the position of e
                carry = 1'b0;
                acc = 0;
                for (d = 0; d < DIGITS; d = d + 1) begin
                    t = dig[d*DW +: DW] + INC[d*DW +: DW] + carry;
                    if (t >= ext(d)) begin
                        t = t - ext(d);
                        carry = 1'b1;
                    end else begin
                        carry = 1'b0;
                    end
                    next_dig[d*DW +: DW] = t[DW-1:0];
                    acc = acc + dig[d*DW +: DW] * stride(d);
                end
                pos = acc[PW-1:0];
            end
            /* verilator lint_off UNUSEDSIGNAL */
            wire [PW-1:0] row_full = pos >> LOGB;
            /* verilator lint_on UNUSEDSIGNAL */
            wire [BW-1:0] col = pos[BW-1:0] & BMASK;
            wire [BW-1:0] bank = bank_of(col, row_full);
            wire          lane_valid = !last_beat || (l < LAST_IN_LANES);
            always @(posedge clk) begin
                if (fire) begin
                    dig <= last_beat ? INIT : next_dig;
                end
                w_valid[l] <= fire && lane_valid;
                w_bank[l*BW +: BW] <= bank;
                w_row[l*RW +: RW] <= row_full[RW-1:0];
                w_data[l*BITS +: BITS] <= s_axis_tdata[l*BITS +: BITS];
                if (rst) begin
                    dig <= INIT;
                    w_valid[l] <= 1'b0;
                end
            end
        end
    endgenerate

    always @(posedge clk) begin
        if (fire) begin
            in_beat <= last_beat ? {IBW{1'b0}} : in_beat + 1'b1;
            if (last_beat) begin
                wr_half <= ~wr_half;
            end
        end
        w_half <= wr_half;
        w_last <= fire && last_beat;
        if (rst) begin
            in_beat <= {IBW{1'b0}};
            wr_half <= 1'b0;
            w_last  <= 1'b0;
        end
    end
    assign set_full = w_last;

    // ================================================================== read side
    reg            rd_half = 1'b0;
    reg [OBW-1:0]  out_beat = 0;
    reg [PW-1:0]   rd_pos = 0;
    reg [CRW-1:0]  credits = FIFO_DEPTH[CRW-1:0];
    wire           fifo_pop;
    wire           issue = full[rd_half] && credits != {CRW{1'b0}};
    wire           read_last = out_beat == LAST_OUT;
    assign clear_full = issue && read_last;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [PW-1:0]  rd_row_full = rd_pos >> LOGB;
    /* verilator lint_on UNUSEDSIGNAL */
    wire [RW-1:0]  rd_row = rd_row_full[RW-1:0];

    reg  [OUT_LANES*BW-1:0] r_sel = 0;
    reg  [OUT_LANES-1:0]    r_live = 0;      // lane inside the frame
    reg                     r_valid = 1'b0;
    wire [BANKS*BITS-1:0]   rdata;

    generate
        for (b = 0; b < BANKS; b = b + 1) begin : g_bank
            localparam [BW-1:0] BI = b;
            reg            wen;
            reg [RW-1:0]   waddr;
            reg [BITS-1:0] wdata;
            integer j;
            always @* begin      // the (at most one) lane that writes this bank
                wen = 1'b0;
                waddr = {RW{1'b0}};
                wdata = {BITS{1'b0}};
                for (j = 0; j < IN_LANES; j = j + 1) begin
                    if (w_valid[j] && w_bank[j*BW +: BW] == BI) begin
                        wen = 1'b1;
                        waddr = w_row[j*RW +: RW];
                        wdata = w_data[j*BITS +: BITS];
                    end
                end
            end
            if (URAM == 0) begin : g_block
                reg [BITS-1:0] mem [0:(1 << (RW + 1)) - 1];
                reg [BITS-1:0] q = 0;
                always @(posedge clk) begin
                    if (wen) begin
                        mem[{w_half, waddr}] <= wdata;
                    end
                    q <= mem[{rd_half, rd_row}];
                end
                assign rdata[b*BITS +: BITS] = q;
            end else if (LOGP == 0) begin : g_ultra
                (* ram_style = "ultra" *)
                reg [SLOT-1:0] words [0:(1 << (RW + 1)) - 1];
                /* verilator lint_off UNUSEDSIGNAL */
                reg [SLOT-1:0] q_word = 0;           // the slot's padding bits are never read
                /* verilator lint_on UNUSEDSIGNAL */
                reg [SLOT-1:0] wpad;
                always @* begin
                    wpad = {SLOT{1'b0}};
                    wpad[BITS-1:0] = wdata;
                end
                always @(posedge clk) begin
                    if (wen) begin
                        words[{w_half, waddr}] <= wpad;
                    end
                    q_word <= words[{rd_half, rd_row}];
                end
                assign rdata[b*BITS +: BITS] = q_word[BITS-1:0];
            end else begin : g_ultra_packed
                wire [RW:0] wfull = {w_half, waddr};
                wire [RW:0] rfull = {rd_half, rd_row};
                (* ram_style = "ultra" *)
                reg [PACK*SLOT-1:0] words [0:(1 << (RW + 1 - LOGP)) - 1];
                /* verilator lint_off UNUSEDSIGNAL */
                reg [PACK*SLOT-1:0] q_word = 0;      // the slots' padding bits are never read
                /* verilator lint_on UNUSEDSIGNAL */
                reg [LOGP-1:0]      q_slot = 0;
                reg [SLOT-1:0]      wpad;
                integer s;
                always @* begin
                    wpad = {SLOT{1'b0}};
                    wpad[BITS-1:0] = wdata;
                end
                always @(posedge clk) begin
                    for (s = 0; s < PACK; s = s + 1) begin      // byte-write enables: one slot
                        if (wen && wfull[LOGP-1:0] == s[LOGP-1:0]) begin
                            words[wfull[RW:LOGP]][s*SLOT +: SLOT] <= wpad;
                        end
                    end
                    q_word <= words[rfull[RW:LOGP]];
                    q_slot <= rfull[LOGP-1:0];
                end
                assign rdata[b*BITS +: BITS] = q_word[q_slot*SLOT +: BITS];
            end
        end

        for (l = 0; l < OUT_LANES; l = l + 1) begin : g_out
            localparam [BW-1:0] LI = l;
            wire [BW-1:0] col = (rd_pos[BW-1:0] & BMASK) + LI;
            wire [BW-1:0] bank = bank_of(col, rd_row_full);
            always @(posedge clk) begin
                r_sel[l*BW +: BW] <= bank;
                r_live[l] <= (rd_pos + l) < SIZE;
            end
        end
    endgenerate

    reg [OUT_LANES*BITS-1:0] out_word;
    integer o;
    always @* begin
        for (o = 0; o < OUT_LANES; o = o + 1) begin
            out_word[o*BITS +: BITS] = r_live[o] ? rdata[r_sel[o*BW +: BW]*BITS +: BITS] : {BITS{1'b0}};
        end
    end

    always @(posedge clk) begin
        r_valid <= issue;
        if (issue) begin
            out_beat <= read_last ? {OBW{1'b0}} : out_beat + 1'b1;
            rd_pos   <= read_last ? {PW{1'b0}} : rd_pos + OUT_STEP;
            if (read_last) begin
                rd_half <= ~rd_half;
            end
        end
        full[0] <= (full[0] || (set_full && !w_half)) && !(clear_full && !rd_half);
        full[1] <= (full[1] || (set_full &&  w_half)) && !(clear_full &&  rd_half);
        credits <= credits - {{(CRW-1){1'b0}}, issue} + {{(CRW-1){1'b0}}, fifo_pop};
        if (rst) begin
            r_valid  <= 1'b0;
            out_beat <= {OBW{1'b0}};
            rd_pos   <= {PW{1'b0}};
            rd_half  <= 1'b0;
            full     <= 2'b00;
            credits  <= FIFO_DEPTH[CRW-1:0];
        end
    end

    /* verilator lint_off UNUSEDSIGNAL */
    wire fifo_in_ready;     // always 1 thanks to the credits
    /* verilator lint_on UNUSEDSIGNAL */
    einhls_fifo #(
        .DEPTH(FIFO_DEPTH), .WIDTH(OUT_LANES*BITS)
    ) u_fifo (
        .clk(clk), .rst(rst),
        .s_axis_tdata(out_word), .s_axis_tvalid(r_valid), .s_axis_tready(fifo_in_ready),
        .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid), .m_axis_tready(m_axis_tready)
    );
    assign fifo_pop = m_axis_tvalid && m_axis_tready;

endmodule

`resetall

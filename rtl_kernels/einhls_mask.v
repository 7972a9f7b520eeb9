// einhls_mask: the padding mask over attention scores (codegen/ir/mask.py MaskScores).
//
// s1 carries the mask, one token a beat (the code in lane 0, nonzero = a token, 0 = padding),
// TOKENS beats a sequence; s0 carries the scores, HEADS rows of TOKENS codes per token, LANES a
// beat (LANES divides TOKENS, so a beat never holds two rows), TOKENS tokens a sequence.  Every
// score of a padding key j leaves as the code MASKED, every other one unchanged (widened to
// OUT_BITS):
//
//     y[i, h * TOKENS + j] = mask[j] != 0 ? x[i, h * TOKENS + j] : MASKED
//
// The mask of a sequence is read whole before its first score beat passes (two banks of TOKENS
// bits: the next sequence's mask loads while this one's scores pass).  Scores go through one
// output register, one beat per cycle.

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_mask #(
    parameter integer TOKENS    = 8,
    parameter integer HEADS     = 1,
    parameter integer LANES     = 1,
    parameter integer IN_BITS   = 8,
    parameter integer IN_SIGNED = 1,
    parameter integer M_LANES   = 1,
    parameter integer M_BITS    = 8,
    parameter integer OUT_BITS  = 9,
    parameter signed [63:0] MASKED = -256
) (
    input  wire                      clk,
    input  wire                      rst,

    input  wire [LANES*IN_BITS-1:0]  s0_axis_tdata,
    input  wire                      s0_axis_tvalid,
    output wire                      s0_axis_tready,

    /* verilator lint_off UNUSEDSIGNAL */  // lanes after the first carry no mask code
    input  wire [M_LANES*M_BITS-1:0] s1_axis_tdata,
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire                      s1_axis_tvalid,
    output wire                      s1_axis_tready,

    output wire [LANES*OUT_BITS-1:0] m_axis_tdata,
    output wire                      m_axis_tvalid,
    input  wire                      m_axis_tready
);

    localparam integer ROW_BEATS  = TOKENS / LANES;
    localparam integer SEQ_BEATS  = TOKENS * HEADS * ROW_BEATS;
    localparam integer TW         = (TOKENS <= 2) ? 1 : $clog2(TOKENS);
    localparam integer CW         = (ROW_BEATS <= 2) ? 1 : $clog2(ROW_BEATS);
    localparam integer SW         = (SEQ_BEATS <= 2) ? 1 : $clog2(SEQ_BEATS);
    localparam integer LAST_TOKEN_I = TOKENS - 1;
    localparam integer LAST_COL_I   = ROW_BEATS - 1;
    localparam integer LAST_SEQ_I   = SEQ_BEATS - 1;
    localparam [TW-1:0] LAST_TOKEN = LAST_TOKEN_I[TW-1:0];
    localparam [CW-1:0] LAST_COL   = LAST_COL_I[CW-1:0];
    localparam [SW-1:0] LAST_SEQ   = LAST_SEQ_I[SW-1:0];
    localparam [OUT_BITS-1:0] MASKED_CODE = MASKED[OUT_BITS-1:0];

    // ------------------------------------------------------------------ mask: two banks of bits
    reg [TOKENS-1:0] keep0 = 0, keep1 = 0;
    reg              m_wr = 1'b0;       // bank being filled
    reg [TW-1:0]     m_idx = 0;
    reg [1:0]        m_full = 0;        // banks holding a whole sequence's mask
    assign s1_axis_tready = m_full != 2'd2;
    wire m_fire = s1_axis_tvalid && s1_axis_tready;
    wire m_done = m_fire && m_idx == LAST_TOKEN;
    wire m_bit  = |s1_axis_tdata[M_BITS-1:0];

    // ---------------------------------------------------------------- scores: one output register
    reg              s_rd = 1'b0;       // bank the scores read
    reg [CW-1:0]     col = 0;           // beat within a row of keys
    reg [SW-1:0]     seq = 0;           // beat within the sequence
    reg [LANES*OUT_BITS-1:0] data = 0;
    reg              valid = 1'b0;
    wire en = !valid || m_axis_tready;
    assign s0_axis_tready = en && m_full != 2'd0;
    wire s_fire = s0_axis_tvalid && s0_axis_tready;
    wire s_done = s_fire && seq == LAST_SEQ;

    wire [TOKENS-1:0] keep = s_rd ? keep1 : keep0;
    wire [LANES*OUT_BITS-1:0] selected;
    genvar l;
    generate
        for (l = 0; l < LANES; l = l + 1) begin : g_lane
            wire [IN_BITS-1:0] raw = s0_axis_tdata[l*IN_BITS +: IN_BITS];
            wire [OUT_BITS-1:0] wide = (IN_SIGNED != 0) ? {{(OUT_BITS-IN_BITS){raw[IN_BITS-1]}}, raw}
                                                        : {{(OUT_BITS-IN_BITS){1'b0}}, raw};
            /* verilator lint_off WIDTHEXPAND */
            wire key = keep[col * LANES + l];
            /* verilator lint_on WIDTHEXPAND */
            assign selected[l*OUT_BITS +: OUT_BITS] = key ? wide : MASKED_CODE;
        end
    endgenerate

    always @(posedge clk) begin
        if (m_fire) begin
            if (m_wr) keep1[m_idx] <= m_bit;
            else      keep0[m_idx] <= m_bit;
            m_idx <= (m_idx == LAST_TOKEN) ? {TW{1'b0}} : m_idx + 1'b1;
            if (m_idx == LAST_TOKEN) m_wr <= !m_wr;
        end
        if (en) begin
            valid <= s_fire;
            data  <= selected;
        end
        if (s_fire) begin
            col <= (col == LAST_COL) ? {CW{1'b0}} : col + 1'b1;
            seq <= (seq == LAST_SEQ) ? {SW{1'b0}} : seq + 1'b1;
            if (seq == LAST_SEQ) s_rd <= !s_rd;
        end
        m_full <= m_full + {1'b0, m_done} - {1'b0, s_done};
        if (rst) begin
            m_wr   <= 1'b0;
            m_idx  <= {TW{1'b0}};
            m_full <= 2'd0;
            s_rd   <= 1'b0;
            col    <= {CW{1'b0}};
            seq    <= {SW{1'b0}};
            valid  <= 1'b0;
        end
    end

    assign m_axis_tdata  = data;
    assign m_axis_tvalid = valid;

endmodule

`resetall

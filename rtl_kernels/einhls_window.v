// einhls_window: sliding-window generator of a convolution (or pooling) over a pixel stream.
//
// Input: HEIGHT x WIDTH_PX pixels a frame in raster order, each pixel CHANNELS codes in
// CHANNELS/LANES beats of LANES lanes.  Output: OH x OW windows a frame in raster order, each
// window KH*KW taps (ky outer, kx inner), each tap one input pixel (CHANNELS/LANES beats), so a
// window is the vector (ky, kx, c) that the Linear unit after it multiplies by the kernel.
// Tap (ky, kx) of output (oy, ox) is input pixel (oy*SH - PT + ky*DH, ox*SW - PL + kx*DW); taps
// outside the image are PAD (the code of real 0) in every lane.
//
// Line buffer: 2^ROWS_LOG input rows (at least one window's rows plus a stride's), the row slot
// being the low bits of the absolute row number (frame * HEIGHT + row), so consecutive frames flow
// through without a flush.  The writer takes a beat whenever its row does not overwrite a row the
// current output row still needs; the reader emits a beat whenever every pixel of its window has
// arrived (rows are complete in raster order, so that is one comparison with the writer's position)
// and its output register is free.  Both sides move one beat per cycle, so a frame takes
// max(input beats, output beats) cycles at steady state.  Row counters are 32 bits compared by
// difference, so they may wrap.  The buffer is read asynchronously (distributed RAM).

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_window #(
    parameter integer CHANNELS = 1,
    parameter integer LANES    = 1,     // divides CHANNELS
    parameter integer BITS     = 8,
    parameter integer HEIGHT   = 1,
    parameter integer WIDTH_PX = 1,
    parameter integer KH = 1,
    parameter integer KW = 1,
    parameter integer SH = 1,
    parameter integer SW = 1,
    parameter integer PT = 0,           // padding rows on top, columns on the left
    parameter integer PL = 0,
    parameter integer DH = 1,
    parameter integer DW = 1,
    parameter integer OH = 1,           // output rows and columns (from the padding at the far sides)
    parameter integer OW = 1,
    parameter integer ROWS_LOG = 1,     // line buffer rows: 2^ROWS_LOG
    parameter signed [63:0] PAD = 0
) (
    input  wire                  clk,
    input  wire                  rst,

    input  wire [LANES*BITS-1:0] s_axis_tdata,
    input  wire                  s_axis_tvalid,
    output wire                  s_axis_tready,

    output wire [LANES*BITS-1:0] m_axis_tdata,
    output wire                  m_axis_tvalid,
    input  wire                  m_axis_tready
);

    localparam integer CB    = CHANNELS / LANES;              // beats per pixel
    localparam integer ROWS  = 1 << ROWS_LOG;
    localparam integer DEPTH = ROWS * WIDTH_PX * CB;
    localparam integer AW    = (DEPTH <= 2) ? 1 : $clog2(DEPTH);
    localparam [LANES*BITS-1:0] PAD_WORD = {LANES{PAD[BITS-1:0]}};
    localparam integer LAST_TAP_ROW = (KH - 1) * DH;          // row offset of the kernel's last row
    localparam integer LAST_TAP_COL = (KW - 1) * DW;

    reg [LANES*BITS-1:0] mem [0:DEPTH-1];

    // ---- writer: absolute row, column and beat of the next input beat ----
    reg [31:0] w_row = 0;
    reg [31:0] w_col = 0;
    reg [31:0] w_beat = 0;

    // ---- reader: frame base row, output pixel, tap, beat; iy0 / ix0 = top-left input of the window
    reg [31:0]        f_base = 0;
    reg [31:0]        oy = 0, ox = 0, ky = 0, kx = 0, r_beat = 0;
    reg signed [31:0] iy0 = -PT, ix0 = -PL;

    // the lowest absolute row the current output row reads (rows above it may be overwritten)
    wire signed [31:0] row_lo_rel = (iy0 < 0) ? 32'sd0 : iy0;
    wire [31:0] row_lo = f_base + row_lo_rel;
    wire [31:0] rows_ahead = w_row - row_lo;
    wire w_ok = $signed(rows_ahead) < ROWS;
    assign s_axis_tready = w_ok;
    wire w_fire = s_axis_tvalid && w_ok;
    wire [ROWS_LOG-1:0] w_slot = w_row[ROWS_LOG-1:0];
    // addresses are computed in 32 bits; only the low AW (row slot: ROWS_LOG) bits index the buffer
    /* verilator lint_off UNUSEDSIGNAL */
    wire [31:0] w_addr = ({{(32-ROWS_LOG){1'b0}}, w_slot} * WIDTH_PX + w_col) * CB + w_beat;
    /* verilator lint_on UNUSEDSIGNAL */

    // the last input pixel (raster order) the current window reads
    wire signed [31:0] last_row_rel = (iy0 + LAST_TAP_ROW > HEIGHT - 1) ? HEIGHT - 1 : iy0 + LAST_TAP_ROW;
    wire signed [31:0] last_col     = (ix0 + LAST_TAP_COL > WIDTH_PX - 1) ? WIDTH_PX - 1 : ix0 + LAST_TAP_COL;
    wire [31:0] need_row = f_base + last_row_rel;
    wire [31:0] rows_past = w_row - need_row;
    wire have = ($signed(rows_past) > 0) || (rows_past == 0 && $signed(w_col) > last_col);

    // the current tap
    wire signed [31:0] iy = iy0 + $signed(ky) * DH;
    wire signed [31:0] ix = ix0 + $signed(kx) * DW;
    wire outside = iy < 0 || iy > HEIGHT - 1 || ix < 0 || ix > WIDTH_PX - 1;
    /* verilator lint_off UNUSEDSIGNAL */
    wire [31:0] r_row = f_base + iy;
    wire [ROWS_LOG-1:0] r_slot = r_row[ROWS_LOG-1:0];
    wire [31:0] r_addr = ({{(32-ROWS_LOG){1'b0}}, r_slot} * WIDTH_PX + ix) * CB + r_beat;
    /* verilator lint_on UNUSEDSIGNAL */

    reg [LANES*BITS-1:0] y = 0;
    reg                  valid = 1'b0;
    wire en = !valid || m_axis_tready;
    wire emit = en && have;

    always @(posedge clk) begin
        if (w_fire) begin
            mem[w_addr[AW-1:0]] <= s_axis_tdata;
            if (w_beat == CB - 1) begin
                w_beat <= 0;
                if (w_col == WIDTH_PX - 1) begin
                    w_col <= 0;
                    w_row <= w_row + 1;
                end else begin
                    w_col <= w_col + 1;
                end
            end else begin
                w_beat <= w_beat + 1;
            end
        end
        if (en) begin
            valid <= have;
        end
        if (emit) begin
            y <= outside ? PAD_WORD : mem[r_addr[AW-1:0]];
            if (r_beat == CB - 1) begin
                r_beat <= 0;
                if (kx == KW - 1) begin
                    kx <= 0;
                    if (ky == KH - 1) begin
                        ky <= 0;
                        if (ox == OW - 1) begin
                            ox  <= 0;
                            ix0 <= -PL;
                            if (oy == OH - 1) begin
                                oy     <= 0;
                                iy0    <= -PT;
                                f_base <= f_base + HEIGHT;
                            end else begin
                                oy  <= oy + 1;
                                iy0 <= iy0 + SH;
                            end
                        end else begin
                            ox  <= ox + 1;
                            ix0 <= ix0 + SW;
                        end
                    end else begin
                        ky <= ky + 1;
                    end
                end else begin
                    kx <= kx + 1;
                end
            end else begin
                r_beat <= r_beat + 1;
            end
        end
        if (rst) begin
            w_row <= 0; w_col <= 0; w_beat <= 0;
            f_base <= 0; oy <= 0; ox <= 0; ky <= 0; kx <= 0; r_beat <= 0;
            iy0 <= -PT; ix0 <= -PL;
            valid <= 1'b0;
        end
    end

    assign m_axis_tdata  = y;
    assign m_axis_tvalid = valid;

endmodule

`resetall

// einhls_skid: full-throughput register slice (skid buffer) for a valid/ready stream.
//
// Registers tdata/tvalid and makes s_axis_tready a register, so long combinational ready chains
// between units are cut.  Two words of storage: the output register and a skid register that
// catches the word accepted in the cycle the consumer stalled.

`resetall
`timescale 1ns / 1ps
`default_nettype none

module einhls_skid #(
    parameter integer WIDTH = 8
) (
    input  wire             clk,
    input  wire             rst,

    input  wire [WIDTH-1:0] s_axis_tdata,
    input  wire             s_axis_tvalid,
    output wire             s_axis_tready,

    output wire [WIDTH-1:0] m_axis_tdata,
    output wire             m_axis_tvalid,
    input  wire             m_axis_tready
);

    reg [WIDTH-1:0] out_data = 0;
    reg             out_valid = 1'b0;
    reg [WIDTH-1:0] skid_data = 0;
    reg             skid_valid = 1'b0;

    // ready while the skid register is empty: at most one word can arrive before the stall is seen
    assign s_axis_tready = !skid_valid;
    wire s_fire = s_axis_tvalid && !skid_valid;
    wire out_free = !out_valid || m_axis_tready;

    always @(posedge clk) begin
        if (out_free) begin
            // refill the output: the skid word first (it is older), else the incoming word
            out_valid <= skid_valid || s_axis_tvalid;
            out_data  <= skid_valid ? skid_data : s_axis_tdata;
            if (skid_valid) begin
                skid_valid <= 1'b0;
            end
        end else if (s_fire) begin
            skid_valid <= 1'b1;
            skid_data  <= s_axis_tdata;
        end
        if (rst) begin
            out_valid  <= 1'b0;
            skid_valid <= 1'b0;
        end
    end

    assign m_axis_tdata  = out_data;
    assign m_axis_tvalid = out_valid;

endmodule

`resetall

// einhls_uart: a UART host link for an einhls accelerator (boards without a processor: ECP5).
//
// einhls_uart_rx / einhls_uart_tx: 8N1 serial, CLKS_PER_BIT clock cycles per bit.
// einhls_uart_bridge: frames on the serial line <-> the accelerator's AXI4-Stream ports.
//
// Frame format (bytes; multi-byte fields little-endian; CRC-8, polynomial 0x07, initial value 0,
// over every byte after the two sync bytes up to the CRC):
//
//   request  (host -> FPGA): A5 5A | seq | len[2] | payload[len] | crc
//   response (FPGA -> host): 5A A5 | status | seq | len[2] | payload[len] | crc
//
// A request's payload is one input frame: the accelerator's input beats (IN_BEAT_BYTES bytes
// each, little-endian) in order, so len must be IN_BEATS * IN_BEAT_BYTES.  An OK response
// (status 0) carries one output frame the same way; any other status has no payload:
//   1 the request's CRC did not match (or a byte had no stop bit): nothing reached the accelerator
//   2 the request's len was not the input frame's size (the frame is skipped by hunting for sync)
//   3 the request stopped in the middle for TIMEOUT_CLKS cycles
// After any error the receiver hunts for the next A5 5A, so a corrupted, truncated or lost byte
// costs one frame, which the host resends (it matches responses to requests by seq).  The input
// frame is held in a buffer until its CRC is checked: a corrupted frame never reaches the
// accelerator.  One request at a time: the receiver ignores the line until the response is sent.

`resetall
`timescale 1ns / 1ps
`default_nettype none
/* verilator lint_off DECLFILENAME */   // three modules of one link in one file

module einhls_uart_rx #(
    parameter integer CLKS_PER_BIT = 25
) (
    input  wire       clk,
    input  wire       rst,
    input  wire       rxd,
    output reg  [7:0] data = 8'd0,
    output reg        valid = 1'b0,       // one cycle per received byte
    output reg        frame_error = 1'b0  // with valid: the stop bit was 0
);
    localparam integer CW = $clog2(CLKS_PER_BIT + 1);
    /* verilator lint_off WIDTHTRUNC */
    localparam [CW-1:0] HALF_BIT = CLKS_PER_BIT / 2;
    localparam [CW-1:0] LAST_CLK = CLKS_PER_BIT - 1;
    /* verilator lint_on WIDTHTRUNC */

    // two flip-flops against metastability; the line idles high
    reg rxd_meta = 1'b1, rxd_sync = 1'b1;
    always @(posedge clk) begin
        rxd_meta <= rxd;
        rxd_sync <= rxd_meta;
    end

    reg [CW-1:0] count = 0;
    reg [3:0]    bit_index = 4'd0;   // 0: start bit, 1..8: data bits, 9: stop bit
    reg          busy = 1'b0;
    reg [7:0]    shift = 8'd0;

    always @(posedge clk) begin
        valid <= 1'b0;
        if (rst) begin
            busy <= 1'b0;
        end else if (!busy) begin
            if (!rxd_sync) begin          // start bit: sample every bit in its middle
                busy <= 1'b1;
                bit_index <= 4'd0;
                count <= HALF_BIT;
            end
        end else if (count != 0) begin
            count <= count - 1'b1;
        end else begin
            count <= LAST_CLK;
            bit_index <= bit_index + 1'b1;
            if (bit_index == 4'd0) begin
                if (rxd_sync) busy <= 1'b0;   // a glitch, not a start bit
            end else if (bit_index <= 4'd8) begin
                shift <= {rxd_sync, shift[7:1]};
            end else begin
                busy <= 1'b0;
                data <= shift;
                valid <= 1'b1;
                frame_error <= !rxd_sync;
            end
        end
    end
endmodule


module einhls_uart_tx #(
    parameter integer CLKS_PER_BIT = 25
) (
    input  wire       clk,
    input  wire       rst,
    input  wire [7:0] data,
    input  wire       valid,
    output wire       ready,
    output reg        txd = 1'b1
);
    localparam integer CW = $clog2(CLKS_PER_BIT + 1);
    /* verilator lint_off WIDTHTRUNC */
    localparam [CW-1:0] LAST_CLK = CLKS_PER_BIT - 1;
    /* verilator lint_on WIDTHTRUNC */

    reg [CW-1:0] count = 0;
    reg [3:0]    bits_left = 4'd0;
    reg [8:0]    shift = 9'h1ff;      // data bits then the stop bit

    assign ready = bits_left == 4'd0;

    always @(posedge clk) begin
        if (rst) begin
            bits_left <= 4'd0;
            txd <= 1'b1;
        end else if (bits_left == 4'd0) begin
            if (valid) begin
                txd <= 1'b0;             // start bit
                shift <= {1'b1, data};
                bits_left <= 4'd10;
                count <= LAST_CLK;
            end
        end else if (count != 0) begin
            count <= count - 1'b1;
        end else begin
            count <= LAST_CLK;
            bits_left <= bits_left - 1'b1;
            if (bits_left != 4'd1) begin
                txd <= shift[0];
                shift <= {1'b1, shift[8:1]};
            end
        end
    end
endmodule


module einhls_uart_bridge #(
    parameter integer CLKS_PER_BIT  = 25,
    parameter integer IN_TDATA_BITS = 8,
    parameter integer IN_BEATS      = 1,
    parameter integer OUT_TDATA_BITS = 8,
    parameter integer OUT_BEATS     = 1,
    parameter integer TIMEOUT_CLKS  = 1 << 16
) (
    input  wire                      clk,
    input  wire                      rst,
    input  wire                      uart_rxd,
    output wire                      uart_txd,

    // to the accelerator's input
    output reg  [IN_TDATA_BITS-1:0]  m_axis_tdata = 0,
    output reg                       m_axis_tvalid = 1'b0,
    input  wire                      m_axis_tready,
    output wire                      m_axis_tlast,

    // from the accelerator's output
    input  wire [OUT_TDATA_BITS-1:0] s_axis_tdata,
    input  wire                      s_axis_tvalid,
    output wire                      s_axis_tready,
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire                      s_axis_tlast,
    /* verilator lint_on UNUSEDSIGNAL */

    output reg                       frame_done = 1'b0,   // toggles with every OK response
    output reg                       frame_error = 1'b0   // set by an error response, cleared by an OK one
);
    localparam integer IN_BEAT_BYTES  = IN_TDATA_BITS / 8;
    localparam integer OUT_BEAT_BYTES = OUT_TDATA_BITS / 8;
    localparam integer IN_BYTES  = IN_BEATS * IN_BEAT_BYTES;
    localparam integer OUT_BYTES = OUT_BEATS * OUT_BEAT_BYTES;
    localparam integer BEAT_AW = $clog2(IN_BEATS + 1);                 // counts 0..IN_BEATS
    localparam integer INDEX_W = IN_BEATS > 1 ? $clog2(IN_BEATS) : 1;   // addresses 0..IN_BEATS-1
    localparam integer IN_BW   = $clog2(IN_BEAT_BYTES + 1);
    localparam integer OUT_BW  = $clog2(OUT_BEAT_BYTES + 1);
    localparam integer TW      = $clog2(TIMEOUT_CLKS + 1);

    /* verilator lint_off WIDTHTRUNC */   // sized copies of the integer parameters
    localparam [BEAT_AW-1:0] LAST_ADDR = IN_BEATS;          // one past the last beat
    localparam [IN_BW-1:0]   LAST_IN_BYTE = IN_BEAT_BYTES - 1;
    localparam [OUT_BW-1:0]  OUT_BEAT_LEN = OUT_BEAT_BYTES;
    localparam [TW-1:0]      TIMEOUT = TIMEOUT_CLKS;
    localparam [15:0]        IN_LEN = IN_BYTES;
    localparam [15:0]        IN_LAST = IN_BYTES - 1;
    localparam [15:0]        OUT_LEN = OUT_BYTES;
    /* verilator lint_on WIDTHTRUNC */
    localparam [7:0] STATUS_OK = 8'd0, STATUS_CRC = 8'd1, STATUS_LENGTH = 8'd2, STATUS_TIMEOUT = 8'd3;

    function automatic [7:0] crc8(input [7:0] crc, input [7:0] value);
        integer i;
        reg [7:0] c;
        begin
            c = crc ^ value;
            for (i = 0; i < 8; i = i + 1)
                c = c[7] ? {c[6:0], 1'b0} ^ 8'h07 : {c[6:0], 1'b0};
            crc8 = c;
        end
    endfunction

    // ---------------------------------------------------------------- serial ports
    wire [7:0] rx_data;
    wire       rx_valid, rx_frame_error;
    einhls_uart_rx #(.CLKS_PER_BIT(CLKS_PER_BIT)) rx (
        .clk(clk), .rst(rst), .rxd(uart_rxd), .data(rx_data), .valid(rx_valid), .frame_error(rx_frame_error));

    reg  [7:0] tx_data = 8'd0;
    reg        tx_valid = 1'b0;
    wire       tx_ready;
    einhls_uart_tx #(.CLKS_PER_BIT(CLKS_PER_BIT)) tx (
        .clk(clk), .rst(rst), .data(tx_data), .valid(tx_valid), .ready(tx_ready), .txd(uart_txd));

    // ---------------------------------------------------------------- receiver
    localparam [3:0] R_SYNC0 = 4'd0, R_SYNC1 = 4'd1, R_SEQ = 4'd2, R_LEN0 = 4'd3, R_LEN1 = 4'd4,
                     R_DATA = 4'd5, R_CRC = 4'd6, R_PUSH = 4'd7, R_RESPOND = 4'd8, R_WAIT = 4'd9;
    reg [3:0]  rstate = R_SYNC0;
    reg [7:0]  seq = 8'd0;
    reg [7:0]  rcrc = 8'd0;
    reg [7:0]  len_lo = 8'd0;
    reg        rbad = 1'b0;            // a byte without its stop bit: answered as a CRC error
    reg [15:0] byte_count = 16'd0;
    reg [IN_BW-1:0]  beat_byte = 0;
    reg [BEAT_AW-1:0] beat_addr = 0;
    /* verilator lint_off UNUSEDSIGNAL */   // its low byte is shifted out before it is read
    reg [IN_TDATA_BITS-1:0] beat_shift = 0;
    /* verilator lint_on UNUSEDSIGNAL */
    // the beat with the received byte on top (little-endian: the last byte is the most significant)
    wire [IN_TDATA_BITS-1:0] beat_next;
    generate
        if (IN_TDATA_BITS == 8) begin : g_byte_beat
            assign beat_next = rx_data;
        end else begin : g_wide_beat
            assign beat_next = {rx_data, beat_shift[IN_TDATA_BITS-1:8]};
        end
    endgenerate
    reg [TW-1:0] idle = 0;

    // the input frame, one beat per word, written as its bytes arrive and read after the CRC
    reg [IN_TDATA_BITS-1:0] frame_buffer [0:IN_BEATS-1];
    reg [BEAT_AW-1:0] push_addr = 0;
    /* verilator lint_off UNUSEDSIGNAL */   // the top bit of a counter only reaches IN_BEATS at the end
    wire [BEAT_AW-1:0] write_addr = beat_addr, read_addr = push_addr;
    /* verilator lint_on UNUSEDSIGNAL */
    wire [INDEX_W-1:0] write_index = write_addr[INDEX_W-1:0];
    wire [INDEX_W-1:0] read_index = read_addr[INDEX_W-1:0];

    // a response for the transmitter: posted by the receiver, taken when the transmitter is idle
    reg       respond = 1'b0;
    reg       posted = 1'b0;     // the OK response of the frame being pushed has been posted
    reg [7:0] respond_status = 8'd0;
    wire      tx_idle;

    assign m_axis_tlast = push_addr == LAST_ADDR;

    always @(posedge clk) begin
        if (rst) begin
            rstate <= R_SYNC0;
            respond <= 1'b0;
            m_axis_tvalid <= 1'b0;
        end else begin
            // a frame that stops in the middle is answered after TIMEOUT_CLKS quiet cycles
            if (rx_valid || rstate == R_SYNC0 || rstate >= R_PUSH) begin
                idle <= 0;
            end else if (idle != TIMEOUT) begin
                idle <= idle + 1'b1;
            end
            if (respond && !tx_idle) respond <= 1'b0;   // the transmitter has taken it
            case (rstate)
                R_SYNC0: if (rx_valid && !rx_frame_error && rx_data == 8'hA5) rstate <= R_SYNC1;
                R_SYNC1: if (rx_valid) begin
                    if (!rx_frame_error && rx_data == 8'h5A) rstate <= R_SEQ;
                    else if (rx_frame_error || rx_data != 8'hA5) rstate <= R_SYNC0;
                end else if (idle == TIMEOUT) begin
                    rstate <= R_SYNC0;
                end
                R_SEQ, R_LEN0, R_LEN1, R_DATA, R_CRC: if (rx_valid) begin
                    rcrc <= crc8(rcrc, rx_data);
                    if (rx_frame_error) rbad <= 1'b1;
                    case (rstate)
                        R_SEQ: begin
                            seq <= rx_data;
                            rcrc <= crc8(8'd0, rx_data);
                            rbad <= rx_frame_error;
                            rstate <= R_LEN0;
                        end
                        R_LEN0: begin
                            len_lo <= rx_data;
                            rstate <= R_LEN1;
                        end
                        R_LEN1: begin
                            byte_count <= 16'd0;
                            beat_byte <= 0;
                            beat_addr <= 0;
                            if ({rx_data, len_lo} != IN_LEN) begin
                                respond_status <= STATUS_LENGTH;
                                rstate <= R_RESPOND;
                            end else begin
                                rstate <= R_DATA;
                            end
                        end
                        R_DATA: begin
                            // little-endian bytes fill the beat from the top down
                            beat_shift <= beat_next;
                            byte_count <= byte_count + 1'b1;
                            if (beat_byte == LAST_IN_BYTE) begin
                                beat_byte <= 0;
                                frame_buffer[write_index] <= beat_next;
                                beat_addr <= beat_addr + 1'b1;
                            end else begin
                                beat_byte <= beat_byte + 1'b1;
                            end
                            if (byte_count == IN_LAST) rstate <= R_CRC;
                        end
                        default: begin   // R_CRC
                            if (rx_data != rcrc || rbad || rx_frame_error) begin
                                respond_status <= STATUS_CRC;
                                rstate <= R_RESPOND;
                            end else begin
                                respond_status <= STATUS_OK;
                                posted <= 1'b0;
                                push_addr <= 0;
                                rstate <= R_PUSH;
                            end
                        end
                    endcase
                end else if (idle == TIMEOUT) begin
                    respond_status <= STATUS_TIMEOUT;
                    rstate <= R_RESPOND;
                end
                R_PUSH: begin
                    // the OK response starts at once: its payload is the accelerator's output,
                    // which a design without a whole-frame buffer produces while input still flows
                    if (!posted && tx_idle && !respond) begin
                        respond <= 1'b1;
                        posted <= 1'b1;
                    end
                    // read the buffer one beat ahead of the accelerator (a registered read)
                    if (!m_axis_tvalid || m_axis_tready) begin
                        if (push_addr != LAST_ADDR) begin
                            m_axis_tdata <= frame_buffer[read_index];
                            m_axis_tvalid <= 1'b1;
                            push_addr <= push_addr + 1'b1;
                        end else begin
                            m_axis_tvalid <= 1'b0;
                            rstate <= posted ? R_WAIT : R_RESPOND;
                        end
                    end
                end
                R_RESPOND: if (tx_idle && !respond) begin
                    respond <= 1'b1;
                    rstate <= R_WAIT;
                end
                default: begin   // R_WAIT: until the response has been sent
                    if (!respond && tx_idle) rstate <= R_SYNC0;
                end
            endcase
        end
    end

    // ---------------------------------------------------------------- transmitter
    localparam [3:0] T_IDLE = 4'd0, T_SYNC0 = 4'd1, T_SYNC1 = 4'd2, T_STATUS = 4'd3, T_SEQ = 4'd4,
                     T_LEN0 = 4'd5, T_LEN1 = 4'd6, T_DATA = 4'd7, T_CRC = 4'd8;
    reg [3:0]  tstate = T_IDLE;
    reg [7:0]  tcrc = 8'd0;
    reg [7:0]  tstatus = 8'd0;
    reg [15:0] tlen = 16'd0;
    reg [15:0] sent = 16'd0;
    reg [OUT_TDATA_BITS-1:0] out_beat = 0;
    reg [OUT_BW-1:0] out_bytes_left = 0;

    assign tx_idle = tstate == T_IDLE;
    assign s_axis_tready = tstate == T_DATA && out_bytes_left == 0;

    // the next byte to send and whether it counts in the CRC
    reg [7:0] next_byte;
    always @(*) begin
        case (tstate)
            T_SYNC0:  next_byte = 8'h5A;
            T_SYNC1:  next_byte = 8'hA5;
            T_STATUS: next_byte = tstatus;
            T_SEQ:    next_byte = seq;
            T_LEN0:   next_byte = tlen[7:0];
            T_LEN1:   next_byte = tlen[15:8];
            T_DATA:   next_byte = out_beat[7:0];
            default:  next_byte = tcrc;
        endcase
    end
    wire have_byte = tstate != T_IDLE && (tstate != T_DATA || out_bytes_left != 0);

    always @(posedge clk) begin
        if (rst) begin
            tstate <= T_IDLE;
            tx_valid <= 1'b0;
        end else begin
            if (tx_valid && tx_ready) tx_valid <= 1'b0;
            if (tstate == T_IDLE) begin
                if (respond) begin
                    tstatus <= respond_status;
                    tlen <= respond_status == STATUS_OK ? OUT_LEN : 16'd0;
                    tstate <= T_SYNC0;
                    if (respond_status == STATUS_OK) frame_done <= !frame_done;
                    frame_error <= respond_status != STATUS_OK;
                end
            end else if (tstate == T_DATA && out_bytes_left == 0 && sent != tlen) begin
                if (s_axis_tvalid) begin
                    out_beat <= s_axis_tdata;
                    out_bytes_left <= OUT_BEAT_LEN;
                end
            end else if (!tx_valid && tx_ready && (have_byte || (tstate == T_DATA && sent == tlen))) begin
                if (tstate == T_DATA && sent == tlen) begin
                    tstate <= T_CRC;
                end else begin
                    tx_data <= next_byte;
                    tx_valid <= 1'b1;
                    if (tstate >= T_STATUS && tstate <= T_DATA) tcrc <= crc8(tstate == T_STATUS ? 8'd0 : tcrc, next_byte);
                    case (tstate)
                        T_SYNC0: tstate <= T_SYNC1;
                        T_SYNC1: tstate <= T_STATUS;
                        T_STATUS: tstate <= T_SEQ;
                        T_SEQ: tstate <= T_LEN0;
                        T_LEN0: tstate <= T_LEN1;
                        T_LEN1: begin
                            sent <= 16'd0;
                            out_bytes_left <= 0;
                            tstate <= T_DATA;
                        end
                        T_DATA: begin
                            out_beat <= out_beat >> 8;
                            out_bytes_left <= out_bytes_left - 1'b1;
                            sent <= sent + 1'b1;
                        end
                        default: tstate <= T_IDLE;   // T_CRC sent
                    endcase
                end
            end
        end
    end
endmodule

/* libFuzzer target: the incremental decoder and every payload parser must survive any input,
 * and the encoder/decoder pair must round-trip any payload. No allocation anywhere, so memory
 * is bounded by construction; -rss_limit_mb in the Makefile checks it anyway. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/fb_frame.h"
#include "../src/fb_msg.h"

static void parse_payload(uint8_t type, const uint8_t *p, uint16_t n)
{
    fb_waveform w;
    fb_command_msg c;
    fb_ack a;
    uint64_t t1;
    volatile int32_t sink = 0;
    if (type == FB_WAVEFORM && fb_parse_waveform(p, n, &w)) {
        for (uint16_t i = 0; i < w.n_samples; i++) {
            for (uint8_t ch = 0; ch < w.n_channels; ch++) {
                sink += fb_waveform_sample(&w, i, ch) & 1; /* reads every sample byte */
            }
        }
    } else if (type == FB_COMMAND) {
        (void)fb_parse_command(p, n, &c);
    } else if (type == FB_ACK || type == FB_NACK) {
        (void)fb_parse_ack(p, n, &a);
    } else if (type == FB_TIME_REQ) {
        (void)fb_parse_time_req(p, n, &t1);
    }
    (void)sink;
}

static void check_roundtrip(const uint8_t *data, size_t size)
{
    static uint8_t wire[FB_ENCODED_MAX(FB_MAX_PAYLOAD)];
    uint16_t len = (uint16_t)(size > FB_MAX_PAYLOAD ? FB_MAX_PAYLOAD : size);
    size_t n = fb_encode(FB_WAVEFORM, 0, (uint16_t)size, data, len, wire, sizeof wire);
    if (n == 0 || n > FB_ENCODED_MAX((size_t)len) || memchr(wire, 0, n - 1) != NULL) {
        abort();
    }
    fb_decoder d;
    fb_frame f;
    fb_decoder_init(&d);
    int frames = 0;
    for (size_t i = 0; i < n; i++) {
        fb_status st = fb_decoder_push(&d, wire[i], &f);
        if (st != FB_NEED_MORE && (st != FB_FRAME_OK || ++frames > 1)) {
            abort();
        }
    }
    if (frames != 1 || f.header.length != len || (len && memcmp(f.payload, data, len) != 0)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fb_decoder d; /* one decoder across inputs, like a long-lived link */
    fb_frame f;
    for (size_t i = 0; i < size; i++) {
        fb_status st = fb_decoder_push(&d, data[i], &f);
        if (st == FB_FRAME_OK) {
            if (f.header.length > FB_MAX_PAYLOAD) {
                abort();
            }
            parse_payload(f.header.type, f.payload, f.header.length);
        }
    }
    /* Parsers behind the CRC are hard to reach by mutation: also run them on the raw input. */
    if (size > 0) {
        uint16_t n = (uint16_t)(size - 1 > 0xFFFF ? 0xFFFF : size - 1);
        parse_payload(data[0] % 10u, data + 1, n);
    }
    check_roundtrip(data, size);
    return 0;
}

/* The vector set. Field values are mirrored in test_vectors/messages.json, which the Python
 * side encodes independently: equal bytes prove both encoders agree. */
#include "vectors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/fb_frame.h"
#include "../src/fb_msg.h"

static size_t count;
static vector *vecs;

static void add(const char *name, uint8_t type, uint8_t flags, uint16_t seq,
                const uint8_t *payload, size_t len)
{
    vector *v = &vecs[count++];
    v->name = name;
    v->expect = "ok";
    v->n = fb_encode(type, flags, seq, payload, (uint16_t)len, v->bytes, sizeof v->bytes);
    if (v->n == 0) {
        fprintf(stderr, "vector %s: encode failed\n", name);
        exit(1);
    }
}

static void add_raw(const char *name, const char *expect, const uint8_t *wire, size_t n)
{
    vector *v = &vecs[count++];
    v->name = name;
    v->expect = expect;
    memcpy(v->bytes, wire, n);
    v->n = n;
}

static size_t need(size_t n, const char *what)
{
    if (n == 0) {
        fprintf(stderr, "vector builder failed: %s\n", what);
        exit(1);
    }
    return n;
}

static void build_hello_and_waveforms(void)
{
    static uint8_t p[FB_MAX_PAYLOAD];
    const fb_channel_info ch[2] = {{0, FB_FORMAT_INT16, 360000u, 0.005f, "mV", "MLII"},
                                   {1, FB_FORMAT_INT24, 500000u, 0.00125f, "mV", "V1"}};
    const fb_hello h = {"EM-ECG-0001", 1, 2, 3, 2, ch};
    add("hello_ecg_2ch", FB_HELLO, 0, 0, p, need(fb_msg_hello(&h, p, sizeof p), "hello"));

    const uint8_t ids0[1] = {0};
    const int32_t s16[4] = {-32768, 32767, 0, -1};
    fb_waveform w = {720u, 2000000u, FB_FORMAT_INT16, 1, 4, ids0, s16, NULL};
    add("waveform_int16", FB_WAVEFORM, 0, 1, p, need(fb_msg_waveform(&w, p, sizeof p), "w16"));

    const uint8_t ids01[2] = {0, 1};
    const int32_t s24[6] = {-8388608, 8388607, 0, 256, -256, 1};
    fb_waveform w24 = {4294967295u, 18446744073709551615u, FB_FORMAT_INT24, 2, 3, ids01, s24,
                       NULL};
    add("waveform_int24", FB_WAVEFORM, 0, 2, p, need(fb_msg_waveform(&w24, p, sizeof p), "w24"));

    static int32_t zeros[300];
    fb_waveform wz = {0u, 0u, FB_FORMAT_INT16, 1, 300, ids0, zeros, NULL};
    add("waveform_zeros", FB_WAVEFORM, 0, 3, p, need(fb_msg_waveform(&wz, p, sizeof p), "wz"));

    /* 257 = 0x0101: 400 non-zero bytes in a row, so COBS needs full 0xFF blocks. */
    static int32_t ones[200];
    for (size_t i = 0; i < 200; i++) {
        ones[i] = 257;
    }
    fb_waveform wr = {1u, 1u, FB_FORMAT_INT16, 1, 200, ids0, ones, NULL};
    add("waveform_long_run", FB_WAVEFORM, 0, 4, p, need(fb_msg_waveform(&wr, p, sizeof p), "wr"));
}

static void build_events(void)
{
    static uint8_t p[256];
    const fb_vital v[4] = {{1, 0, 72}, {2, -1, 975}, {4, -2, 3710}, {3, 0, FB_VITAL_INVALID}};
    add("vitals", FB_VITALS, 0, 5, p, need(fb_msg_vitals(123456789u, v, 4, p, sizeof p), "v"));
    const fb_alert lead = {3000000u, FB_ALERT_LEAD_OFF, 2, 0, 1, 0};
    add("alert_lead_off", FB_ALERT, FB_FLAG_ACK_REQUEST, 6, p,
        need(fb_msg_alert(&lead, p, sizeof p), "alert"));
    const fb_alert batt = {3500000u, FB_ALERT_BATTERY_LOW, 1, FB_CHANNEL_DEVICE, 1, 14};
    add("alert_battery", FB_ALERT, FB_FLAG_ACK_REQUEST, 7, p,
        need(fb_msg_alert(&batt, p, sizeof p), "battery"));
    add("time_req", FB_TIME_REQ, 0, 100, p,
        need(fb_msg_time_req(1700000000000000u, p, sizeof p), "treq"));
    const fb_time t = {1700000000000000u, 5000000u, 5000150u};
    add("time_resp", FB_TIME_RESP, 0, 8, p, need(fb_msg_time_resp(&t, p, sizeof p), "tresp"));
    const fb_ack ack = {101, FB_COMMAND, 0};
    add("ack", FB_ACK, 0, 9, p, need(fb_msg_ack(&ack, p, sizeof p), "ack"));
    const fb_ack nack = {102, FB_COMMAND, FB_NACK_BAD_ARGUMENT};
    add("nack", FB_NACK, 0, 10, p, need(fb_msg_ack(&nack, p, sizeof p), "nack"));
    const fb_command_msg start = {FB_CMD_START, FB_CHANNEL_DEVICE, 0};
    add("command_start", FB_COMMAND, FB_FLAG_ACK_REQUEST, 101, p,
        need(fb_msg_command(&start, p, sizeof p), "start"));
    const fb_command_msg rate = {FB_CMD_SET_RATE, FB_CHANNEL_DEVICE, 500000u};
    add("command_set_rate", FB_COMMAND, FB_FLAG_ACK_REQUEST, 65535, p,
        need(fb_msg_command(&rate, p, sizeof p), "rate"));
    /* Forward compatibility: an unknown type, a vendor type, an ACK with appended fields. */
    add("unknown_type", 0x42, 0, 11, (const uint8_t *)"future", 6);
    add("vendor_empty", 0x80, 0, 12, NULL, 0);
    const uint8_t ext[6] = {13, 0, FB_ALERT, 0, 0xAA, 0xBB};
    add("ack_extended", FB_ACK, 0, 13, ext, sizeof ext);
}

/* Malformed frames: valid COBS around a raw body with one defect each. */
static void build_malformed(void)
{
    static uint8_t raw[1200], wire[1300];
    const uint8_t body[8] = {1, FB_ACK, 0, 0, 14, 0, 4, 0};
    const uint8_t pay[4] = {1, 0, FB_WAVEFORM, 0};
    memcpy(raw, body, 8);
    memcpy(raw + 8, pay, 4);
    uint32_t crc = fb_crc32(0, raw, 12);
    for (size_t i = 0; i < 4; i++) {
        raw[12 + i] = (uint8_t)(crc >> (8 * i));
    }
    raw[15] ^= 0x01u;
    add_raw("bad_crc", "crc", wire, cobs_raw(raw, 16, wire));
    raw[15] ^= 0x01u;
    raw[0] = 2; /* version 2 with a valid CRC */
    crc = fb_crc32(0, raw, 12);
    for (size_t i = 0; i < 4; i++) {
        raw[12 + i] = (uint8_t)(crc >> (8 * i));
    }
    add_raw("bad_version", "version", wire, cobs_raw(raw, 16, wire));
    raw[0] = 1;
    raw[6] = 5; /* length says 5, payload has 4 */
    crc = fb_crc32(0, raw, 12);
    for (size_t i = 0; i < 4; i++) {
        raw[12 + i] = (uint8_t)(crc >> (8 * i));
    }
    add_raw("bad_length", "length", wire, cobs_raw(raw, 16, wire));
    add_raw("short", "short", wire, cobs_raw(raw, 7, wire));
    const uint8_t trunc[4] = {0x05, 0x11, 0x22, 0x00};
    add_raw("cobs_truncated", "cobs", trunc, sizeof trunc);
    memset(wire, 0x01, 1100); /* 1,099 decoded zeros: longer than any frame */
    wire[1100] = 0x00;
    add_raw("overflow", "overflow", wire, 1101);
}

size_t cobs_raw(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t code_pos = 0, pos = 1;
    uint8_t code = 1;
    for (size_t i = 0; i < n; i++) {
        if (in[i] != 0) {
            out[pos++] = in[i];
            code++;
        }
        if (in[i] == 0 || code == 0xFF) {
            out[code_pos] = code;
            code_pos = pos++;
            code = 1;
        }
    }
    out[code_pos] = code;
    out[pos] = 0;
    return pos + 1;
}

size_t vectors_build(vector *out)
{
    vecs = out;
    count = 0;
    build_hello_and_waveforms();
    build_events();
    build_malformed();
    return count;
}

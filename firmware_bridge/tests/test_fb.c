/* Native unit tests of the frame and message layers (run under ASan/UBSan by the Makefile).
 *   test_fb                       run every test; compare vectors with VECTORS_FILE
 *   test_fb --write-vectors FILE  regenerate test_vectors/frames.hex */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/fb_frame.h"
#include "../src/fb_msg.h"
#include "vectors.h"

static int failures;
#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
            failures++;                                                      \
        }                                                                    \
    } while (0)

static uint32_t rng_state = 0x12345678u;
static uint32_t rnd(void) /* xorshift32: deterministic, no libc rand() state */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

/* Feeds wire bytes; returns the status of the last frame-ending byte and the frame. */
static fb_status feed(fb_decoder *d, const uint8_t *w, size_t n, fb_frame *f, int *n_ok)
{
    fb_status last = FB_NEED_MORE;
    for (size_t i = 0; i < n; i++) {
        fb_status st = fb_decoder_push(d, w[i], f);
        if (st != FB_NEED_MORE) {
            last = st;
            *n_ok += st == FB_FRAME_OK;
        }
    }
    return last;
}

static void test_crc(void)
{
    CHECK(fb_crc32(0, (const uint8_t *)"123456789", 9) == 0xCBF43926u);
    CHECK(fb_crc32(0, NULL, 0) == 0);
    /* Incremental == one shot. */
    CHECK(fb_crc32(fb_crc32(0, (const uint8_t *)"1234", 4), (const uint8_t *)"56789", 5) ==
          0xCBF43926u);
}

static void roundtrip(const uint8_t *payload, uint16_t len, uint16_t seq)
{
    static uint8_t wire[FB_ENCODED_MAX(FB_MAX_PAYLOAD)];
    size_t n = fb_encode(FB_WAVEFORM, 0, seq, payload, len, wire, sizeof wire);
    CHECK(n > 0 && n <= FB_ENCODED_MAX((size_t)len));
    CHECK(memchr(wire, 0, n - 1) == NULL && wire[n - 1] == 0);
    fb_decoder d;
    fb_decoder_init(&d);
    fb_frame f;
    int ok = 0;
    CHECK(feed(&d, wire, n, &f, &ok) == FB_FRAME_OK && ok == 1);
    CHECK(f.header.seq == seq && f.header.length == len && f.header.type == FB_WAVEFORM);
    CHECK(len == 0 || memcmp(f.payload, payload, len) == 0);
}

static void test_roundtrip(void)
{
    static uint8_t p[FB_MAX_PAYLOAD];
    const uint16_t lens[] = {0, 1, 241, 242, 243, 253, 254, 255, 500, 1023, 1024};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        for (int pattern = 0; pattern < 3; pattern++) {
            for (size_t i = 0; i < lens[k]; i++) {
                p[i] = pattern == 0 ? 0x00u : pattern == 1 ? 0xFFu : (uint8_t)rnd();
            }
            roundtrip(p, lens[k], (uint16_t)(k * 7 + (size_t)pattern));
        }
    }
    uint8_t small[8];
    CHECK(fb_encode(1, 0, 0, p, 1025, p, sizeof p) == 0);          /* payload too long */
    CHECK(fb_encode(1, 0, 0, p, 4, small, sizeof small) == 0);     /* buffer too small */
}

/* Garbage, truncation and bit flips: the decoder reports an error, never a wrong frame, and
 * the next intact frame decodes. */
static void test_resync(void)
{
    static uint8_t wire[2 * FB_ENCODED_MAX(64) + 64];
    uint8_t payload[64];
    for (size_t i = 0; i < sizeof payload; i++) {
        payload[i] = (uint8_t)rnd();
    }
    size_t n = fb_encode(FB_VITALS, 0, 9, payload, sizeof payload, wire, sizeof wire);
    fb_decoder d;
    fb_frame f;
    fb_decoder_init(&d);
    for (size_t bit = 0; bit < 8 * (n - 1); bit++) {
        static uint8_t bad[FB_ENCODED_MAX(64)];
        memcpy(bad, wire, n);
        bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        int ok = 0;
        feed(&d, bad, n, &f, &ok);
        CHECK(ok == 0);
        /* A flip to 0x00 splits the frame; the remainder ends at the real delimiter. */
        CHECK(feed(&d, wire, n, &f, &ok) == FB_FRAME_OK && ok == 1 && f.header.seq == 9);
    }
    uint8_t garbage[40];
    for (size_t i = 0; i < sizeof garbage; i++) {
        garbage[i] = (uint8_t)(rnd() | 1u);
    }
    int ok = 0;
    feed(&d, garbage, sizeof garbage, &f, &ok);
    CHECK(feed(&d, wire, n, &f, &ok) != FB_FRAME_OK); /* garbage joined the frame */
    CHECK(feed(&d, wire, n, &f, &ok) == FB_FRAME_OK && ok == 1);
    feed(&d, wire, n / 2, &f, &ok); /* truncated, then a delimiter */
    CHECK(fb_decoder_push(&d, 0, &f) != FB_FRAME_OK);
    CHECK(feed(&d, wire, n, &f, &ok) == FB_FRAME_OK && ok == 2);
}

static void test_waveform(void)
{
    uint8_t p[256];
    const uint8_t ids[3] = {4, 5, 6};
    int32_t s[3 * 5];
    for (size_t i = 0; i < 15; i++) {
        s[i] = (int32_t)(rnd() % 16777216u) - 8388608;
    }
    fb_waveform w = {7u, 99u, FB_FORMAT_INT24, 3, 5, ids, s, NULL}, r;
    size_t n = fb_msg_waveform(&w, p, sizeof p);
    CHECK(n == 16 + 3 + 45);
    CHECK(fb_parse_waveform(p, (uint16_t)n, &r));
    CHECK(r.first_sample == 7 && r.t_us == 99 && r.n_channels == 3 && r.n_samples == 5);
    for (uint16_t i = 0; i < 5; i++) {
        for (uint8_t c = 0; c < 3; c++) {
            CHECK(fb_waveform_sample(&r, i, c) == s[i * 3 + c]);
        }
    }
    CHECK(!fb_parse_waveform(p, (uint16_t)(n - 1), &r)); /* one sample byte missing */
    s[2] = 8388608;                                       /* does not fit int24 */
    CHECK(fb_msg_waveform(&w, p, sizeof p) == 0);
    w.format = FB_FORMAT_INT16;
    s[2] = 40000;
    CHECK(fb_msg_waveform(&w, p, sizeof p) == 0);
    s[2] = -32768;
    CHECK(fb_msg_waveform(&w, p, 20) == 0); /* buffer too small */
}

static void test_messages(void)
{
    uint8_t p[64];
    const fb_command_msg c = {FB_CMD_SET_RATE, 3, 250000u};
    fb_command_msg c2;
    size_t n = fb_msg_command(&c, p, sizeof p);
    CHECK(n == 6 && fb_parse_command(p, (uint16_t)n, &c2));
    CHECK(c2.command == FB_CMD_SET_RATE && c2.channel == 3 && c2.arg == 250000u);
    CHECK(!fb_parse_command(p, 5, &c2));
    uint64_t t1 = 0;
    n = fb_msg_time_req(0x0102030405060708u, p, sizeof p);
    CHECK(n == 8 && fb_parse_time_req(p, 8, &t1) && t1 == 0x0102030405060708u);
    const fb_channel_info ch = {0, FB_FORMAT_INT16, 1000u, 1.0f,
                                "a-unit-string-that-is-longer-than-32-bytes", "x"};
    const fb_hello h = {"id", 1, 0, 0, 1, &ch};
    CHECK(fb_msg_hello(&h, p, sizeof p) == 0);
    fb_tx tx;
    fb_tx_init(&tx);
    tx.seq = 65535;
    uint8_t wire[32];
    CHECK(fb_tx_frame(&tx, FB_ACK, 0, p, 4, wire, sizeof wire) > 0 && tx.seq == 0);
    CHECK(fb_tx_frame(&tx, FB_ACK, 0, p, 4, wire, 4) == 0 && tx.seq == 0);
}

static const char *status_name(fb_status st)
{
    static const char *names[] = {"need_more", "ok",  "cobs",    "overflow",
                                  "short",     "crc", "version", "length"};
    return names[st];
}

static void check_vectors(const vector *v, size_t n, const char *path)
{
    fb_decoder d;
    fb_frame f;
    fb_decoder_init(&d);
    for (size_t i = 0; i < n; i++) {
        fb_status last = FB_NEED_MORE;
        for (size_t k = 0; k < v[i].n; k++) {
            fb_status st = fb_decoder_push(&d, v[i].bytes[k], &f);
            last = st == FB_NEED_MORE ? last : st;
        }
        if (strcmp(status_name(last), v[i].expect) != 0) {
            fprintf(stderr, "vector %s: decoded as %s\n", v[i].name, status_name(last));
            failures++;
        }
    }
    FILE *fp = fopen(path, "r");
    CHECK(fp != NULL);
    if (fp == NULL) {
        return;
    }
    static char line[4096], want[4096];
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(want, sizeof want, "%s %s ", v[i].name, v[i].expect);
        for (size_t k = 0; k < v[i].n; k++) {
            len += snprintf(want + len, sizeof want - (size_t)len, "%02x", v[i].bytes[k]);
        }
        if (fgets(line, sizeof line, fp) == NULL || strncmp(line, want, (size_t)len) != 0 ||
            line[len] != '\n') {
            fprintf(stderr, "vector %s differs from %s (make vectors?)\n", v[i].name, path);
            failures++;
        }
    }
    CHECK(fgets(line, sizeof line, fp) == NULL);
    fclose(fp);
}

static int write_vectors(const vector *v, size_t n, const char *path)
{
    FILE *fp = fopen(path, "w");
    if (fp == NULL) {
        perror(path);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        fprintf(fp, "%s %s ", v[i].name, v[i].expect);
        for (size_t k = 0; k < v[i].n; k++) {
            fprintf(fp, "%02x", v[i].bytes[k]);
        }
        fputc('\n', fp);
    }
    return fclose(fp) != 0;
}

int main(int argc, char **argv)
{
    static vector vecs[VEC_MAX];
    size_t n = vectors_build(vecs);
    if (argc == 3 && strcmp(argv[1], "--write-vectors") == 0) {
        return write_vectors(vecs, n, argv[2]);
    }
    test_crc();
    test_roundtrip();
    test_resync();
    test_waveform();
    test_messages();
    check_vectors(vecs, n, argc > 1 ? argv[1] : "../test_vectors/frames.hex");
    if (failures) {
        fprintf(stderr, "test_fb: %d failures\n", failures);
        return 1;
    }
    printf("test_fb: all passed (%zu vectors)\n", n);
    return 0;
}

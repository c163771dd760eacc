/* Message payload builders and parsers; little-endian, byte by byte, so the code is the same
 * on any host or MCU byte order and never performs an unaligned access. */
#include "fb_msg.h"

#include <string.h>

typedef char fb_float_is_32_bits[(sizeof(float) == 4) ? 1 : -1];

/* Bounds-checked writer: once a write does not fit, ok stays false and nothing more is
 * written, so builders check once at the end. */
typedef struct {
    uint8_t *buf;
    size_t cap, pos;
    bool ok;
} writer;

static void put_bytes(writer *w, const void *src, size_t n)
{
    if (!w->ok || w->cap - w->pos < n) {
        w->ok = false;
        return;
    }
    memcpy(w->buf + w->pos, src, n);
    w->pos += n;
}

static void put_le(writer *w, uint64_t v, size_t n)
{
    uint8_t b[8];
    for (size_t i = 0; i < n; i++) {
        b[i] = (uint8_t)(v >> (8u * i));
    }
    put_bytes(w, b, n);
}

static void put_str(writer *w, const char *s)
{
    size_t n = (s == NULL) ? 0u : strlen(s);
    if (n > FB_MAX_STR) {
        w->ok = false;
        return;
    }
    put_le(w, n, 1);
    put_bytes(w, s, n);
}

static void put_f32(writer *w, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    put_le(w, bits, 4);
}

static size_t finish(const writer *w)
{
    return (w->ok && w->pos <= 0xFFFFu) ? w->pos : 0u;
}

static writer writer_start(uint8_t *buf, size_t cap)
{
    writer w = {buf, cap, 0, buf != NULL};
    return w;
}

static bool format_ok(uint8_t format)
{
    return format == FB_FORMAT_INT16 || format == FB_FORMAT_INT24;
}

size_t fb_msg_hello(const fb_hello *m, uint8_t *buf, size_t cap)
{
    writer w = writer_start(buf, cap);
    if (m->n_channels == 0 || m->n_channels > FB_MAX_CHANNELS || m->channels == NULL) {
        return 0;
    }
    put_str(&w, m->device_id);
    const uint8_t fw[4] = {m->fw_major, m->fw_minor, m->fw_patch, m->n_channels};
    put_bytes(&w, fw, sizeof fw);
    for (uint8_t i = 0; i < m->n_channels; i++) {
        const fb_channel_info *c = &m->channels[i];
        w.ok = w.ok && format_ok(c->format);
        put_le(&w, c->id, 1);
        put_le(&w, c->format, 1);
        put_le(&w, c->rate_mhz, 4);
        put_f32(&w, c->scale);
        put_str(&w, c->unit);
        put_str(&w, c->label);
    }
    return finish(&w);
}

size_t fb_msg_waveform(const fb_waveform *m, uint8_t *buf, size_t cap)
{
    writer w = writer_start(buf, cap);
    if (!format_ok(m->format) || m->n_channels == 0 || m->n_channels > FB_MAX_CHANNELS ||
        m->n_samples == 0 || m->channel_ids == NULL || m->samples == NULL) {
        return 0;
    }
    const int32_t lo = (m->format == FB_FORMAT_INT16) ? -32768 : -8388608;
    const int32_t hi = (m->format == FB_FORMAT_INT16) ? 32767 : 8388607;
    const size_t width = (m->format == FB_FORMAT_INT16) ? 2u : 3u;
    put_le(&w, m->first_sample, 4);
    put_le(&w, m->t_us, 8);
    put_le(&w, m->format, 1);
    put_le(&w, m->n_channels, 1);
    put_le(&w, m->n_samples, 2);
    put_bytes(&w, m->channel_ids, m->n_channels);
    size_t total = (size_t)m->n_samples * m->n_channels;
    for (size_t i = 0; i < total && w.ok; i++) {
        int32_t v = m->samples[i];
        w.ok = v >= lo && v <= hi;
        put_le(&w, (uint32_t)v, width); /* two's complement, low bytes */
    }
    return finish(&w);
}

size_t fb_msg_vitals(uint64_t t_us, const fb_vital *v, uint8_t n, uint8_t *buf, size_t cap)
{
    writer w = writer_start(buf, cap);
    if (n > 0 && v == NULL) {
        return 0;
    }
    put_le(&w, t_us, 8);
    put_le(&w, n, 1);
    for (uint8_t i = 0; i < n; i++) {
        put_le(&w, v[i].code, 1);
        put_le(&w, (uint8_t)v[i].exponent, 1);
        put_le(&w, (uint32_t)v[i].value, 4);
    }
    return finish(&w);
}

size_t fb_msg_alert(const fb_alert *m, uint8_t *buf, size_t cap)
{
    writer w = writer_start(buf, cap);
    put_le(&w, m->t_us, 8);
    const uint8_t b[4] = {m->code, m->severity, m->channel, m->active};
    put_bytes(&w, b, sizeof b);
    put_le(&w, (uint16_t)m->value, 2);
    return finish(&w);
}

size_t fb_msg_time_req(uint64_t t1, uint8_t *buf, size_t cap)
{
    writer w = writer_start(buf, cap);
    put_le(&w, t1, 8);
    return finish(&w);
}

size_t fb_msg_time_resp(const fb_time *m, uint8_t *buf, size_t cap)
{
    writer w = writer_start(buf, cap);
    put_le(&w, m->t1, 8);
    put_le(&w, m->t2, 8);
    put_le(&w, m->t3, 8);
    return finish(&w);
}

size_t fb_msg_ack(const fb_ack *m, uint8_t *buf, size_t cap)
{
    writer w = writer_start(buf, cap);
    put_le(&w, m->seq, 2);
    put_le(&w, m->type, 1);
    put_le(&w, m->status, 1);
    return finish(&w);
}

size_t fb_msg_command(const fb_command_msg *m, uint8_t *buf, size_t cap)
{
    writer w = writer_start(buf, cap);
    put_le(&w, m->command, 1);
    put_le(&w, m->channel, 1);
    put_le(&w, m->arg, 4);
    return finish(&w);
}

static uint64_t get_le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v |= (uint64_t)p[i] << (8u * i);
    }
    return v;
}

bool fb_parse_waveform(const uint8_t *p, uint16_t n, fb_waveform *out)
{
    if (n < 16u) {
        return false;
    }
    out->first_sample = (uint32_t)get_le(p, 4);
    out->t_us = get_le(p + 4, 8);
    out->format = p[12];
    out->n_channels = p[13];
    out->n_samples = (uint16_t)get_le(p + 14, 2);
    if (!format_ok(out->format) || out->n_channels == 0 || out->n_channels > FB_MAX_CHANNELS ||
        out->n_samples == 0) {
        return false;
    }
    size_t width = (out->format == FB_FORMAT_INT16) ? 2u : 3u;
    size_t need = 16u + out->n_channels + width * out->n_channels * out->n_samples;
    if (need > n) {
        return false;
    }
    out->channel_ids = p + 16;
    out->raw = p + 16 + out->n_channels;
    out->samples = NULL;
    return true;
}

int32_t fb_waveform_sample(const fb_waveform *w, uint16_t i, uint8_t c)
{
    size_t width = (w->format == FB_FORMAT_INT16) ? 2u : 3u;
    const uint8_t *s = w->raw + ((size_t)i * w->n_channels + c) * width;
    uint32_t u = (uint32_t)get_le(s, width);
    uint32_t sign = 1u << (8u * width - 1u);
    /* Sign-extend without implementation-defined shifts of negative values. */
    return (u & sign) ? -(int32_t)((sign << 1) - u) : (int32_t)u;
}

bool fb_parse_time_req(const uint8_t *p, uint16_t n, uint64_t *t1)
{
    if (n < 8u) {
        return false;
    }
    *t1 = get_le(p, 8);
    return true;
}

bool fb_parse_ack(const uint8_t *p, uint16_t n, fb_ack *out)
{
    if (n < 4u) {
        return false;
    }
    out->seq = (uint16_t)get_le(p, 2);
    out->type = p[2];
    out->status = p[3];
    return true;
}

bool fb_parse_command(const uint8_t *p, uint16_t n, fb_command_msg *out)
{
    if (n < 6u) {
        return false;
    }
    out->command = p[0];
    out->channel = p[1];
    out->arg = (uint32_t)get_le(p + 2, 4);
    return true;
}

/* Frame layer: CRC-32, streaming COBS encoder, byte-at-a-time COBS decoder. */
#include "fb_frame.h"

#include <string.h>

/* CRC-32/ISO-HDLC, reflected polynomial 0xEDB88320, one nibble per step: a 64-byte table is a
 * good trade between the 1 KiB byte table and the 8-iteration bit loop on small MCUs. */
static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
    0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
    0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu};

uint32_t fb_crc32(uint32_t crc, const uint8_t *data, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= data[i];
        crc = (crc >> 4) ^ crc_nibble[crc & 0x0Fu];
        crc = (crc >> 4) ^ crc_nibble[crc & 0x0Fu];
    }
    return ~crc;
}

/* Streaming COBS encoder: the code byte of the current block is back-patched when the block
 * ends, so the frame is never assembled in a separate buffer. */
typedef struct {
    uint8_t *out;
    size_t pos;      /* next write position */
    size_t code_pos; /* where the current block's code byte goes */
    uint8_t code;    /* 1 + data bytes in the current block */
} cobs_enc;

static void cobs_start(cobs_enc *e, uint8_t *out)
{
    e->out = out;
    e->code_pos = 0;
    e->pos = 1;
    e->code = 1;
}

static void cobs_put(cobs_enc *e, uint8_t byte)
{
    if (byte != 0) {
        e->out[e->pos++] = byte;
        e->code++;
    }
    if (byte == 0 || e->code == 0xFFu) {
        e->out[e->code_pos] = e->code;
        e->code_pos = e->pos++;
        e->code = 1;
    }
}

static void cobs_put_all(cobs_enc *e, const uint8_t *data, size_t n, uint32_t *crc)
{
    for (size_t i = 0; i < n; i++) {
        cobs_put(e, data[i]);
    }
    *crc = fb_crc32(*crc, data, n);
}

static size_t cobs_finish(cobs_enc *e)
{
    e->out[e->code_pos] = e->code;
    e->out[e->pos] = 0x00u; /* delimiter; a trailing 0xFF block needs no phantom zero */
    return e->pos + 1;
}

size_t fb_encode(uint8_t type, uint8_t flags, uint16_t seq, const uint8_t *payload,
                 uint16_t length, uint8_t *out, size_t cap)
{
    if (length > FB_MAX_PAYLOAD || out == NULL || cap < FB_ENCODED_MAX((size_t)length) ||
        (payload == NULL && length > 0)) {
        return 0;
    }
    const uint8_t header[FB_HEADER_SIZE] = {
        (uint8_t)FB_VERSION, type, flags, 0u,
        (uint8_t)(seq & 0xFFu), (uint8_t)(seq >> 8),
        (uint8_t)(length & 0xFFu), (uint8_t)(length >> 8)};
    cobs_enc e;
    uint32_t crc = 0;
    cobs_start(&e, out);
    cobs_put_all(&e, header, sizeof header, &crc);
    if (length > 0) {
        cobs_put_all(&e, payload, length, &crc);
    }
    const uint8_t trailer[FB_CRC_SIZE] = {(uint8_t)crc, (uint8_t)(crc >> 8),
                                          (uint8_t)(crc >> 16), (uint8_t)(crc >> 24)};
    uint32_t unused = 0;
    cobs_put_all(&e, trailer, sizeof trailer, &unused);
    return cobs_finish(&e);
}

void fb_decoder_init(fb_decoder *d)
{
    memset(d, 0, sizeof *d);
}

static void decoder_reset(fb_decoder *d)
{
    d->len = 0;
    d->code = 0;
    d->left = 0;
    d->have_code = false;
    d->overflow = false;
}

/* Checks a complete, COBS-decoded frame in d->buf (PROTOCOL.md section 3 order). */
static fb_status frame_check(const fb_decoder *d, fb_frame *out)
{
    if (d->len < FB_HEADER_SIZE + FB_CRC_SIZE) {
        return FB_ERR_SHORT;
    }
    const uint8_t *b = d->buf;
    size_t body = (size_t)d->len - FB_CRC_SIZE;
    uint32_t want = (uint32_t)b[body] | ((uint32_t)b[body + 1] << 8) |
                    ((uint32_t)b[body + 2] << 16) | ((uint32_t)b[body + 3] << 24);
    if (fb_crc32(0, b, body) != want) {
        return FB_ERR_CRC;
    }
    if (b[0] != FB_VERSION) {
        return FB_ERR_VERSION;
    }
    uint16_t length = (uint16_t)(b[6] | (b[7] << 8));
    if ((size_t)length != body - FB_HEADER_SIZE) {
        return FB_ERR_LENGTH;
    }
    out->header.version = b[0];
    out->header.type = b[1];
    out->header.flags = b[2];
    out->header.seq = (uint16_t)(b[4] | (b[5] << 8));
    out->header.length = length;
    out->payload = b + FB_HEADER_SIZE;
    return FB_FRAME_OK;
}

static fb_status decoder_end(fb_decoder *d, fb_frame *out)
{
    fb_status st;
    if (!d->have_code && !d->overflow) {
        st = FB_NEED_MORE; /* empty frame: extra delimiters are allowed */
    } else if (d->overflow) {
        st = FB_ERR_OVERFLOW;
    } else if (d->left != 0) {
        st = FB_ERR_COBS;
    } else {
        st = frame_check(d, out);
    }
    decoder_reset(d);
    return st;
}

fb_status fb_decoder_push(fb_decoder *d, uint8_t byte, fb_frame *out)
{
    if (byte == 0x00u) {
        return decoder_end(d, out);
    }
    if (d->overflow) {
        return FB_NEED_MORE;
    }
    /* A code byte < 0xFF ends its block with an implied zero, written only once another block
     * follows (the last block's zero is not part of the data). */
    bool zero = false;
    bool data = true;
    if (d->left == 0) {
        zero = d->have_code && d->code != 0xFFu;
        data = false;
        d->code = byte;
        d->left = (uint8_t)(byte - 1u);
        d->have_code = true;
    } else {
        d->left--;
    }
    size_t need = (size_t)d->len + (zero ? 1u : 0u) + (data ? 1u : 0u);
    if (need > FB_MAX_FRAME) {
        d->overflow = true;
        return FB_NEED_MORE;
    }
    if (zero) {
        d->buf[d->len++] = 0x00u;
    }
    if (data) {
        d->buf[d->len++] = byte;
    }
    return FB_NEED_MORE;
}

void fb_tx_init(fb_tx *tx)
{
    tx->seq = 0;
}

size_t fb_tx_frame(fb_tx *tx, uint8_t type, uint8_t flags, const uint8_t *payload,
                   uint16_t length, uint8_t *out, size_t cap)
{
    size_t n = fb_encode(type, flags, tx->seq, payload, length, out, cap);
    if (n > 0) {
        tx->seq = (uint16_t)(tx->seq + 1u);
    }
    return n;
}

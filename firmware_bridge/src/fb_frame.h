/* edgemed firmware bridge: frame layer (COBS + header + CRC-32), see ../PROTOCOL.md.
 *
 * C99, no dynamic allocation, no global state: every function works only on the objects the
 * caller passes, so the encoder and the decoder are reentrant (one decoder per link, any
 * number of links, ISR-safe as long as one decoder is not fed from two contexts at once).
 */
#ifndef FB_FRAME_H
#define FB_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FB_VERSION 1u
#define FB_HEADER_SIZE 8u
#define FB_CRC_SIZE 4u
#define FB_MAX_PAYLOAD 1024u
#define FB_MAX_FRAME (FB_HEADER_SIZE + FB_MAX_PAYLOAD + FB_CRC_SIZE)
/* Worst-case wire size of a frame with a payload of n bytes: COBS adds one code byte per 254
 * data bytes (plus the first), then the 0x00 delimiter. */
#define FB_ENCODED_MAX(n) \
    ((n) + FB_HEADER_SIZE + FB_CRC_SIZE + ((n) + FB_HEADER_SIZE + FB_CRC_SIZE) / 254u + 2u)

#define FB_FLAG_ACK_REQUEST 0x01u

enum fb_type {
    FB_HELLO = 0x01,
    FB_WAVEFORM = 0x02,
    FB_VITALS = 0x03,
    FB_ALERT = 0x04,
    FB_TIME_REQ = 0x05,
    FB_TIME_RESP = 0x06,
    FB_ACK = 0x07,
    FB_NACK = 0x08,
    FB_COMMAND = 0x09
};

typedef struct {
    uint8_t version;
    uint8_t type;
    uint8_t flags;
    uint16_t seq;
    uint16_t length; /* payload bytes */
} fb_header;

/* Outcome of feeding one byte to the decoder. Every value except FB_NEED_MORE ends a frame. */
typedef enum {
    FB_NEED_MORE = 0,  /* frame still in progress (or an empty frame was skipped) */
    FB_FRAME_OK,       /* *out holds a valid frame */
    FB_ERR_COBS,       /* a COBS block ran past the delimiter: bytes were lost */
    FB_ERR_OVERFLOW,   /* longer than FB_MAX_FRAME: discarded without buffering */
    FB_ERR_SHORT,      /* shorter than header + CRC */
    FB_ERR_CRC,        /* checksum mismatch */
    FB_ERR_VERSION,    /* intact frame of another major version */
    FB_ERR_LENGTH      /* header length field disagrees with the frame size */
} fb_status;

typedef struct {
    fb_header header;
    const uint8_t *payload; /* points into the decoder; valid until the next fb_decoder_push */
} fb_frame;

typedef struct {
    uint8_t buf[FB_MAX_FRAME];
    uint16_t len;     /* decoded bytes so far */
    uint8_t code;     /* current COBS code byte */
    uint8_t left;     /* data bytes left in the current COBS block */
    bool have_code;   /* a code byte was read since the last delimiter */
    bool overflow;    /* frame too long: drop bytes until the delimiter */
} fb_decoder;

/* CRC-32/ISO-HDLC over n bytes, continuing from crc (start with 0). Check: "123456789" ->
 * 0xCBF43926. */
uint32_t fb_crc32(uint32_t crc, const uint8_t *data, size_t n);

/* Encode one frame (header + payload + CRC, COBS, trailing 0x00) into out. Returns the number
 * of bytes written, or 0 if length > FB_MAX_PAYLOAD or cap < FB_ENCODED_MAX(length). */
size_t fb_encode(uint8_t type, uint8_t flags, uint16_t seq, const uint8_t *payload,
                 uint16_t length, uint8_t *out, size_t cap);

void fb_decoder_init(fb_decoder *d);
/* Feed one received byte. On FB_FRAME_OK, *out describes the frame. */
fb_status fb_decoder_push(fb_decoder *d, uint8_t byte, fb_frame *out);

/* Device-side sender state: the sequence counter of one link. */
typedef struct {
    uint16_t seq;
} fb_tx;

void fb_tx_init(fb_tx *tx);
/* fb_encode with the link's next sequence number; the counter advances only on success. */
size_t fb_tx_frame(fb_tx *tx, uint8_t type, uint8_t flags, const uint8_t *payload,
                   uint16_t length, uint8_t *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif /* FB_FRAME_H */

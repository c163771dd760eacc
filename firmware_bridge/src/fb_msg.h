/* edgemed firmware bridge: message payloads (PROTOCOL.md section 4).
 *
 * Builders write a payload into a caller buffer and return its length, or 0 when the buffer
 * is too small or a field is out of range (a sample that does not fit the format is an error,
 * never silently clipped). Parsers read a received payload and return false when it is
 * shorter than its fields; trailing bytes are ignored (the protocol's extension rule).
 */
#ifndef FB_MSG_H
#define FB_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FB_FORMAT_INT16 1u
#define FB_FORMAT_INT24 2u
#define FB_MAX_CHANNELS 64u
#define FB_MAX_STR 32u
#define FB_CHANNEL_DEVICE 0xFFu
#define FB_VITAL_INVALID INT32_MIN

enum fb_command { FB_CMD_START = 1, FB_CMD_STOP = 2, FB_CMD_SET_RATE = 3, FB_CMD_SEND_HELLO = 4 };
enum fb_nack_reason {
    FB_NACK_UNKNOWN_TYPE = 1,
    FB_NACK_BAD_ARGUMENT = 2,
    FB_NACK_UNSUPPORTED = 3,
    FB_NACK_BUSY = 4,
    FB_NACK_MALFORMED = 5
};
enum fb_alert_code {
    FB_ALERT_LEAD_OFF = 1,
    FB_ALERT_SENSOR_DETACHED = 2,
    FB_ALERT_BATTERY_LOW = 3,
    FB_ALERT_BATTERY_CRITICAL = 4,
    FB_ALERT_SIGNAL_QUALITY = 5,
    FB_ALERT_OVERRANGE = 6,
    FB_ALERT_DEVICE_FAULT = 7
};

typedef struct {
    uint8_t id;
    uint8_t format;    /* FB_FORMAT_INT16 or FB_FORMAT_INT24 */
    uint32_t rate_mhz; /* sampling rate in millihertz */
    float scale;       /* physical units per count */
    const char *unit;  /* NUL-terminated, at most FB_MAX_STR bytes */
    const char *label;
} fb_channel_info;

typedef struct {
    const char *device_id;
    uint8_t fw_major, fw_minor, fw_patch;
    uint8_t n_channels;
    const fb_channel_info *channels;
} fb_hello;

typedef struct {
    uint32_t first_sample;
    uint64_t t_us;
    uint8_t format;
    uint8_t n_channels;
    uint16_t n_samples;
    const uint8_t *channel_ids; /* n_channels ids */
    const int32_t *samples;     /* builder: n_samples * n_channels, sample-major */
    const uint8_t *raw;         /* parser: the packed sample bytes inside the payload */
} fb_waveform;

typedef struct {
    uint8_t code;
    int8_t exponent;
    int32_t value;
} fb_vital;

typedef struct {
    uint64_t t_us;
    uint8_t code, severity, channel, active;
    int16_t value;
} fb_alert;

typedef struct {
    uint64_t t1, t2, t3;
} fb_time;

typedef struct {
    uint16_t seq;
    uint8_t type;
    uint8_t status;
} fb_ack;

typedef struct {
    uint8_t command;
    uint8_t channel;
    uint32_t arg;
} fb_command_msg;

size_t fb_msg_hello(const fb_hello *m, uint8_t *buf, size_t cap);
size_t fb_msg_waveform(const fb_waveform *m, uint8_t *buf, size_t cap);
size_t fb_msg_vitals(uint64_t t_us, const fb_vital *v, uint8_t n, uint8_t *buf, size_t cap);
size_t fb_msg_alert(const fb_alert *m, uint8_t *buf, size_t cap);
size_t fb_msg_time_req(uint64_t t1, uint8_t *buf, size_t cap);
size_t fb_msg_time_resp(const fb_time *m, uint8_t *buf, size_t cap);
size_t fb_msg_ack(const fb_ack *m, uint8_t *buf, size_t cap); /* ACK and NACK alike */
size_t fb_msg_command(const fb_command_msg *m, uint8_t *buf, size_t cap);

bool fb_parse_waveform(const uint8_t *p, uint16_t n, fb_waveform *out);
/* Sample i of channel position c of a parsed waveform (bounds are the caller's duty). */
int32_t fb_waveform_sample(const fb_waveform *w, uint16_t i, uint8_t c);
bool fb_parse_time_req(const uint8_t *p, uint16_t n, uint64_t *t1);
bool fb_parse_ack(const uint8_t *p, uint16_t n, fb_ack *out);
bool fb_parse_command(const uint8_t *p, uint16_t n, fb_command_msg *out);

#ifdef __cplusplus
}
#endif
#endif /* FB_MSG_H */

/* fb_sim: a host program that behaves like a bedside ECG front end on the bridge protocol.
 *
 * It streams a real recording (raw little-endian int16, channels interleaved; exported from
 * MIT-BIH 208 or pydicom's 12-lead ECG by tools/export_ecg.py) as HELLO + WAVEFORM frames.
 *
 *   fb_sim -i ecg.i16 -c 1 -r 360000 -s 0.005 -u mV -l MLII [-b 36] [--realtime] --pty
 *       creates a pseudo-terminal, prints "PTY /dev/pts/N", and acts as a device: waits for
 *       COMMAND START, answers ACK/NACK, TIME_REQ and SEND_HELLO, streams, exits after STOP.
 *   fb_sim ... -o FILE      writes the whole stream to FILE (no commands), then exits.
 * On exit it prints "SENT frames=F samples=S" (samples per channel) on stdout.
 * Not part of the firmware library: it uses POSIX I/O; the library code it links does not.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../src/fb_frame.h"
#include "../src/fb_msg.h"

#define MAX_CH 16
#define MAX_BLOCK 64

typedef struct {
    const char *input, *output, *unit, *labels, *device_id;
    unsigned channels, block;
    unsigned long rate_mhz;
    float scale;
    int pty, realtime;
} options;

typedef struct {
    options opt;
    FILE *in;
    int fd;
    fb_tx tx;
    fb_decoder dec;
    int streaming, stopped;
    unsigned long frames, samples;
    uint64_t t_start_us;
    char label_buf[MAX_CH][FB_MAX_STR + 1];
} device;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *what)
{
    fprintf(stderr, "fb_sim: %s: %s\n", what, errno ? strerror(errno) : "invalid");
    exit(2);
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            die("write");
        }
        p += k;
        n -= (size_t)k;
    }
}

static void send_frame(device *d, uint8_t type, uint8_t flags, const uint8_t *p, size_t n)
{
    static uint8_t wire[FB_ENCODED_MAX(FB_MAX_PAYLOAD)];
    size_t w = fb_tx_frame(&d->tx, type, flags, p, (uint16_t)n, wire, sizeof wire);
    if (w == 0) {
        die("encode");
    }
    write_all(d->fd, wire, w);
    d->frames++;
}

static void send_hello(device *d)
{
    fb_channel_info ch[MAX_CH];
    char labels[256];
    snprintf(labels, sizeof labels, "%s", d->opt.labels);
    char *save = NULL, *tok = strtok_r(labels, ",", &save);
    for (unsigned c = 0; c < d->opt.channels; c++) {
        snprintf(d->label_buf[c], sizeof d->label_buf[c], "%s", tok ? tok : "?");
        tok = tok ? strtok_r(NULL, ",", &save) : NULL;
        fb_channel_info info = {(uint8_t)c, FB_FORMAT_INT16, (uint32_t)d->opt.rate_mhz,
                                d->opt.scale, d->opt.unit, d->label_buf[c]};
        ch[c] = info;
    }
    fb_hello h = {d->opt.device_id, 1, 0, 0, (uint8_t)d->opt.channels, ch};
    uint8_t p[FB_MAX_PAYLOAD];
    size_t n = fb_msg_hello(&h, p, sizeof p);
    if (n == 0) {
        die("hello payload");
    }
    send_frame(d, FB_HELLO, 0, p, n);
}

/* Reads the next block from the recording and sends it; returns 0 at the end of the file. */
static int send_block(device *d)
{
    int16_t raw[MAX_BLOCK * MAX_CH];
    int32_t s[MAX_BLOCK * MAX_CH];
    uint8_t ids[MAX_CH], p[FB_MAX_PAYLOAD];
    size_t got = fread(raw, sizeof raw[0] * d->opt.channels, d->opt.block, d->in);
    if (got == 0) {
        return 0;
    }
    for (size_t i = 0; i < got * d->opt.channels; i++) {
        const uint8_t *b = (const uint8_t *)&raw[i]; /* file is little-endian */
        s[i] = (int16_t)(uint16_t)(b[0] | (b[1] << 8));
    }
    for (unsigned c = 0; c < d->opt.channels; c++) {
        ids[c] = (uint8_t)c;
    }
    /* Device time of the first sample follows the sample clock, as an ADC-driven device's. */
    uint64_t t = d->t_start_us + (uint64_t)d->samples * 1000000000u / d->opt.rate_mhz;
    fb_waveform w = {(uint32_t)d->samples, t, FB_FORMAT_INT16, (uint8_t)d->opt.channels,
                     (uint16_t)got, ids, s, NULL};
    size_t n = fb_msg_waveform(&w, p, sizeof p);
    if (n == 0) {
        die("waveform payload");
    }
    send_frame(d, FB_WAVEFORM, 0, p, n);
    d->samples += got;
    return 1;
}

static void send_battery(device *d)
{
    fb_alert a = {now_us(), FB_ALERT_BATTERY_LOW, 1, FB_CHANNEL_DEVICE, 1, 18};
    uint8_t p[32];
    send_frame(d, FB_ALERT, FB_FLAG_ACK_REQUEST, p, fb_msg_alert(&a, p, sizeof p));
}

static void answer(device *d, const fb_header *h, uint8_t status)
{
    if (h->flags & FB_FLAG_ACK_REQUEST) {
        fb_ack a = {h->seq, h->type, status};
        uint8_t p[8];
        send_frame(d, status ? FB_NACK : FB_ACK, 0, p, fb_msg_ack(&a, p, sizeof p));
    }
}

static void on_command(device *d, const fb_frame *f)
{
    fb_command_msg c;
    if (!fb_parse_command(f->payload, f->header.length, &c)) {
        answer(d, &f->header, FB_NACK_MALFORMED);
        return;
    }
    if (c.command == FB_CMD_START) {
        answer(d, &f->header, 0);
        if (!d->streaming && !d->stopped) {
            d->streaming = 1;
            d->t_start_us = now_us();
            send_hello(d);
            send_battery(d);
        }
    } else if (c.command == FB_CMD_STOP) {
        answer(d, &f->header, 0);
        d->streaming = 0;
        d->stopped = 1;
    } else if (c.command == FB_CMD_SEND_HELLO) {
        answer(d, &f->header, 0);
        send_hello(d);
    } else {
        /* SET_RATE: a recording cannot change its rate; say so instead of pretending. */
        answer(d, &f->header, c.command == FB_CMD_SET_RATE ? FB_NACK_UNSUPPORTED
                                                            : FB_NACK_BAD_ARGUMENT);
    }
}

static void on_frame(device *d, const fb_frame *f)
{
    uint64_t t2 = now_us(), t1;
    if (f->header.type == FB_COMMAND) {
        on_command(d, f);
    } else if (f->header.type == FB_TIME_REQ && fb_parse_time_req(f->payload, f->header.length,
                                                                   &t1)) {
        fb_time t = {t1, t2, now_us()};
        uint8_t p[32];
        send_frame(d, FB_TIME_RESP, 0, p, fb_msg_time_resp(&t, p, sizeof p));
    } else if (f->header.type != FB_ACK && f->header.type != FB_NACK) {
        answer(d, &f->header, FB_NACK_UNKNOWN_TYPE);
    }
}

/* Reads whatever the host sent (waits up to timeout_ms) and handles complete frames. */
static void poll_host(device *d, int timeout_ms)
{
    struct pollfd pfd = {d->fd, POLLIN, 0};
    if (poll(&pfd, 1, timeout_ms) <= 0 || !(pfd.revents & POLLIN)) {
        return;
    }
    uint8_t buf[512];
    ssize_t n = read(d->fd, buf, sizeof buf);
    for (ssize_t i = 0; i < n; i++) {
        fb_frame f;
        if (fb_decoder_push(&d->dec, buf[i], &f) == FB_FRAME_OK) {
            on_frame(d, &f);
        }
    }
}

static int open_pty(void)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0 || grantpt(m) != 0 || unlockpt(m) != 0) {
        die("posix_openpt");
    }
    /* Raw mode on the slave: no echo, no CR/LF translation of binary frames. The fd stays
     * open for the simulator's life, so the master never reads EIO (no slave open) before
     * the host attaches. */
    int s = open(ptsname(m), O_RDWR | O_NOCTTY);
    struct termios tio;
    if (s < 0 || tcgetattr(s, &tio) != 0) {
        die("open pty slave");
    }
    cfmakeraw(&tio);
    tcsetattr(s, TCSANOW, &tio);
    (void)s;
    printf("PTY %s\n", ptsname(m));
    fflush(stdout);
    return m;
}

static void pace(const device *d)
{
    if (!d->opt.realtime) {
        return;
    }
    uint64_t due = d->t_start_us + (uint64_t)d->samples * 1000000000u / d->opt.rate_mhz;
    uint64_t now = now_us();
    if (due > now) {
        usleep((useconds_t)(due - now));
    }
}

/* Device loop: serve commands, stream while started. After STOP it keeps serving for half a
 * second: exiting at once would hang up the pty, and Linux discards whatever the host had
 * not read yet, the ACK of STOP included. */
static void run_pty(device *d)
{
    uint64_t idle_since = now_us();
    while (!d->stopped && now_us() - idle_since < 60000000u) {
        poll_host(d, d->streaming ? 0 : 50);
        if (d->streaming) {
            pace(d);
            if (!send_block(d)) {
                d->streaming = 0; /* recording ended: keep answering until STOP */
            }
            idle_since = now_us();
        }
    }
    uint64_t stop = now_us();
    while (now_us() - stop < 500000u) {
        poll_host(d, 50);
    }
}

static void parse_args(int argc, char **argv, options *o)
{
    const options defaults = {NULL, NULL, "mV", "ECG", "EM-SIM-0001", 1, 36, 0, 1.0f, 0, 0};
    *o = defaults;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--pty")) { o->pty = 1; continue; }
        if (!strcmp(a, "--realtime")) { o->realtime = 1; continue; }
        if (v == NULL) { errno = 0; die(a); }
        i++;
        if (!strcmp(a, "-i")) o->input = v;
        else if (!strcmp(a, "-o")) o->output = v;
        else if (!strcmp(a, "-c")) o->channels = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "-r")) o->rate_mhz = strtoul(v, NULL, 10);
        else if (!strcmp(a, "-s")) o->scale = strtof(v, NULL);
        else if (!strcmp(a, "-u")) o->unit = v;
        else if (!strcmp(a, "-l")) o->labels = v;
        else if (!strcmp(a, "-b")) o->block = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "-d")) o->device_id = v;
        else { errno = 0; die(a); }
    }
    errno = 0;
    if (!o->input || o->pty == (o->output != NULL) || o->channels < 1 || o->channels > MAX_CH ||
        o->block < 1 || o->block > MAX_BLOCK || o->rate_mhz == 0) {
        die("usage: fb_sim -i FILE -c CH -r RATE_MHZ [-s SCALE -u UNIT -l L1,L2 -b N] "
            "(--pty | -o FILE) [--realtime]");
    }
}

int main(int argc, char **argv)
{
    static device d;
    parse_args(argc, argv, &d.opt);
    fb_tx_init(&d.tx);
    fb_decoder_init(&d.dec);
    d.in = fopen(d.opt.input, "rb");
    if (d.in == NULL) {
        die(d.opt.input);
    }
    d.fd = d.opt.pty ? open_pty() : open(d.opt.output, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (d.fd < 0) {
        die("output");
    }
    write_all(d.fd, (const uint8_t *)"", 1); /* leading delimiter flushes receiver garbage */
    if (d.opt.pty) {
        run_pty(&d);
    } else {
        d.t_start_us = now_us();
        send_hello(&d);
        while (send_block(&d)) {
            pace(&d);
        }
    }
    printf("SENT frames=%lu samples=%lu\n", d.frames, d.samples);
    fflush(stdout);
    return 0;
}

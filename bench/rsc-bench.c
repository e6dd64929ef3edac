/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Side-by-side benchmark of virtio-net receive segment coalescing (RSC)
 *
 * One run: start the QEMU of $QTEST_QEMU_BINARY with a virtio-net-pci
 * device on a tap backend (vnet headers), drive it with a guest driver
 * that negotiates like Windows netkvm (the fixture of the RSC qtests,
 * tests/qtest/virtio-net-rsc-utils.c), inject TCP segments into the tap
 * and measure the CPU time QEMU spends, from the schedstat of all of
 * its threads.
 *
 * Everything runs in a private network namespace.  Segments are written
 * to a NAPI tap on a bridge that the QEMU tap also joins: the kernel
 * validates their checksums (GRO) and QEMU gets them marked DATA_VALID,
 * as frames from a NIC with receive checksum offload are.  PSH on every
 * segment keeps GRO from merging them.  With --csum-none they are written
 * with an AF_PACKET socket straight into the QEMU tap instead, so QEMU
 * gets no checksum flags and must check checksums itself.
 *
 * The guest side posts 1024 receive buffers of 64 KiB and recycles them.
 * Segments are injected in batches, with QEMU stopped (SIGSTOP) so that
 * it finds each batch queued on its tap and reads it in bursts of 50
 * frames (net/tap.c), the way a busy QEMU does, not one wakeup per frame
 * at a rate that depends on the load of the machine.  After each batch
 * the harness resumes QEMU, waits until it has read them all, advances
 * the virtual clock by --step ns (the RSC timers fire), takes the used
 * buffers, posts them again and kicks.  Each batch costs the same few
 * qtest commands whatever the device does with the segments.
 *
 * Three passes of the same number of batches, in one QEMU:
 *   idle  - no segments, only the qtest commands: the harness's cost
 *   down  - segments injected with the link down: QEMU reads them from
 *           the tap and drops them (the backend's cost)
 *   live  - segments injected and delivered
 * after a warm-up (live, not measured).  The passes advance chunk by
 * chunk in turns, so that all three see the same load of the machine.
 * The result is one line of key=value pairs on stdout, with the cost of
 * copying the live pass's payloads once into cold memory of the size of the
 * guest's buffers, measured after the passes: the physical floor.
 */

#include "qemu/osdep.h"
#include <sys/ioctl.h>
#include <sched.h>
#include <net/if.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include "qemu/bswap.h"
#include "qemu/cutils.h"
#include "qobject/qnum.h"
#include "virtio-net-rsc-utils.h"

#define TAP_HDR_LEN     10      /* struct virtio_net_hdr, written by us */
#define LINK_MTU        9216
#define TAP_QUEUE_LEN   4096
#define MAX_HDR         128
#define WAIT_US         (30 * G_USEC_PER_SEC)

/* Command line. */
static char *opt_device = (char *)"";
static gboolean opt_no_rsc_ext;
static gint opt_flows = 1;
static gboolean opt_v6;
static gboolean opt_ts;
static gint opt_mss = 1448;
static gint opt_segs = 32768;
static gint opt_batch = 512;
static gint opt_chunk = 4;
static gint opt_warmup = 8;
static gint64 opt_step = 300000;
static gboolean opt_csum_none;
static gboolean opt_no_psh;

static GOptionEntry entries[] = {
    { "device", 0, 0, G_OPTION_ARG_STRING, &opt_device,
      "extra virtio-net-pci properties", "PROPS" },
    { "no-rsc-ext", 0, 0, G_OPTION_ARG_NONE, &opt_no_rsc_ext,
      "negotiate without VIRTIO_NET_F_RSC_EXT (RSC off)", NULL },
    { "flows", 0, 0, G_OPTION_ARG_INT, &opt_flows,
      "interleaved TCP connections", "N" },
    { "ipv6", 0, 0, G_OPTION_ARG_NONE, &opt_v6, "IPv6 instead of IPv4",
      NULL },
    { "timestamps", 0, 0, G_OPTION_ARG_NONE, &opt_ts,
      "TCP timestamp option in every segment", NULL },
    { "mss", 0, 0, G_OPTION_ARG_INT, &opt_mss, "payload bytes per segment",
      "BYTES" },
    { "segs", 0, 0, G_OPTION_ARG_INT, &opt_segs,
      "segments per measured pass (rounded up to whole chunks)", "N" },
    { "batch", 0, 0, G_OPTION_ARG_INT, &opt_batch,
      "segments per batch (between clock steps)", "N" },
    { "chunk", 0, 0, G_OPTION_ARG_INT, &opt_chunk,
      "batches per chunk (passes alternate chunk by chunk)", "N" },
    { "warmup", 0, 0, G_OPTION_ARG_INT, &opt_warmup,
      "batches of warm-up", "N" },
    { "step", 0, 0, G_OPTION_ARG_INT64, &opt_step,
      "virtual ns the clock advances after each batch", "NS" },
    { "csum-none", 0, 0, G_OPTION_ARG_NONE, &opt_csum_none,
      "no checksum flags from the tap: the device checks checksums", NULL },
    { "no-psh", 0, 0, G_OPTION_ARG_NONE, &opt_no_psh,
      "segments without PSH (with --csum-none: no GRO on the way)", NULL },
    { NULL }
};

typedef struct Flow {
    uint16_t sport;
    uint16_t ip_id;
    uint32_t seq;
} Flow;

typedef enum PassMode {
    PASS_IDLE,
    PASS_DOWN,
    PASS_LIVE,
} PassMode;

typedef struct Pass {
    uint64_t cpu_ns;
    uint64_t wall_ns;
    uint64_t segs;
    uint64_t pkts;          /* used ring entries */
    uint64_t bytes;         /* frame bytes delivered (without vnet header) */
    uint64_t extra_rounds;  /* clock steps needed after the last batch */
    uint64_t odd;           /* packets not made of our segments */
} Pass;

typedef struct Bench {
    RscTest r;              /* the device and the guest driver */
    pid_t pid;

    int tap_fd;             /* QEMU's tap (passed to it) */
    int gro_fd;             /* NAPI tap on the bridge */
    int pkt_fd;             /* AF_PACKET on QEMU's tap (--csum-none) */
    int stats_fd;           /* /proc/self/net/dev */
    char ifname[IFNAMSIZ];  /* QEMU's tap */
    char stats_key[IFNAMSIZ + 3];   /* its line there: " name:" */
    uint64_t injected;      /* frames written */
    uint64_t read_base;     /* tx_packets before the first frame */

    Flow *flows;
    uint64_t next_flow;     /* round robin position */
    uint32_t tsval;
    size_t hdr_len;         /* Ethernet + IP + TCP header bytes */
    uint8_t *payload;
    uint32_t payload_sum;
    uint8_t (*hdrs)[MAX_HDR];
} Bench;

/* QEMU, to kill on failure (it may be stopped and deaf to SIGTERM). */
static pid_t qemu_pid;

static G_NORETURN G_GNUC_PRINTF(1, 2) void die(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "rsc-bench: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    if (qemu_pid > 0) {
        kill(qemu_pid, SIGKILL);
    }
    exit(1);
}

/* --- network namespace, bridge and taps ------------------------------ */

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);

    if (fd >= 0) {
        if (write(fd, text, strlen(text)) < 0) {
            /* best effort: only keeps IPv6 chatter away */
        }
        close(fd);
    }
}

/* Set @name's MTU and queue length, up without multicast, maybe bridged. */
static void link_up(const char *name, bool bridge)
{
    struct ifreq ifr = { 0 };
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    pstrcpy(ifr.ifr_name, IFNAMSIZ, name);
    ifr.ifr_mtu = LINK_MTU;
    if (s < 0 || ioctl(s, SIOCSIFMTU, &ifr) < 0) {
        die("setting the MTU of %s: %s", name, strerror(errno));
    }
    ifr.ifr_qlen = TAP_QUEUE_LEN;
    if (ioctl(s, SIOCSIFTXQLEN, &ifr) < 0) {
        die("setting the queue length of %s: %s", name, strerror(errno));
    }
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
        die("reading the flags of %s: %s", name, strerror(errno));
    }
    ifr.ifr_flags = (ifr.ifr_flags | IFF_UP) & ~IFF_MULTICAST;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
        die("setting %s up: %s", name, strerror(errno));
    }
    if (bridge) {
        ifr.ifr_ifindex = if_nametoindex(name);
        pstrcpy(ifr.ifr_name, IFNAMSIZ, "rscbr0");
        if (ioctl(s, SIOCBRADDIF, &ifr) < 0) {
            die("adding %s to the bridge: %s", name, strerror(errno));
        }
    }
    close(s);
}

/* A tap with vnet headers; @napi: ours, written to; else QEMU's. */
static int tap_new(const char *name, bool napi, char *ifname)
{
    struct ifreq ifr = { 0 };
    /* QEMU inherits its tap */
    int fd = open("/dev/net/tun", O_RDWR | (napi ? O_CLOEXEC : 0));

    if (fd < 0) {
        die("open /dev/net/tun: %s", strerror(errno));
    }
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (napi ? IFF_NAPI : 0);
    pstrcpy(ifr.ifr_name, IFNAMSIZ, name);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        die("creating tap %s: %s", name, strerror(errno));
    }
    pstrcpy(ifname, IFNAMSIZ, ifr.ifr_name);
    return fd;
}

/*
 * A private network namespace with the bridge rscbr0, the NAPI tap
 * rscgro0 we write to and the tap rsc0 that QEMU reads.  Must run before
 * any thread exists.
 */
static void net_setup(Bench *b)
{
    struct sockaddr_ll sll = { .sll_family = AF_PACKET };
    char name[IFNAMSIZ];
    int s, one = 1;

    if (unshare(CLONE_NEWNET) < 0) {
        die("unshare(CLONE_NEWNET): %s (run as root)", strerror(errno));
    }
    write_file("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
    write_file("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
    s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0 || ioctl(s, SIOCBRADDBR, "rscbr0") < 0) {
        die("creating a bridge: %s", strerror(errno));
    }
    close(s);
    link_up("rscbr0", false);
    b->gro_fd = tap_new("rscgro0", true, name);
    link_up(name, true);
    b->tap_fd = tap_new("rsc0", false, b->ifname);
    link_up(b->ifname, !opt_csum_none);

    b->pkt_fd = -1;
    if (opt_csum_none) {
        b->pkt_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        sll.sll_ifindex = if_nametoindex(b->ifname);
        if (b->pkt_fd < 0 ||
            setsockopt(b->pkt_fd, SOL_PACKET, PACKET_VNET_HDR, &one,
                       sizeof(one)) ||
            bind(b->pkt_fd, (struct sockaddr *)&sll, sizeof(sll))) {
            die("AF_PACKET socket on %s: %s", b->ifname, strerror(errno));
        }
    }
    /* /sys shows the namespace it was mounted in; /proc/net is ours */
    snprintf(b->stats_key, sizeof(b->stats_key), " %s:", b->ifname);
    b->stats_fd = open("/proc/self/net/dev", O_RDONLY | O_CLOEXEC);
    if (b->stats_fd < 0) {
        die("open /proc/self/net/dev: %s", strerror(errno));
    }
}

/*
 * Frames QEMU has read from its tap (tun counts them as transmitted) and,
 * in *@dropped, frames the kernel dropped on the way to it.
 */
static uint64_t bench_frames_read(Bench *b, uint64_t *dropped)
{
    char buf[4096], *line;
    uint64_t v[12];
    ssize_t n = pread(b->stats_fd, buf, sizeof(buf) - 1, 0);
    int i;

    if (n <= 0) {
        die("reading /proc/self/net/dev: %s", strerror(errno));
    }
    buf[n] = 0;
    line = strstr(buf, b->stats_key);
    if (!line) {
        die("no %s in /proc/self/net/dev", b->ifname);
    }
    line += strlen(b->stats_key);
    /* rx: bytes packets errs drop fifo frame compressed multicast, tx: ... */
    for (i = 0; i < 12; i++) {
        v[i] = g_ascii_strtoull(line, &line, 10);
    }
    if (dropped) {
        *dropped = v[11];
    }
    return v[9];
}

/* --- QEMU's CPU time ---------------------------------------------------- */

/* Nanoseconds on CPU of all of QEMU's threads (schedstat). */
static uint64_t qemu_cpu_ns(Bench *b)
{
    g_autofree char *dir = g_strdup_printf("/proc/%d/task", b->pid);
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *tid;
    uint64_t sum = 0;

    if (!d) {
        die("cannot list %s: is QEMU still running?", dir);
    }
    while ((tid = g_dir_read_name(d))) {
        g_autofree char *path = g_strdup_printf("%s/%s/schedstat", dir, tid);
        g_autofree char *text = NULL;

        if (g_file_get_contents(path, &text, NULL, NULL)) {
            sum += g_ascii_strtoull(text, NULL, 10);
        }
    }
    g_dir_close(d);
    return sum;
}

static uint64_t now_ns(void)
{
    return g_get_monotonic_time() * 1000;
}

/* --- the guest driver ---------------------------------------------------- */

static void qemu_start(Bench *b)
{
    g_autofree char *netdev = g_strdup_printf("tap,fd=%d,id=n0,vhost=off",
                                              b->tap_fd);
    RscOpts o = {
        .netdev = netdev,
        .args = "-global apic-common.vapic=off",
        .device = *opt_device ? opt_device : NULL,
        .default_interval = true,
        .no_offer_rsc_ext = true,   /* --device says */
        .no_rsc_ext = opt_no_rsc_ext,
    };

    /* netkvm's negotiation, every buffer posted, RSC on */
    rsc_init(&b->r, &o);
    close(b->tap_fd);
    b->pid = qemu_pid = qtest_pid(b->r.qts);
    /* touch all buffer memory now, not during the first pass */
    qtest_memset(b->r.qts, b->r.bufs_base, 0,
                 (uint64_t)b->r.rx->size * b->r.buf_size);
}

static void set_link(Bench *b, bool up)
{
    QDict *rsp = qtest_qmp(b->r.qts, "{ 'execute': 'set_link', 'arguments':"
                           " { 'name': 'n0', 'up': %i } }", up);

    if (!qdict_haskey(rsp, "return")) {
        die("QMP set_link failed");
    }
    qobject_unref(rsp);
}

/*
 * The guest's part of a batch, always the same qtest commands: read the
 * used index, read the new used elements, post their buffers again,
 * publish and kick.
 */
static void harvest(Bench *b, Pass *p)
{
    uint32_t size = b->r.rx->size;
    uint16_t idx = qtest_readw(b->r.qts, b->r.rx->used + 2);
    uint16_t n = idx - b->r.used_idx;
    g_autofree uint8_t *elems = g_malloc(8 * MAX(n, 1));
    g_autofree uint16_t *ids = g_new0(uint16_t, MAX(n, 1));
    uint16_t done, chunk, i;

    /*
     * The used elements, in one read unless the ring wraps.  With none,
     * a harmless read and write instead, to keep the command count.
     */
    if (!n) {
        qtest_bufread(b->r.qts, b->r.rx->used + 4, elems, 8);
        qtest_bufwrite(b->r.qts, b->r.rx->avail, ids, 2);   /* flags: 0 */
    }
    for (done = 0; done < n; done += chunk) {
        uint16_t slot = (b->r.used_idx + done) % size;

        chunk = MIN(n - done, size - slot);
        qtest_bufread(b->r.qts, b->r.rx->used + 4 + 8 * slot, elems + 8 * done,
                      8 * chunk);
    }

    for (i = 0; i < n; i++) {
        uint32_t id = ldl_le_p(elems + 8 * i);
        uint32_t len = ldl_le_p(elems + 8 * i + 4);

        if (id >= size || len < VNET_HDR_LEN || len > b->r.buf_size) {
            die("bad used element: id %u, length %u", id, len);
        }
        ids[i] = cpu_to_le16(id);
        if ((len - VNET_HDR_LEN - b->hdr_len) % opt_mss ||
            len - VNET_HDR_LEN < b->hdr_len + opt_mss) {
            /* not ours: e.g. an IGMP report of the bridge */
            p->odd++;
            continue;
        }
        p->pkts++;
        p->bytes += len - VNET_HDR_LEN;
    }
    b->r.used_idx = idx;

    /* the same buffers, back on the avail ring (in slots already used) */
    for (done = 0; done < n; done += chunk) {
        uint16_t slot = (b->r.avail_idx + done) % size;

        chunk = MIN(n - done, size - slot);
        qtest_bufwrite(b->r.qts, b->r.rx->avail + 4 + 2 * slot, ids + done,
                       2 * chunk);
    }
    b->r.avail_idx += n;
    qtest_writew(b->r.qts, b->r.rx->avail + 2, b->r.avail_idx);
    b->r.vdev->bus->virtqueue_kick(b->r.vdev, b->r.rx);
}

/* --- segments ------------------------------------------------------------- */

static void frames_setup(Bench *b)
{
    uint32_t i;

    b->hdr_len = ETH_HLEN + (opt_v6 ? 40 : 20) + 20 + (opt_ts ? 12 : 0);
    b->flows = g_new0(Flow, opt_flows);
    for (i = 0; i < opt_flows; i++) {
        b->flows[i].sport = 10000 + i;
        b->flows[i].ip_id = i * 0x100;
        b->flows[i].seq = 0x10000000u + i * 0x01000193u;
    }
    b->payload = g_malloc(opt_mss);
    for (i = 0; i < opt_mss; i++) {
        b->payload[i] = i * 7 + (i >> 8);
    }
    b->payload_sum = rsc_csum_add(0, b->payload, opt_mss);
    b->hdrs = g_malloc0(MAX_HDR * opt_batch);
    b->tsval = 1000;
}

/* The headers of the next segment of flow @f, into @p. */
static void build_header(Bench *b, Flow *f, uint8_t *p)
{
    RscSeg s = {
        .dst_mac = guest_mac, .src_mac = peer_mac, .v6 = opt_v6,
        .ttl = 64, .df = true, .ip_id = opt_v6 ? 0 : f->ip_id++,
        .sport = f->sport, .dport = 5001, .seq = f->seq, .ack = 0x50000000,
        .flags = TCP_ACK | (opt_no_psh ? 0 : TCP_PSH), .win = 502,
        .opts = rsc_seg_ts_opts, .opts_len = opt_ts ? 12 : 0,
        .tsval = b->tsval, .tsecr = 500, .plen = opt_mss,
    };

    if (opt_v6) {
        s.src_ip[0] = s.dst_ip[0] = 0xfd;       /* fd00::1 -> fd00::2 */
        s.src_ip[15] = 1;
        s.dst_ip[15] = 2;
    } else {
        stl_be_p(s.src_ip, 0x0a000001);         /* 10.0.0.1 -> 10.0.0.2 */
        stl_be_p(s.dst_ip, 0x0a000002);
    }
    g_assert(rsc_seg_put_headers(&s, p) == b->hdr_len);
    rsc_seg_put_tcp_csum(&s, p, b->payload_sum);
    f->seq += opt_mss;
}

/*
 * Inject the next @n segments, round robin over the flows.  QEMU is
 * stopped meanwhile, so that it finds the whole batch queued on its tap
 * and reads it in bursts of its own size, whatever the relative speed of
 * QEMU and this process.
 */
static void inject(Bench *b, unsigned n)
{
    static uint8_t tap_hdr[TAP_HDR_LEN];    /* no flags, no GSO */
    int fd = opt_csum_none ? b->pkt_fd : b->gro_fd;
    unsigned i;
    int status;

    if (kill(b->pid, SIGSTOP) < 0 ||
        waitpid(b->pid, &status, WUNTRACED) != b->pid ||
        !WIFSTOPPED(status)) {
        die("cannot stop QEMU (pid %d) while injecting", b->pid);
    }
    for (i = 0; i < n; i++) {
        Flow *f = &b->flows[b->next_flow++ % opt_flows];
        struct iovec iov[3] = {
            { .iov_base = tap_hdr, .iov_len = TAP_HDR_LEN },
            { .iov_base = b->hdrs[i], .iov_len = b->hdr_len },
            { .iov_base = b->payload, .iov_len = opt_mss },
        };
        ssize_t r;

        build_header(b, f, b->hdrs[i]);
        r = writev(fd, iov, 3);
        if (r != TAP_HDR_LEN + b->hdr_len + opt_mss) {
            die("injecting a %zu-byte frame: %s", b->hdr_len + opt_mss,
                r < 0 ? strerror(errno) : "short write");
        }
    }
    b->injected += n;
    if (kill(b->pid, SIGCONT) < 0) {
        die("cannot resume QEMU (pid %d): %s", b->pid, strerror(errno));
    }
}

/* Wait until QEMU has read every frame we injected. */
static void wait_read(Bench *b)
{
    gint64 deadline = g_get_monotonic_time() + WAIT_US;
    struct timespec ts = { .tv_nsec = 20000 };

    uint64_t dropped;

    while (bench_frames_read(b, &dropped) - b->read_base < b->injected) {
        if (dropped) {
            die("the kernel dropped %" PRIu64 " frames on the way to QEMU's "
                "tap (queue full?)", dropped);
        }
        if (g_get_monotonic_time() > deadline) {
            die("QEMU read %" PRIu64 " of %" PRIu64 " frames from the tap "
                "in %d s (frames lost in the kernel, or the device stopped "
                "taking them)", bench_frames_read(b, NULL) - b->read_base,
                b->injected, (int)(WAIT_US / G_USEC_PER_SEC));
        }
        nanosleep(&ts, NULL);
    }
}

/* Run @batches batches in @mode; add their measurements to @p. */
static void run_chunk(Bench *b, PassMode mode, unsigned batches, Pass *p)
{
    Pass c = { 0 };
    uint64_t cpu0, wall0;
    unsigned i;

    if (mode == PASS_DOWN) {
        set_link(b, false);
    }
    cpu0 = qemu_cpu_ns(b);
    wall0 = now_ns();
    for (i = 0; i < batches; i++) {
        if (mode != PASS_IDLE) {
            inject(b, opt_batch);
            wait_read(b);
            c.segs += opt_batch;
        }
        qtest_clock_step(b->r.qts, opt_step);
        harvest(b, &c);
        b->tsval++;
    }
    /*
     * Whatever is still held goes out at the next clock step (or after
     * the burst): every payload byte and one header per packet.
     */
    for (;;) {
        qtest_clock_step(b->r.qts, opt_step);
        harvest(b, &c);
        if (mode != PASS_LIVE ||
            c.bytes >= c.segs * opt_mss + c.pkts * b->hdr_len ||
            c.extra_rounds >= 100) {
            break;
        }
        c.extra_rounds++;
    }
    p->cpu_ns += qemu_cpu_ns(b) - cpu0;
    p->wall_ns += now_ns() - wall0;
    if (mode == PASS_DOWN) {
        set_link(b, true);
    }
    p->segs += c.segs;
    p->pkts += c.pkts;
    p->bytes += c.bytes;
    p->extra_rounds += c.extra_rounds;
    p->odd += c.odd;
}

/*
 * The physical floor of delivering @segs segments: CPU time of copying
 * each payload once, as the device must, into memory as large and as cold
 * as the guest's receive buffers (RX_RING_SIZE buffers of BIG_BUF_SIZE bytes,
 * filled in turn, one header's room left in each), from a source in the
 * cache as the frame just read from the tap is.  Measured in this process
 * in the same run as QEMU's figures.
 */
static uint64_t copy_floor_ns(Bench *b, uint64_t segs)
{
    size_t size = (size_t)RX_RING_SIZE * BIG_BUF_SIZE;
    g_autofree uint8_t *mem = g_malloc(size);
    struct timespec t0, t1;
    size_t buf = 0, off = MAX_HDR;
    uint64_t i;

    memset(mem, 0, size);   /* fault it in: the guest's memory is mapped */
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    for (i = 0; i < segs; i++) {
        if (off + opt_mss > BIG_BUF_SIZE) {
            buf = (buf + 1) % RX_RING_SIZE;
            off = MAX_HDR;
        }
        memcpy(mem + buf * BIG_BUF_SIZE + off, b->payload, opt_mss);
        off += opt_mss;
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    /* keep the copies: the compiler must not drop them */
    g_assert(mem[MAX_HDR] == b->payload[0]);
    return (t1.tv_sec - t0.tv_sec) * 1000000000ull + t1.tv_nsec - t0.tv_nsec;
}

/* The device's RSC counters (our engine only), for the log. */
static void print_rsc_stats(Bench *b)
{
    QDict *rsp = qtest_qmp(b->r.qts, "{ 'execute': 'qom-get', 'arguments': {"
                           " 'path': '/machine/peripheral/net0',"
                           " 'property': 'rsc-stats' } }");
    QDict *ret = qdict_get_qdict(rsp, "return");
    const QDictEntry *e;

    if (ret) {
        fprintf(stderr, "rsc-stats:");
        for (e = qdict_first(ret); e; e = qdict_next(ret, e)) {
            QNum *n = qobject_to(QNum, qdict_entry_value(e));
            uint64_t v;

            if (n && qnum_get_try_uint(n, &v) && v) {
                fprintf(stderr, " %s=%" PRIu64, qdict_entry_key(e), v);
            }
        }
        fprintf(stderr, "\n");
    }
    qobject_unref(rsp);
}

static void print_pass(const char *name, const Pass *p)
{
    printf(" %s_cpu_ns=%" PRIu64 " %s_wall_ns=%" PRIu64 " %s_segs=%" PRIu64
           " %s_pkts=%" PRIu64 " %s_bytes=%" PRIu64 " %s_extra=%" PRIu64
           " %s_odd=%" PRIu64, name, p->cpu_ns, name, p->wall_ns, name,
           p->segs, name, p->pkts, name, p->bytes, name, p->extra_rounds,
           name, p->odd);
}

int main(int argc, char **argv)
{
    g_autoptr(GOptionContext) ctx = g_option_context_new("- RSC benchmark");
    g_autoptr(GError) err = NULL;
    Bench b = { 0 };
    Pass warm = { 0 }, idle = { 0 }, down = { 0 }, live = { 0 };
    unsigned rounds, r, i;
    uint64_t lost;

    g_option_context_add_main_entries(ctx, entries, NULL);
    if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
        die("%s", err->message);
    }
    if (opt_flows < 1 || opt_flows > 50000 || opt_mss < 1 ||
        opt_mss > LINK_MTU - 100 || opt_batch < 1 || opt_batch > 768 ||
        opt_chunk < 1 || opt_segs < 1 || opt_step < 0) {
        die("bad arguments (flows 1..50000, mss 1..%d, batch 1..768)",
            LINK_MTU - 100);
    }
    if (opt_no_psh && !opt_csum_none) {
        die("--no-psh needs --csum-none: GRO on the bridge would merge");
    }
    if (!getenv("QTEST_QEMU_BINARY")) {
        die("set QTEST_QEMU_BINARY to the qemu-system-x86_64 to measure");
    }
    /* before anything can start a thread */
    net_setup(&b);
    frames_setup(&b);
    qemu_start(&b);
    b.read_base = bench_frames_read(&b, NULL);
    rounds = DIV_ROUND_UP(opt_segs, opt_batch * opt_chunk);

    /*
     * Rounds of one chunk of each pass, in a rotating order, so that all
     * three see the same changes in the load of the machine.
     */
    run_chunk(&b, PASS_LIVE, opt_warmup, &warm);
    for (r = 0; r < rounds; r++) {
        for (i = 0; i < 3; i++) {
            PassMode m = (r + i) % 3;

            run_chunk(&b, m, opt_chunk, m == PASS_IDLE ? &idle :
                      m == PASS_DOWN ? &down : &live);
        }
    }

    if (down.pkts) {
        die("%" PRIu64 " packets reached the guest with the link down",
            down.pkts);
    }
    lost = live.segs * opt_mss + live.pkts * b.hdr_len - live.bytes;
    print_rsc_stats(&b);
    printf("result hdr_len=%zu mss=%d flows=%d", b.hdr_len, opt_mss, opt_flows);
    print_pass("idle", &idle);
    print_pass("down", &down);
    print_pass("live", &live);
    printf(" lost_bytes=%" PRId64 " copy_ns=%" PRIu64 "\n", (int64_t)lost,
           copy_floor_ns(&b, live.segs));

    qtest_quit(b.r.qts);
    return 0;
}

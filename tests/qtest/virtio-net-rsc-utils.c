/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The fixture of the virtio-net RSC qtest (see virtio-net-rsc-utils.h)
 *
 * The guest side negotiates like the Windows netkvm driver (GUEST_CSUM,
 * CTRL_VQ, CTRL_GUEST_OFFLOADS, GUEST_TSO4/6, RSC_EXT) and enables RSC
 * with CTRL_GUEST_OFFLOADS_SET.  TCP segments are injected through a
 * socketpair (-netdev socket), so no privileges are needed, or through a
 * tap backend with vnet headers (the setup the Windows HLK uses) in a
 * private network namespace, with an AF_PACKET socket (PACKET_VNET_HDR)
 * bound to the tap, so the host kernel produces the vnet header flags and
 * GSO packets.
 *
 * Every payload byte is a function of (connection, sequence offset), so
 * any delivered packet can be mapped back to the segments it came from.
 */

#include "qemu/osdep.h"
#include <sys/ioctl.h>
#include <sched.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/if_link.h>
#include <linux/sockios.h>
#include "qemu/bswap.h"
#include "qemu/cutils.h"
#include "qobject/qnum.h"
#include "libqos/malloc-pc.h"
#include "libqos/pci-pc.h"
#include "standard-headers/linux/virtio_ids.h"
#include "standard-headers/linux/virtio_ring.h"
#include "virtio-net-rsc-utils.h"

const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
const uint8_t peer_mac[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc };

char *tap_unavailable;
int gro_fd = -1;
char *gro_unavailable;

void rsc_fail_at(const char *file, int line, const char *func,
                 const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_assertion_message(G_LOG_DOMAIN, file, line, func, msg);
    abort();
}

/* --- frames ---------------------------------------------------------- */

static Frame *frame_new(RscTest *t, size_t len, int conn)
{
    Frame *f = g_new0(Frame, 1);

    f->data = g_malloc0(len);
    f->len = len;
    f->conn = conn;
    f->id = t->frames->len;
    g_ptr_array_add(t->frames, f);
    return f;
}

static void frame_free(gpointer p)
{
    Frame *f = p;

    g_free(f->data);
    g_free(f);
}

/* A frame that is not a TCP segment of a test connection. */
Frame *raw_frame(RscTest *t, const void *data, size_t len)
{
    Frame *f = frame_new(t, len, -1);

    if (len) {
        memcpy(f->data, data, len);
    }
    return f;
}

/* Offset of the timestamp values in TCP options @o/@len, or -1. */

Conn *conn_new(RscTest *t, bool v6)
{
    static const uint8_t ts_opts[] = { 1, 1, 8, 10 };
    Conn *c = g_new0(Conn, 1);

    c->idx = t->conns->len;
    c->v6 = v6;
    c->src_host = 1;
    c->sport = 40000 + c->idx;
    c->dport = 5001;
    c->isn = 0x10000000u * (c->idx % 15 + 1) + 0x1234 * c->idx + 77;
    c->ack = 0x50000000u + 0x100 * c->idx;
    c->win = 502;
    c->flags = TCP_ACK;
    c->ttl = 64;
    c->df = true;
    c->ip_id = 0x100 * c->idx + 1;
    c->tsval = 1000 + c->idx;
    c->tsecr = 500;
    memcpy(c->opts, ts_opts, sizeof(ts_opts));
    c->opts_len = 12;
    g_ptr_array_add(t->conns, c);
    return c;
}

/* Use TCP options @opts/@len for the next segments of @c. */
void conn_set_opts(Conn *c, const uint8_t *opts, size_t len)
{
    g_assert_cmpuint(len, <=, sizeof(c->opts));
    g_assert_cmpuint(len % 4, ==, 0);
    memset(c->opts, 0, sizeof(c->opts));
    if (len) {
        memcpy(c->opts, opts, len);
    }
    c->opts_len = len;
}

/* The source and destination addresses of @c (IPv4: the first 4 bytes). */
void conn_addrs(const Conn *c, uint8_t *src, uint8_t *dst)
{
    memset(src, 0, 16);
    memset(dst, 0, 16);
    if (c->v6) {
        src[0] = dst[0] = 0xfd;
        src[14] = c->src_host >> 8;
        src[15] = c->src_host;
        dst[15] = 2;
    } else {
        src[0] = dst[0] = 10;
        src[2] = c->src_host >> 8;
        src[3] = c->src_host;
        dst[3] = 2;
    }
}

/* The segment of @c at sequence offset @off with @plen bytes, described. */
static void conn_seg(Conn *c, uint32_t off, uint32_t plen, RscSeg *s)
{
    *s = (RscSeg) {
        .dst_mac = guest_mac, .src_mac = peer_mac,
        .vlan = c->vlan, .vlan_tci = 5,
        .v6 = c->v6, .tos = c->tos, .ttl = c->ttl, .flow = c->flow,
        .df = c->df, .frag = c->frag,
        .ip_id = c->v6 ? 0 : c->ip_id_fixed ? c->ip_id : c->ip_id++,
        .ip_opts_len = c->ip_opts_len, .hbh = c->hbh,
        .sport = c->sport, .dport = c->dport,
        .seq = c->isn + off, .ack = c->ack, .flags = c->flags, .ns = c->ns,
        .win = c->win, .urg = c->urg,
        .opts = c->opts, .opts_len = c->opts_len,
        .tsval = c->tsval, .tsecr = c->tsecr, .doff = c->doff,
        .plen = plen, .stream = c->idx, .pay_off = off,
        .trailer = c->trailer, .trailer_byte = 0xee,
        .ip_csum_xor = c->bad_ip_csum ? 0x5a : 0,
        .tcp_csum_xor = c->bad_tcp_csum ? 0x33 : 0,
    };
    conn_addrs(c, s->src_ip, s->dst_ip);
}

/* Build the TCP segment of @c at sequence offset @off with @plen bytes. */
Frame *tcp_frame(RscTest *t, Conn *c, uint32_t off, uint32_t plen)
{
    RscSeg s;
    Frame *f;

    conn_seg(c, off, plen, &s);
    f = frame_new(t, rsc_seg_len(&s) + c->ext_len, c->idx);
    rsc_seg_build(&s, f->data);
    f->tcp = true;
    f->off = off;
    f->seq = s.seq;
    f->plen = plen;
    f->l3 = rsc_seg_l3(&s);
    f->l4 = f->l3 + rsc_seg_ip_hlen(&s);
    f->hdr_len = rsc_seg_hdr_len(&s);
    if (c->ext_len) {
        /* insert the extension headers: the TCP checksum stays right */
        uint8_t *ip = f->data + f->l3;
        size_t at = f->l4 - f->l3;

        g_assert(c->v6);
        memmove(ip + at + c->ext_len, ip + at, f->len - c->ext_len - f->l4);
        memcpy(ip + at, c->ext, c->ext_len);
        if (c->hbh) {
            ip[RSC_SEG_IP6_HLEN] = c->ext_nh;
        } else {
            ip[6] = c->ext_nh;
        }
        stw_be_p(ip + 4, lduw_be_p(ip + 4) + c->ext_len);
        f->l4 += c->ext_len;
        f->hdr_len += c->ext_len;
    }
    return f;
}

/* The next in-sequence segment of @c with @plen payload bytes. */
Frame *seg(RscTest *t, Conn *c, uint32_t plen)
{
    Frame *f = tcp_frame(t, c, c->next_off, plen);

    c->next_off += plen;
    return f;
}

/* @n in-sequence segments of @c, @plen bytes each, stored in @f. */
void segs(RscTest *t, Conn *c, Frame **f, unsigned n, uint32_t plen)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        f[i] = seg(t, c, plen);
    }
}

/* --- describing packets -------------------------------------------- */

/* Which header field byte @off of a TCP/IP frame like @ref belongs to. */
static const char *field_name(const Frame *ref, size_t off)
{
    bool v6 = ref->data[ref->l3 - 2] == 0x86;
    size_t o;

    if (off < ref->l3) {
        return "Ethernet header";
    }
    if (off < ref->l4) {
        o = off - ref->l3;
        if (v6) {
            return o < 4 ? "IPv6 version/traffic class/flow label" :
                   o < 6 ? "IPv6 payload length" :
                   o < 7 ? "IPv6 next header" :
                   o < 8 ? "IPv6 hop limit" :
                   o < 40 ? "IPv6 address" : "IPv6 extension header";
        }
        return o < 1 ? "IPv4 version/IHL" : o < 2 ? "IPv4 TOS/ECN" :
               o < 4 ? "IPv4 total length" : o < 6 ? "IPv4 ID" :
               o < 8 ? "IPv4 flags/fragment offset" : o < 9 ? "IPv4 TTL" :
               o < 10 ? "IPv4 protocol" : o < 12 ? "IPv4 header checksum" :
               o < 20 ? "IPv4 address" : "IPv4 options";
    }
    if (off < ref->hdr_len) {
        o = off - ref->l4;
        return o < 4 ? "TCP ports" : o < 8 ? "TCP sequence number" :
               o < 12 ? "TCP acknowledgment number" :
               o < 13 ? "TCP data offset/NS" : o < 14 ? "TCP flags" :
               o < 16 ? "TCP window" : o < 18 ? "TCP checksum" :
               o < 20 ? "TCP urgent pointer" : "TCP options (timestamps)";
    }
    return "payload";
}

/* A one-line summary of an Ethernet frame. */
char *describe_frame(RscTest *t, const uint8_t *p, size_t len)
{
    size_t l3 = ETH_HLEN, l4;
    uint16_t type;
    bool v6;
    unsigned i;

    if (len < ETH_HLEN) {
        return g_strdup_printf("%zu-byte runt", len);
    }
    type = lduw_be_p(p + 12);
    if (type == ETH_P_8021Q && len >= 18) {
        type = lduw_be_p(p + 16);
        l3 = 18;
    }
    v6 = type == ETH_P_IPV6;
    if (type != ETH_P_IP && !v6) {
        return g_strdup_printf("%zu-byte frame of ethertype 0x%04x", len,
                               type);
    }
    if (len < l3 + (v6 ? IP6_HLEN : IP4_HLEN)) {
        return g_strdup_printf("%zu-byte IPv%d frame, not a whole IP header",
                               len, v6 ? 6 : 4);
    }
    l4 = v6 ? l3 + IP6_HLEN : l3 + (p[l3] & 0xf) * 4;
    if (len < l4 + TCP_HLEN || p[v6 ? l3 + 6 : l3 + 9] != 6) {
        return g_strdup_printf("%zu-byte IPv%d frame, not a whole TCP "
                               "header", len, v6 ? 6 : 4);
    }
    for (i = 0; i < t->conns->len; i++) {
        Conn *c = g_ptr_array_index(t->conns, i);

        if (c->v6 == v6 && c->sport == lduw_be_p(p + l4)) {
            size_t hl = l4 + (p[l4 + 12] >> 4) * 4;

            return g_strdup_printf(
                "%zu-byte frame of conn %u (IPv%d), seq offset %u, "
                "payload %zd, TCP flags 0x%02x", len, c->idx, v6 ? 6 : 4,
                ldl_be_p(p + l4 + 4) - c->isn,
                (ssize_t)len - (ssize_t)hl, p[l4 + 13]);
        }
    }
    return g_strdup_printf("%zu-byte IPv%d TCP frame, ports %u->%u", len,
                           v6 ? 6 : 4, lduw_be_p(p + l4),
                           lduw_be_p(p + l4 + 2));
}

static char *describe_expect(const Expect *e)
{
    Frame *a = g_ptr_array_index(e->segs, 0);
    Frame *b = g_ptr_array_index(e->segs, e->segs->len - 1);

    if (!e->coalesced) {
        return g_strdup_printf("frame #%u (conn %d, seq offset %u, payload "
                               "%u) untouched", a->id, a->conn, a->off,
                               a->plen);
    }
    return g_strdup_printf("unit of conn %d from %u frames #%u..#%u (seq "
                           "offsets %u..%u)", e->conn, e->segs->len, a->id,
                           b->id, a->off, b->off + b->plen);
}

void hexdump(const char *what, const uint8_t *p, size_t len)
{
    g_autoptr(GString) s = g_string_new(NULL);
    size_t i;

    for (i = 0; i < len && i < 128; i++) {
        g_string_append_printf(s, "%s%02x", i % 16 ? " " : "\n  ", p[i]);
    }
    g_test_message("%s (%zu bytes):%s", what, len, s->str);
}

/* --- the tap backend ----------------------------------------------------- */

static bool write_file(const char *path, const char *text, char **err)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t r = -1;

    if (fd >= 0) {
        r = write(fd, text, strlen(text));
        close(fd);
    }
    if (r != strlen(text)) {
        *err = g_strdup_printf("writing '%s' to %s: %s", text, path,
                               strerror(errno));
        return false;
    }
    return true;
}

/*
 * Set @name up without IFF_MULTICAST (no IGMP reports reach the guest)
 * and, if @bridge, make it a port of the bridge.
 */
static bool link_up(const char *name, bool bridge, char **err)
{
    struct ifreq ifr = { 0 };
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    bool ok;

    pstrcpy(ifr.ifr_name, IFNAMSIZ, name);
    ifr.ifr_mtu = 9000;
    ok = s >= 0 && ioctl(s, SIOCSIFMTU, &ifr) == 0 &&
         ioctl(s, SIOCGIFFLAGS, &ifr) == 0;
    ifr.ifr_flags = (ifr.ifr_flags | IFF_UP) & ~IFF_MULTICAST;
    ok = ok && ioctl(s, SIOCSIFFLAGS, &ifr) == 0;
    if (ok && bridge) {
        ifr.ifr_ifindex = if_nametoindex(name);
        pstrcpy(ifr.ifr_name, IFNAMSIZ, "rscbr0");
        ok = ioctl(s, SIOCBRADDIF, &ifr) == 0;
    }
    if (!ok) {
        *err = g_strdup_printf("configuring %s: %s", name, strerror(errno));
    }
    if (s >= 0) {
        close(s);
    }
    return ok;
}

/*
 * Create a tap with vnet headers and @n queues (IFF_MULTI_QUEUE when
 * more than one, their fds in @fds, inherited by QEMU), up, with no IPv6
 * chatter, and an AF_PACKET socket (PACKET_VNET_HDR) bound to it in
 * *@pkt.  False with *@err set when the kernel refuses.
 */
static bool tap_open(unsigned n, int *fds, int *pkt, char *ifname,
                     char **err)
{
    struct ifreq ifr = { 0 };
    struct sockaddr_ll sll = { .sll_family = AF_PACKET };
    unsigned i;
    int one = 1;

    *pkt = -1;
    for (i = 0; i < n; i++) {
        fds[i] = -1;
    }
    for (i = 0; i < n; i++) {
        fds[i] = open("/dev/net/tun", O_RDWR);
        if (fds[i] < 0) {
            *err = g_strdup_printf("open /dev/net/tun: %s", strerror(errno));
            goto fail;
        }
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR |
                        (n > 1 ? IFF_MULTI_QUEUE : 0);
        pstrcpy(ifr.ifr_name, IFNAMSIZ, i ? ifname : "rsc%d");
        if (ioctl(fds[i], TUNSETIFF, &ifr) < 0) {
            *err = g_strdup_printf("TUNSETIFF%s: %s",
                                   n > 1 ? " with IFF_MULTI_QUEUE" : "",
                                   strerror(errno));
            goto fail;
        }
        pstrcpy(ifname, IFNAMSIZ, ifr.ifr_name);
    }
    if (!link_up(ifname, gro_fd >= 0, err)) {
        goto fail;
    }
    *pkt = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    sll.sll_ifindex = if_nametoindex(ifname);
    if (*pkt < 0 ||
        setsockopt(*pkt, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) ||
        bind(*pkt, (struct sockaddr *)&sll, sizeof(sll))) {
        *err = g_strdup_printf("AF_PACKET socket with PACKET_VNET_HDR on "
                               "%s: %s", ifname, strerror(errno));
        goto fail;
    }
    return true;

fail:
    if (*pkt >= 0) {
        close(*pkt);
        *pkt = -1;
    }
    for (i = 0; i < n; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
    return false;
}

/*
 * Append "-netdev tap" with @n new queues of @t's multi-queue tap to
 * @args, their fds in @fds (closed by the caller once QEMU runs).
 */
static void tap_attach(RscTest *t, unsigned n, int *fds, GString *args)
{
    struct ifreq ifr = { 0 };
    unsigned i;

    g_string_append(args, "-netdev tap,id=n0,vhost=off,fds=");
    for (i = 0; i < n; i++) {
        fds[i] = open("/dev/net/tun", O_RDWR);
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE;
        pstrcpy(ifr.ifr_name, IFNAMSIZ, t->ifname);
        if (fds[i] < 0 || ioctl(fds[i], TUNSETIFF, &ifr) < 0) {
            rsc_fail("attaching queue %u to %s: %s", i, t->ifname,
                     strerror(errno));
        }
        g_string_append_printf(args, "%s%d", i ? ":" : "", fds[i]);
    }
    g_string_append_c(args, ' ');
}

/* Create the bridge and the NAPI tap of the DATA_VALID path. */
static void gro_setup(void)
{
    struct ifreq ifr = { 0 };
    char *err = NULL;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);

    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_NAPI;
    pstrcpy(ifr.ifr_name, IFNAMSIZ, "rscgro0");
    if (s < 0 || fd < 0 || ioctl(s, SIOCBRADDBR, "rscbr0") < 0 ||
        ioctl(fd, TUNSETIFF, &ifr) < 0) {
        gro_unavailable = g_strdup_printf("the kernel refused a bridge or "
                                          "a NAPI tap: %s", strerror(errno));
    } else if (!link_up("rscbr0", false, &err) ||
               !link_up("rscgro0", true, &err)) {
        gro_unavailable = err;
    }
    if (s >= 0) {
        close(s);
    }
    if (gro_unavailable) {
        if (fd >= 0) {
            close(fd);
        }
        return;
    }
    gro_fd = fd;
}

/*
 * Enter a private network namespace (and a user namespace when not root)
 * for the tap tests.  Must run before any thread exists.  On failure,
 * tap_unavailable says why.
 */
void tap_netns_setup(void)
{
    uid_t uid = geteuid();
    gid_t gid = getegid();
    char ifname[IFNAMSIZ];
    char *err = NULL;
    int pkt, fds[RSC_MAX_PAIRS];
    unsigned i;

    if (getenv("RSC_TEST_NO_TAP")) {
        tap_unavailable = g_strdup("RSC_TEST_NO_TAP is set");
        return;
    }
    if (unshare(CLONE_NEWNET | (uid ? CLONE_NEWUSER : 0)) < 0) {
        tap_unavailable = g_strdup_printf("the kernel refused a private "
                                          "network namespace: unshare(%s):"
                                          " %s", uid ? "CLONE_NEWUSER | "
                                          "CLONE_NEWNET" : "CLONE_NEWNET",
                                          strerror(errno));
        return;
    }
    if (uid) {
        g_autofree char *umap = g_strdup_printf("0 %u 1", uid);
        g_autofree char *gmap = g_strdup_printf("0 %u 1", gid);

        if (!write_file("/proc/self/setgroups", "deny", &err) ||
            !write_file("/proc/self/uid_map", umap, &err) ||
            !write_file("/proc/self/gid_map", gmap, &err)) {
            tap_unavailable = err;
            return;
        }
    }
    /* no IPv6 autoconfiguration traffic on the links we create */
    write_file("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1", &err);
    g_clear_pointer(&err, g_free);
    write_file("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1", &err);
    g_clear_pointer(&err, g_free);
    /* nor the IGMP report of the bridge joining 224.0.0.106 */
    write_file("/proc/sys/net/ipv4/igmp_link_local_mcast_reports", "0", &err);
    g_clear_pointer(&err, g_free);
    if (!tap_open(RSC_MAX_PAIRS, fds, &pkt, ifname, &err)) {
        tap_unavailable = g_strdup_printf("the kernel refused a multi-queue "
                                          "tap in a private network "
                                          "namespace: %s", err);
        g_free(err);
        return;
    }
    close(pkt);
    for (i = 0; i < RSC_MAX_PAIRS; i++) {
        close(fds[i]);
    }
    gro_setup();
}

/* --- the device and the guest driver -------------------------------- */

static void rx_post(RscTest *t, uint16_t desc)
{
    uint16_t le = cpu_to_le16(desc);
    uint16_t slot = t->avail_idx % t->rx->size;

    qtest_memwrite(t->qts, t->rx->avail + 4 + 2 * slot, &le, 2);
    t->avail_idx++;
    le = cpu_to_le16(t->avail_idx);
    qtest_memwrite(t->qts, t->rx->avail + 2, &le, 2);
}

void rx_kick(RscTest *t)
{
    t->vdev->bus->virtqueue_kick(t->vdev, t->rx);
}

/* Fill the rx descriptor table and post the first @n buffers. */
static void rx_setup(RscTest *t, unsigned n)
{
    uint32_t size = t->rx->size;
    g_autofree uint8_t *desc = g_malloc0(size * 16);
    g_autofree uint16_t *ring = g_new0(uint16_t, size);
    uint16_t le;
    uint32_t i;

    t->bufs_base = guest_alloc(&t->alloc, (uint64_t)size * t->buf_size);
    for (i = 0; i < size; i++) {
        stq_le_p(desc + 16 * i, t->bufs_base + (uint64_t)i * t->buf_size);
        stl_le_p(desc + 16 * i + 8, t->buf_size);
        stw_le_p(desc + 16 * i + 12, VRING_DESC_F_WRITE);
        ring[i] = cpu_to_le16(i);
    }
    qtest_bufwrite(t->qts, t->rx->desc, desc, size * 16);
    g_assert_cmpuint(n, <=, size);
    qtest_bufwrite(t->qts, t->rx->avail + 4, ring, n * 2);
    t->avail_idx = n;
    t->used_idx = 0;
    le = cpu_to_le16(n);
    qtest_memwrite(t->qts, t->rx->avail + 2, &le, 2);
    rx_kick(t);
}

/* Wait for a used element on @vq and return its index. */
uint16_t used_idx(RscTest *t, QVirtQueue *vq)
{
    uint16_t le;

    qtest_memread(t->qts, vq->used + 2, &le, 2);
    return le16_to_cpu(le);
}

/* Send CTRL_GUEST_OFFLOADS_SET with @offloads; returns the ack byte. */
uint8_t ctrl_offloads(RscTest *t, uint64_t offloads)
{
    uint8_t cmd[10] = { VIRTIO_NET_CTRL_GUEST_OFFLOADS,
                        VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET };
    uint16_t before = used_idx(t, t->ctrl);
    gint64 deadline = g_get_monotonic_time() + RSC_TIMEOUT_US;
    uint32_t head;

    stq_le_p(cmd + 2, offloads);
    qtest_memwrite(t->qts, t->ctrl_buf, cmd, sizeof(cmd));
    qtest_writeb(t->qts, t->ctrl_buf + 16, 0xff);
    head = qvirtqueue_add(t->qts, t->ctrl, t->ctrl_buf, sizeof(cmd),
                          false, true);
    qvirtqueue_add(t->qts, t->ctrl, t->ctrl_buf + 16, 1, true, false);
    qvirtqueue_kick(t->qts, t->vdev, t->ctrl, head);
    while (used_idx(t, t->ctrl) == before) {
        if (g_get_monotonic_time() > deadline) {
            rsc_fail("no answer to CTRL_GUEST_OFFLOADS_SET 0x%" PRIx64,
                     offloads);
        }
    }
    t->ctrl->last_used_idx++;
    return qtest_readb(t->qts, t->ctrl_buf + 16);
}

/* Negotiate, set up the queues and post the receive buffers. */
void rsc_driver_init(RscTest *t)
{
    uint64_t host, want;

    qvirtio_start_device(t->vdev);
    host = qvirtio_get_features(t->vdev);
    want = RSC_FEATURES;
    if (t->opts.mergeable) {
        want |= BIT(VIRTIO_NET_F_MRG_RXBUF);
    }
    if (t->opts.no_rsc_ext) {
        want &= ~BIT(VIRTIO_NET_F_RSC_EXT);
    }
    want &= ~t->opts.drop_features;
    if (t->opts.ack_offered) {
        want &= host;
    }
    if ((host & want) != want) {
        rsc_fail("device offers features 0x%016" PRIx64 ", the test needs "
                 "0x%016" PRIx64 " (missing 0x%016" PRIx64 ")", host, want,
                 want & ~host);
    }
    qvirtio_set_features(t->vdev, want);
    t->features = want;
    t->rx = qvirtqueue_setup(t->vdev, &t->alloc, 0);
    t->tx = qvirtqueue_setup(t->vdev, &t->alloc, 1);
    t->ctrl = qvirtqueue_setup(t->vdev, &t->alloc, 2);
    qvirtio_set_driver_ok(t->vdev);
    rx_setup(t, t->opts.nbufs ? t->opts.nbufs : t->rx->size);
}

/* Append the machine and device options of @opts to @args. */
void rsc_machine_args(GString *args, const RscOpts *opts)
{
    g_string_append_printf(args, "-M pc -m 512 -nodefaults "
                           "-device virtio-net-pci,netdev=n0,id=net0,"
                           "addr=%d.0,disable-legacy=on,romfile=,"
                           "rx_queue_size=%u,mrg_rxbuf=%s",
                           RSC_PCI_SLOT,
                           opts->ring_size ? opts->ring_size : RX_RING_SIZE,
                           opts->mergeable ? "on" : "off");
    if (opts->rss) {
        g_string_append_printf(args, ",mq=on,rss=on,hash=on,vectors=%u",
                               2 * MAX(opts->pairs, 1) + 2);
    }
    if (opts->packed) {
        g_string_append(args, ",packed=on");
    }
    if (opts->in_order) {
        g_string_append(args, ",in_order=on");
    }
    if (opts->device) {
        g_string_append_printf(args, ",%s", opts->device);
    }
    if (opts->args) {
        g_string_append_printf(args, " %s", opts->args);
    }
    if (!opts->no_offer_rsc_ext) {
        g_string_append(args, ",guest_rsc_ext=on");
    }
    if (opts->rsc_gro) {
        g_string_append(args, ",rsc_gro=on");
    }
    if (!opts->default_interval) {
        g_string_append_printf(args, ",rsc_interval=%u", opts->interval);
    }
    if (opts->max_flows) {
        g_string_append_printf(args, ",rsc_max_flows=%u", opts->max_flows);
    }
}

/*
 * Start QEMU with the backend and the device of @o, into @t (zeroed),
 * up to the driver's first step: the device is found and enabled.
 */
void rsc_launch(RscTest *t, const RscOpts *o)
{
    g_autoptr(GString) args = g_string_new(NULL);
    QPCIAddress addr = { .devfn = QPCI_DEVFN(RSC_PCI_SLOT, 0) };
    const RscOpts *opts = &t->opts;
    unsigned i, nfds = 0, pairs = MAX(o->pairs, 1);
    int sv[2], fds[RSC_MAX_PAIRS];

    t->opts = *o;
    if (o->burst) {
        t->opts.interval = 0;
    } else if (!o->interval) {
        t->opts.interval = RSC_INTERVAL;
    }
    t->frames = g_ptr_array_new_with_free_func(frame_free);
    t->conns = g_ptr_array_new_with_free_func(g_free);
    g_queue_init(&t->expect);
    t->repost = true;
    t->hdr_len = VNET_HDR_LEN;
    t->buf_size = opts->buf_size ? opts->buf_size :
                  opts->mergeable ? MRG_BUF_SIZE : BIG_BUF_SIZE;
    g_assert_cmpuint(pairs, <=, RSC_MAX_PAIRS);

    if (opts->netdev) {
        t->sock = t->pkt = -1;
        g_string_append_printf(args, "-netdev %s ", opts->netdev);
    } else if (opts->tap) {
        g_autofree char *err = NULL;

        if (!tap_open(pairs, fds, &t->pkt, t->ifname, &err)) {
            rsc_fail("tap backend: %s", err);
        }
        t->sock = -1;
        nfds = pairs;
        g_string_append(args, "-netdev tap,id=n0,vhost=off,");
        g_string_append(args, pairs > 1 ? "fds=" : "fd=");
        for (i = 0; i < pairs; i++) {
            g_string_append_printf(args, "%s%d", i ? ":" : "", fds[i]);
        }
        g_string_append_c(args, ' ');
    } else {
        /* one queue pair: QEMU's socket backend has one */
        g_assert_cmpuint(pairs, ==, 1);
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
        t->sock = sv[0];
        t->pkt = -1;
        fds[0] = sv[1];
        nfds = 1;
        g_string_append_printf(args, "-netdev socket,fd=%d,id=n0 ", sv[1]);
    }
    rsc_machine_args(args, opts);
    t->qts = qtest_init(args->str);
    for (i = 0; i < nfds; i++) {
        close(fds[i]);
    }

    pc_alloc_init(&t->alloc, t->qts, 0);
    t->bus = qpci_new_pc(t->qts, &t->alloc);
    t->vpci = virtio_pci_new(t->bus, &addr);
    g_assert_nonnull(t->vpci);
    t->vdev = &t->vpci->vdev;
    g_assert_cmpuint(t->vdev->device_type, ==, VIRTIO_ID_NET);
    qvirtio_pci_device_enable(t->vpci);
    t->ctrl_buf = guest_alloc(&t->alloc, 2048);
}

/*
 * Start QEMU with the device of @o, negotiate like netkvm and post the
 * receive buffers, into @t (zeroed).
 */
void rsc_init(RscTest *t, const RscOpts *o)
{
    const RscOpts *opts = &t->opts;

    rsc_launch(t, o);
    rsc_driver_init(t);

    if (!opts->no_rsc_ext) {
        g_assert_cmpuint(ctrl_offloads(t, RSC_OFFLOADS), ==, VIRTIO_NET_OK);
    }
}

RscTest *rsc_start(const RscOpts *opts)
{
    RscTest *t = g_new0(RscTest, 1);

    rsc_init(t, opts);
    return t;
}

static void expect_free(gpointer p)
{
    Expect *e = p;

    g_ptr_array_unref(e->segs);
    g_free(e);
}

/* Check that every expected packet came, and stop QEMU. */
void rsc_fini(RscTest *t)
{
    if (!g_queue_is_empty(&t->expect)) {
        g_autofree char *d = describe_expect(g_queue_peek_head(&t->expect));

        rsc_fail("test ended with %u expected packets not checked, first: "
                 "%s", g_queue_get_length(&t->expect), d);
    }
    qtest_quit(t->qts);
    qvirtio_pci_device_disable(t->vpci);
    g_free(t->vpci->pdev);
    g_free(t->vpci);
    qpci_free_pc(t->bus);
    alloc_destroy(&t->alloc);
    if (t->sock >= 0) {
        close(t->sock);
    }
    if (t->pkt >= 0) {
        close(t->pkt);
    }
    g_ptr_array_unref(t->frames);
    g_ptr_array_unref(t->conns);
    g_free(t->waiting);
}

void rsc_end(RscTest *t)
{
    rsc_fini(t);
    g_free(t);
}

/* --- sending --------------------------------------------------------- */

/* Write @n frames to the backend in one write(): one receive burst. */
void send_frames(RscTest *t, Frame **f, unsigned n)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    unsigned i;
    size_t done = 0;

    t->nsent += n;
    if (t->pkt >= 0) {
        for (i = 0; i < n; i++) {
            struct iovec iov[2] = {
                { .iov_base = f[i]->tx_vhdr, .iov_len = 10 },
                { .iov_base = f[i]->data, .iov_len = f[i]->len },
            };
            ssize_t r = writev(f[i]->via_gro ? gro_fd : t->pkt, iov, 2);

            if (r != 10 + f[i]->len) {
                rsc_fail("injecting frame #%u (%zu bytes) into the tap: %s",
                         f[i]->id, f[i]->len, strerror(errno));
            }
        }
        return;
    }
    for (i = 0; i < n; i++) {
        uint8_t len[4];

        stl_be_p(len, f[i]->len);
        g_byte_array_append(b, len, 4);
        g_byte_array_append(b, f[i]->data, f[i]->len);
    }
    while (done < b->len) {
        ssize_t r = send(t->sock, b->data + done, b->len - done,
                         MSG_NOSIGNAL);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            rsc_fail("writing %u frames to the socket backend: %s", n,
                     strerror(errno));
        }
        done += r;
    }
}

void send1(RscTest *t, Frame *f)
{
    send_frames(t, &f, 1);
}

/*
 * Wait until QEMU has read everything we wrote to the socket.  The socket
 * backend processes what it reads in the same main loop callback, so one
 * more qtest round trip afterwards means the frames reached the device
 * (or its queue, when the guest has no buffer).
 */
/* Frames QEMU has read from the tap: tun counts them as transmitted. */
uint64_t tap_frames_read(RscTest *t)
{
    struct ifaddrs *ifa, *i;
    uint64_t n = 0;

    g_assert_cmpint(getifaddrs(&ifa), ==, 0);
    for (i = ifa; i; i = i->ifa_next) {
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_PACKET &&
            i->ifa_data && !strcmp(i->ifa_name, t->ifname)) {
            n = ((struct rtnl_link_stats *)i->ifa_data)->tx_packets;
        }
    }
    freeifaddrs(ifa);
    return n;
}

void backend_sync(RscTest *t)
{
    gint64 deadline = g_get_monotonic_time() + RSC_TIMEOUT_US;
    int outq;

    while (t->pkt >= 0 && tap_frames_read(t) < t->nsent) {
        if (g_get_monotonic_time() > deadline) {
            rsc_fail("QEMU read %" PRIu64 " of %u frames from the tap",
                     tap_frames_read(t), t->nsent);
        }
        qtest_readb(t->qts, t->ctrl_buf);
    }
    if (t->pkt >= 0) {
        qtest_readb(t->qts, t->ctrl_buf);
        return;
    }

    for (;;) {
        g_assert_cmpint(ioctl(t->sock, SIOCOUTQ, &outq), ==, 0);
        if (outq == 0) {
            break;
        }
        if (g_get_monotonic_time() > deadline) {
            rsc_fail("QEMU did not read %d bytes from the socket", outq);
        }
        qtest_readb(t->qts, t->ctrl_buf);
    }
    qtest_readb(t->qts, t->ctrl_buf);
}

void clock_step(RscTest *t, int64_t ns)
{
    backend_sync(t);
    qtest_clock_step(t->qts, ns);
}

/* --- migration ------------------------------------------------------ */

/*
 * Start a QEMU with the same machine and devices as @t and a new
 * socketpair backend, and migrate @t's VM to it.  Returns while the
 * migration runs: what the source's backend is given from now on may or
 * may not reach the device before the VM stops.
 */
void rsc_migrate_start(RscTest *t, RscMigration *m)
{
    g_autoptr(GString) args = g_string_new(NULL);
    unsigned i, n = 1;
    int sv[2], fds[RSC_MAX_PAIRS];

    m->dir = g_dir_make_tmp("virtio-net-rsc-XXXXXX", NULL);
    g_assert_nonnull(m->dir);
    m->uri = g_strdup_printf("unix:%s/migration", m->dir);
    if (t->opts.tap) {
        /* new queues of the same tap: only a multi-queue tap has them */
        n = t->opts.pairs;
        g_assert_cmpuint(n, >, 1);
        m->sock = -1;
        tap_attach(t, n, fds, args);
    } else {
        g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
        m->sock = sv[0];
        fds[0] = sv[1];
        g_string_append_printf(args, "-netdev socket,fd=%d,id=n0 ", sv[1]);
    }
    rsc_machine_args(args, &t->opts);
    g_string_append(args, " -incoming defer");
    m->dst = qtest_init(args->str);
    for (i = 0; i < n; i++) {
        close(fds[i]);
    }

    qtest_qmp_assert_success(m->dst, "{ 'execute': 'migrate-incoming',"
                             " 'arguments': { 'uri': %s } }", m->uri);
    qtest_qmp_assert_success(t->qts, "{ 'execute': 'migrate-set-capabilities',"
                             " 'arguments': { 'capabilities': [ {"
                             " 'capability': 'events', 'state': true } ] } }");
    qtest_qmp_assert_success(t->qts, "{ 'execute': 'migrate',"
                             " 'arguments': { 'uri': %s } }", m->uri);
}

/*
 * Wait until the migration has completed and the destination runs; from
 * then on @t drives the destination.  Returns the source's rsc-stats as
 * they were at the end.
 */
QDict *rsc_migrate_finish(RscTest *t, RscMigration *m)
{
    g_autofree char *path = g_strdup_printf("%s/migration", m->dir);
    QDict *stats;

    for (;;) {
        QDict *ev = qtest_qmp_eventwait_ref(t->qts, "MIGRATION");
        const char *status = qdict_get_str(qdict_get_qdict(ev, "data"),
                                           "status");

        if (!strcmp(status, "failed") || !strcmp(status, "cancelled")) {
            rsc_fail("migration %s", status);
        }
        if (!strcmp(status, "completed")) {
            qobject_unref(ev);
            break;
        }
        qobject_unref(ev);
    }
    qtest_qmp_eventwait(m->dst, "RESUME");
    stats = rsc_stats(t);

    qtest_quit(t->qts);
    t->qts = m->dst;
    t->bus->qts = m->dst;
    if (m->sock >= 0) {
        close(t->sock);
        t->sock = m->sock;
        t->nsent = 0;
    }
    unlink(path);
    rmdir(m->dir);
    g_free(m->dir);
    g_free(m->uri);
    return stats;
}

/* Migrate @t's VM to a new QEMU (see rsc_migrate_start/finish). */
QDict *rsc_migrate(RscTest *t)
{
    RscMigration m;

    rsc_migrate_start(t, &m);
    return rsc_migrate_finish(t, &m);
}

/* --- counters ---------------------------------------------------------- */

QDict *rsc_stats(RscTest *t)
{
    QDict *rsp, *ret;

    rsp = qtest_qmp(t->qts, "{ 'execute': 'qom-get', 'arguments': {"
                    " 'path': '/machine/peripheral/net0',"
                    " 'property': 'rsc-stats' } }");
    if (qdict_haskey(rsp, "error")) {
        QDict *err = qdict_get_qdict(rsp, "error");

        rsc_fail("qom-get net0 rsc-stats failed: %s",
                 qdict_get_try_str(err, "desc"));
    }
    ret = qdict_get_qdict(rsp, "return");
    g_assert_nonnull(ret);
    qobject_ref(ret);
    qobject_unref(rsp);
    return ret;
}

uint64_t stats_get(QDict *s, const char *name)
{
    QNum *n = qobject_to(QNum, qdict_get(s, name));
    uint64_t v;

    if (!n || !qnum_get_try_uint(n, &v)) {
        rsc_fail("rsc-stats has no uint64 counter '%s'", name);
    }
    return v;
}

uint64_t rsc_stat(RscTest *t, const char *name)
{
    g_autoptr(QDict) s = NULL;

    backend_sync(t);
    s = rsc_stats(t);
    return stats_get(s, name);
}

/* --- receiving --------------------------------------------------------- */

void rx_packet_free(RxPacket *p)
{
    g_free(p->data);
    p->data = NULL;
}

bool rx_ready(RscTest *t)
{
    return used_idx(t, t->rx) != t->used_idx;
}

/* Pop one used element (waiting up to the timeout): its id and length. */
static void rx_pop_elem(RscTest *t, uint32_t *id, uint32_t *len)
{
    gint64 deadline = g_get_monotonic_time() +
                      (t->wait_us ? t->wait_us : RSC_TIMEOUT_US);
    uint8_t elem[8];
    uint64_t a;

    while (!rx_ready(t)) {
        if (g_get_monotonic_time() > deadline) {
            rsc_fail("timed out waiting for %s%s",
                     t->waiting ? t->waiting : "a used rx buffer",
                     t->wait_us ? " (it must come without a clock step)"
                                : "");
        }
    }
    a = t->rx->used + 4 + 8 * (t->used_idx % t->rx->size);
    qtest_memread(t->qts, a, elem, sizeof(elem));
    t->used_idx++;
    *id = ldl_le_p(elem);
    *len = ldl_le_p(elem + 4);
    if (*id >= t->rx->size) {
        rsc_fail("used element with id %u, ring size %u", *id,
                 t->rx->size);
    }
    if (*len > t->buf_size) {
        rsc_fail("used element %u with length %u, buffer size %u", *id,
                 *len, t->buf_size);
    }
}

uint64_t rx_buf(RscTest *t, uint32_t id)
{
    return t->bufs_base + (uint64_t)id * t->buf_size;
}

/* Pop the next packet, gathering num_buffers buffers when mergeable. */
void rx_pop(RscTest *t, RxPacket *p)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    g_autofree uint32_t *ids = NULL;
    uint32_t id, len;
    unsigned i, n = 1;

    rx_pop_elem(t, &id, &len);
    if (len < VNET_HDR_LEN) {
        rsc_fail("used length %u is shorter than the vnet header", len);
    }
    g_byte_array_set_size(b, len);
    qtest_bufread(t->qts, rx_buf(t, id), b->data, len);
    memcpy(p->hdr, b->data, VNET_HDR_LEN);
    if (t->opts.mergeable) {
        n = lduw_le_p(p->hdr + 10);
        if (n < 1 || n > t->rx->size) {
            rsc_fail("num_buffers is %u", n);
        }
    }
    ids = g_new(uint32_t, n);
    ids[0] = id;
    p->nempty = 0;
    for (i = 1; i < n; i++) {
        size_t old = b->len;

        rx_pop_elem(t, &ids[i], &len);
        if (!len) {
            /* check_packet() tells why num_buffers is too large */
            p->nempty++;
            continue;
        }
        g_byte_array_set_size(b, old + len);
        qtest_bufread(t->qts, rx_buf(t, ids[i]), b->data + old, len);
    }
    p->nbufs = n;
    p->len = b->len - VNET_HDR_LEN;
    p->data = g_memdup2(b->data + VNET_HDR_LEN, p->len);
    if (t->repost) {
        for (i = 0; i < n; i++) {
            rx_post(t, ids[i]);
        }
        rx_kick(t);
    }
}

/* Assert that nothing was delivered (after the backend was read). */
void assert_idle(RscTest *t, const char *why)
{
    backend_sync(t);
    if (rx_ready(t)) {
        RxPacket p;
        g_autofree char *d = NULL;

        rx_pop(t, &p);
        d = describe_frame(t, p.data, p.len);
        rx_packet_free(&p);
        rsc_fail("expected no delivery (%s), but the guest got a %s", why,
                 d);
    }
}

/* --- expectations ------------------------------------------------------ */

void expect_frame(RscTest *t, Frame *f)
{
    Expect *e = g_new0(Expect, 1);

    e->conn = f->conn;
    e->segs = g_ptr_array_new();
    g_ptr_array_add(e->segs, f);
    g_queue_push_tail(&t->expect, e);
}

void expect_frames(RscTest *t, Frame **f, unsigned n)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        expect_frame(t, f[i]);
    }
}

/*
 * Expect one packet coalesced from @f[0..n-1].  Frames without payload are
 * window updates absorbed into the unit.  A unit of one data segment is
 * expected untouched.
 */
void expect_unit(RscTest *t, Frame **f, unsigned n)
{
    Expect *e = g_new0(Expect, 1);
    unsigned i, data = 0;

    e->conn = f[0]->conn;
    e->segs = g_ptr_array_new();
    for (i = 0; i < n; i++) {
        g_assert_cmpint(f[i]->conn, ==, e->conn);
        g_ptr_array_add(e->segs, f[i]);
        data += f[i]->plen > 0;
    }
    e->coalesced = n > 1;
    g_assert(data >= 1);
    g_queue_push_tail(&t->expect, e);
}

static const char *const vhdr_field[] = {
    "flags", "gso_type", "hdr_len", "hdr_len", "gso_size", "gso_size",
    "csum_start (segment count)", "csum_start (segment count)",
    "csum_offset (dup ACK count)", "csum_offset (dup ACK count)",
};

static unsigned vhdr_value(const uint8_t *h, unsigned i)
{
    return i < 2 ? h[i] : lduw_le_p(h + (i & ~1));
}

/* Compare a received packet with what @e expects; fail with details. */
static void check_packet(RscTest *t, const RxPacket *p, const Expect *e)
{
    Frame *first = g_ptr_array_index(e->segs, 0);
    g_autofree char *what = describe_expect(e);
    g_autofree char *got = describe_frame(t, p->data, p->len);
    g_autofree uint8_t *u = NULL;
    uint8_t vhdr[10] = { 0 };
    const uint8_t *exp;
    size_t exp_len, i;
    unsigned j;

    if (e->coalesced) {
        g_autofree const uint8_t **data = g_new(const uint8_t *,
                                                e->segs->len);
        g_autofree size_t *lens = g_new(size_t, e->segs->len);

        for (j = 0; j < e->segs->len; j++) {
            Frame *f = g_ptr_array_index(e->segs, j);

            data[j] = f->data;
            lens[j] = f->len;
        }
        u = g_malloc(RSC_SEG_MAX_UNIT);
        exp = u;
        exp_len = rsc_unit_expect(data, lens, e->segs->len, u, vhdr);
        g_assert_cmpuint(exp_len, !=, 0);
    } else {
        exp = first->data;
        exp_len = first->len;
        memcpy(vhdr, first->rx_vhdr, sizeof(vhdr));
    }
    for (j = 0; j < 10; j++) {
        if (!e->coalesced && first->any_hdr_len && (j == 2 || j == 3)) {
            continue;
        }
        if (p->hdr[j] != vhdr[j]) {
            hexdump("vnet header got", p->hdr, VNET_HDR_LEN);
            rsc_fail("expected %s: vnet header %s is %u, expected %u "
                     "(got a %s)", what, vhdr_field[j],
                     vhdr_value(p->hdr, j), vhdr_value(vhdr, j), got);
        }
    }
    if (p->len != exp_len) {
        rsc_fail("expected %s (%zu bytes), got a %s", what, exp_len, got);
    }
    for (i = 0; i < exp_len; i++) {
        if (p->data[i] == exp[i]) {
            continue;
        }
        if (e->coalesced && i >= first->hdr_len && first->conn >= 0) {
            uint32_t off = first->off + (i - first->hdr_len);
            unsigned k;

            for (k = 0; k < e->segs->len; k++) {
                Frame *f = g_ptr_array_index(e->segs, k);

                if (off >= f->off && off < f->off + f->plen) {
                    break;
                }
            }
            rsc_fail("expected %s: payload byte at seq offset %u (from "
                     "frame #%u) is 0x%02x, expected 0x%02x", what, off,
                     k < e->segs->len ?
                     ((Frame *)g_ptr_array_index(e->segs, k))->id : 0,
                     p->data[i], rsc_payload_byte(first->conn, off));
        }
        hexdump("expected", exp, MIN(exp_len, first->tcp ?
                                     first->hdr_len : exp_len));
        hexdump("got", p->data, MIN(p->len, first->tcp ?
                                    first->hdr_len : p->len));
        rsc_fail("expected %s: byte %zu (%s) is 0x%02x, expected 0x%02x",
                 what, i, first->tcp ? field_name(first, i) : "frame",
                 p->data[i], exp[i]);
    }
    if (t->opts.mergeable) {
        unsigned n = DIV_ROUND_UP(t->hdr_len + exp_len, t->buf_size);

        if (p->nbufs != n) {
            rsc_fail("expected %s: num_buffers %u (%u of them empty), "
                     "expected %u for a %zu-byte frame in %u-byte buffers",
                     what, p->nbufs, p->nempty, n, exp_len, t->buf_size);
        }
    }
}

/* The connection a received frame belongs to, or -1. */
int rx_conn(RscTest *t, const RxPacket *p)
{
    size_t l3 = ETH_HLEN, l4;
    uint16_t type;
    unsigned i;

    if (p->len < ETH_HLEN) {
        return -1;
    }
    type = lduw_be_p(p->data + 12);
    if (type == ETH_P_8021Q && p->len >= 18) {
        type = lduw_be_p(p->data + 16);
        l3 = 18;
    }
    if (type == ETH_P_IP && p->len > l3) {
        l4 = l3 + (p->data[l3] & 0xf) * 4;
    } else if (type == ETH_P_IPV6) {
        l4 = l3 + IP6_HLEN;
        if (p->len > l3 + 6 && p->data[l3 + 6] == 0) {
            l4 += 8;
        }
    } else {
        return -1;
    }
    if (p->len < l4 + 4) {
        return -1;
    }
    for (i = 0; i < t->conns->len; i++) {
        Conn *c = g_ptr_array_index(t->conns, i);

        if (c->v6 == (type == ETH_P_IPV6) &&
            c->sport == lduw_be_p(p->data + l4) &&
            c->dport == lduw_be_p(p->data + l4 + 2)) {
            return i;
        }
    }
    return -1;
}

static bool same_bytes(const RxPacket *p, const Frame *f)
{
    return p->len == f->len && !memcmp(p->data, f->data, f->len);
}

/* Is there an expectation that check_expected() must wait for? */
static bool expect_pending(RscTest *t, bool required_only)
{
    GList *l;

    for (l = t->expect.head; l; l = l->next) {
        Expect *x = l->data;

        if (!required_only || !x->flexible) {
            return true;
        }
    }
    return false;
}

/*
 * Receive expected packets and check them.  Packets of one connection
 * must arrive in the order they were expected; packets of different
 * connections may interleave.  With @required_only, flexible
 * expectations are matched if their packet is already there, and left
 * for later otherwise.  Fails on anything unexpected.
 */
void check_expected_full(RscTest *t, bool required_only)
{
    for (;;) {
        RxPacket p;
        Expect *e = NULL, *head = NULL;
        GList *l;
        int conn;

        if (!expect_pending(t, required_only) &&
            (g_queue_is_empty(&t->expect) || !rx_ready(t))) {
            break;
        }
        g_free(t->waiting);
        t->waiting = describe_expect(g_queue_peek_head(&t->expect));
        rx_pop(t, &p);
        g_clear_pointer(&t->waiting, g_free);
        conn = rx_conn(t, &p);
        for (l = t->expect.head; l; l = l->next) {
            Expect *x = l->data;

            if (x->conn == conn) {
                head = e = x;
                break;
            }
        }
        if (!e || (e->coalesced &&
                   !(p.hdr[0] & VIRTIO_NET_HDR_F_RSC_INFO)) ||
            (!e->coalesced &&
             !same_bytes(&p, g_ptr_array_index(e->segs, 0)))) {
            /* not the next packet of its connection: match by content */
            for (l = t->expect.head; l; l = l->next) {
                Expect *x = l->data;

                if (!x->coalesced &&
                    same_bytes(&p, g_ptr_array_index(x->segs, 0))) {
                    e = x;
                    break;
                }
            }
            if (e && head && e != head && e->conn == head->conn) {
                g_autofree char *d = describe_expect(e);
                g_autofree char *h = describe_expect(head);

                rsc_fail("connection order broken: got %s before %s", d,
                         h);
            }
        }
        if (!e) {
            g_autofree char *d = describe_frame(t, p.data, p.len);
            g_autofree char *h = describe_expect(
                g_queue_peek_head(&t->expect));

            rsc_fail("unexpected packet: %s (vnet flags 0x%x, %u segments)"
                     "; still expecting %u packets, first: %s", d, p.hdr[0],
                     lduw_le_p(p.hdr + 6), g_queue_get_length(&t->expect),
                     h ? h : "none");
        }
        check_packet(t, &p, e);
        g_queue_remove(&t->expect, e);
        expect_free(e);
        rx_packet_free(&p);
    }
    assert_idle(t, "all expected packets were received");
}

void check_expected(RscTest *t)
{
    check_expected_full(t, false);
}

/*
 * Check @p as the next packet of a connection whose data frames are
 * @frames, *@next of them received so far: it must start where the
 * previous one ended and be either the next frame (untouched) or the
 * unit of the next csum_start frames.  Returns how many it holds.
 */
unsigned check_next_packet(RscTest *t, const RxPacket *p, GPtrArray *frames,
                           unsigned *next)
{
    Expect e = { .conn = rx_conn(t, p) };
    unsigned n = 1, i;

    if (p->hdr[0] & VIRTIO_NET_HDR_F_RSC_INFO) {
        n = lduw_le_p(p->hdr + 6);
        e.coalesced = true;
    }
    if (n == 0 || *next + n > frames->len) {
        rsc_fail("conn %d: packet claims %u segments from segment %u, %u "
                 "were sent", e.conn, n, *next, frames->len);
    }
    e.segs = g_ptr_array_new();
    for (i = 0; i < n; i++) {
        g_ptr_array_add(e.segs, g_ptr_array_index(frames, *next + i));
    }
    check_packet(t, p, &e);
    g_ptr_array_unref(e.segs);
    *next += n;
    return n;
}

/*
 * Stream check for tests that do not fix unit boundaries:
 * check_next_packet() on the connection of @p.  @conn_frames holds, per
 * connection, its data frames, @next the index into them.
 */
void check_stream_packet(RscTest *t, const RxPacket *p,
                         GPtrArray **conn_frames, unsigned *next)
{
    int conn = rx_conn(t, p);

    if (conn < 0) {
        g_autofree char *d = describe_frame(t, p->data, p->len);

        rsc_fail("packet of no test connection: %s", d);
    }
    check_next_packet(t, p, conn_frames[conn], &next[conn]);
}

/* --- generic test scaffolding ----------------------------------------- */

/*
 * media._fanout: the SFU's fan-out loop in C (optional; media/fanout.py falls back to Python).
 *
 * One call per publisher packet sends every subscriber's copy: write the sender's RTP header
 * from its template, copy the payload, SRTP-protect in place with the subscriber's libsrtp
 * session, sendto() the nominated ICE pair's socket. That is exactly what media/wire.py does in
 * Python for one copy; here the ~3 us of interpreter work per copy goes away and what is left
 * is libsrtp and the kernel.
 *
 * A Lane is one forwarding sender (media.forwarding._SenderEgress). Python sets what changes
 * rarely (header template, payload type map, offsets, the wire: session, socket, address) and
 * reads the counters back. Before each copy the lane checks, as media.wire.Wire.send does, that
 * the DTLS transport is still connected with the same SRTP session, that the same ICE pair is
 * nominated and that asyncio has nothing queued on the socket; if anything changed (or the
 * packet is too long, or the lane has no wire yet) the copy is left to Python, which sends it
 * through the Wire and hands the lane the wire's new state.
 *
 * libsrtp is pylibsrtp's own copy: media/fanout.py passes the address of its srtp_protect (the
 * libsrtp 2 signature) and each session's srtp_t, so the sessions aiortc keys are the ones used.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define BUFFER_SIZE 1500
#define TRAILER_ROOM 32 /* libsrtp's tag (16 for AES-GCM, 10 for HMAC-SHA1-80) and an MKI */
#define MAX_PLAIN (BUFFER_SIZE - TRAILER_ROOM)
#define MAX_HEADER 64
#define NO_PAYLOAD_TYPE 0xFF

typedef int (*protect_fn)(void *ctx, void *rtp, int *length);

static protect_fn srtp_protect_fn = NULL;
static PyObject *connected_state = NULL; /* aiortc's State.CONNECTED */
static PyObject *str_state, *str_tx_srtp, *str_enabled, *str_conn_lost, *component_rtp;
static PyTypeObject LaneType;

typedef struct {
    PyObject_HEAD
    /* The sender's header: 12 bytes, the one-byte extension header, one word (abs-send-time,
       audio level or padding), the mid block. Bytes 1-11 and 16-19 are written per copy. */
    unsigned char header[MAX_HEADER];
    int header_size;
    uint32_t word_hi;
    /* The binding to a publisher. */
    int ready;
    unsigned int seq_offset;
    unsigned long ts_offset;
    unsigned int start_seq;
    unsigned char payload_types[128];
    /* VP8 picture ID and TL0PICIDX offsets: the stream continues across a change of source. */
    unsigned int pid_offset;
    unsigned int tl0_offset;
    /* The wire: checked before every copy. */
    PyObject *sender;
    PyObject *dtls;
    PyObject *session;
    void *srtp;
    PyObject *nominated;
    PyObject *pair;
    PyObject *backlog;
    PyObject *transport; /* the pair's asyncio datagram transport: _conn_lost once closing */
    PyObject *queue_send; /* the transport's sendto(data, addr): it queues on a full socket */
    PyObject *addr;
    int fd;
    struct sockaddr_storage sockaddr;
    socklen_t sockaddr_len;
    /* What the sender sent (read back by Python for sender reports and statistics). */
    unsigned long long packets;
    unsigned long long octets;
    unsigned long long wire_packets;
    unsigned long long wire_bytes;
    unsigned long rtp_timestamp;
    unsigned long long ntp;
    int seq; /* highest sequence number sent, -1 before the first */
    int pid; /* VP8 picture ID of that packet, -1 if none yet */
    int tl0; /* and its TL0PICIDX, -1 if none yet */
    unsigned char buffer[BUFFER_SIZE];
} Lane;

static void lane_drop_wire(Lane *lane) {
    Py_CLEAR(lane->dtls);
    Py_CLEAR(lane->session);
    Py_CLEAR(lane->nominated);
    Py_CLEAR(lane->pair);
    Py_CLEAR(lane->backlog);
    Py_CLEAR(lane->transport);
    Py_CLEAR(lane->queue_send);
    Py_CLEAR(lane->addr);
    lane->srtp = NULL;
    lane->fd = -1;
}

static int Lane_init(Lane *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"sender", NULL};
    PyObject *sender;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O", kwlist, &sender)) return -1;
    Py_INCREF(sender);
    Py_XSETREF(self->sender, sender);
    lane_drop_wire(self);
    memset(self->payload_types, NO_PAYLOAD_TYPE, sizeof(self->payload_types));
    self->header_size = 0;
    self->ready = 0;
    self->seq = -1;
    self->pid = -1;
    self->tl0 = -1;
    self->pid_offset = 0;
    self->tl0_offset = 0;
    return 0;
}

static int Lane_traverse(Lane *self, visitproc visit, void *arg) {
    Py_VISIT(self->sender);
    Py_VISIT(self->dtls);
    Py_VISIT(self->session);
    Py_VISIT(self->nominated);
    Py_VISIT(self->pair);
    Py_VISIT(self->backlog);
    Py_VISIT(self->transport);
    Py_VISIT(self->queue_send);
    Py_VISIT(self->addr);
    return 0;
}

static int Lane_clear(Lane *self) {
    Py_CLEAR(self->sender);
    lane_drop_wire(self);
    return 0;
}

static void Lane_dealloc(Lane *self) {
    PyObject_GC_UnTrack(self);
    Lane_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

PyDoc_STRVAR(configure_doc,
             "configure(header, word_hi)\n\nThe sender's header template (12-byte RTP header, "
             "extension header, one word, mid block) and the word's id/length bits (0: none).");

static PyObject *Lane_configure(Lane *self, PyObject *args) {
    Py_buffer header;
    unsigned long word_hi;
    if (!PyArg_ParseTuple(args, "y*k", &header, &word_hi)) return NULL;
    if (header.len < 20 || header.len > MAX_HEADER) {
        PyBuffer_Release(&header);
        PyErr_SetString(PyExc_ValueError, "header template must be 20-64 bytes");
        return NULL;
    }
    memcpy(self->header, header.buf, header.len);
    self->header_size = (int)header.len;
    self->word_hi = (uint32_t)word_hi;
    PyBuffer_Release(&header);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(bind_doc,
             "bind(seq_offset, ts_offset, start_seq, payload_types, pid_offset=0, tl0_offset=0)"
             "\n\nThe offsets of the publisher this sender now forwards (sequence number, "
             "timestamp, VP8 picture ID and TL0PICIDX), and its payload type map (128 bytes, "
             "255: not forwarded).");

static PyObject *Lane_bind(Lane *self, PyObject *args) {
    unsigned int seq_offset, start_seq, pid_offset = 0, tl0_offset = 0;
    unsigned long ts_offset;
    Py_buffer map;
    if (!PyArg_ParseTuple(args, "IkIy*|II", &seq_offset, &ts_offset, &start_seq, &map,
                          &pid_offset, &tl0_offset))
        return NULL;
    if (map.len != 128) {
        PyBuffer_Release(&map);
        PyErr_SetString(PyExc_ValueError, "payload type map must be 128 bytes");
        return NULL;
    }
    memcpy(self->payload_types, map.buf, 128);
    PyBuffer_Release(&map);
    self->seq_offset = seq_offset & 0xFFFF;
    self->ts_offset = ts_offset & 0xFFFFFFFFUL;
    self->start_seq = start_seq & 0xFFFF;
    self->pid_offset = pid_offset & 0x7FFF;
    self->tl0_offset = tl0_offset & 0xFF;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(adopt_doc,
             "adopt(dtls, session, srtp, nominated, pair, transport, backlog, addr, fd, host, "
             "port)\n\nWhat a Wire just sent with; the lane sends with it while it holds.");

static PyObject *Lane_adopt(Lane *self, PyObject *args) {
    PyObject *dtls, *session, *nominated, *pair, *transport, *backlog, *addr;
    unsigned long long srtp;
    int fd, port;
    const char *host;
    if (!PyArg_ParseTuple(args, "OOKO!OOOOisi", &dtls, &session, &srtp, &PyDict_Type, &nominated,
                          &pair, &transport, &backlog, &addr, &fd, &host, &port))
        return NULL;
    PyObject *queue_send = PyObject_GetAttrString(transport, "sendto");
    if (queue_send == NULL) return NULL;
    struct sockaddr_storage sockaddr;
    socklen_t length;
    memset(&sockaddr, 0, sizeof(sockaddr));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&sockaddr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&sockaddr;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        length = sizeof(*v4);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        length = sizeof(*v6);
    } else {
        /* A scoped IPv6 address or a name: leave this lane to Python's socket module. */
        Py_DECREF(queue_send);
        lane_drop_wire(self);
        Py_RETURN_FALSE;
    }
    lane_drop_wire(self);
    Py_INCREF(dtls);
    self->dtls = dtls;
    Py_INCREF(session);
    self->session = session;
    Py_INCREF(nominated);
    self->nominated = nominated;
    Py_INCREF(pair);
    self->pair = pair;
    Py_INCREF(backlog);
    self->backlog = backlog;
    Py_INCREF(transport);
    self->transport = transport;
    self->queue_send = queue_send; /* the reference from GetAttr */
    Py_INCREF(addr);
    self->addr = addr;
    self->srtp = (void *)(uintptr_t)srtp;
    self->fd = fd;
    self->sockaddr = sockaddr;
    self->sockaddr_len = length;
    Py_RETURN_TRUE;
}

static PyObject *Lane_drop(Lane *self, PyObject *Py_UNUSED(ignored)) {
    lane_drop_wire(self);
    Py_RETURN_NONE;
}

/* 1: send from C; 0: leave the copy to Python; -1: error set. */
static int lane_wire_holds(Lane *lane) {
    if (lane->srtp == NULL) return 0;
    PyObject *value = PyObject_GetAttr(lane->dtls, str_state);
    if (value == NULL) return -1;
    int holds = value == connected_state;
    Py_DECREF(value);
    if (!holds) return 0;
    value = PyObject_GetAttr(lane->dtls, str_tx_srtp);
    if (value == NULL) return -1;
    holds = value == lane->session;
    Py_DECREF(value);
    if (!holds) return 0;
    if (PyDict_GetItemWithError(lane->nominated, component_rtp) != lane->pair)
        return PyErr_Occurred() ? -1 : 0;
    Py_ssize_t queued = PyObject_Length(lane->backlog);
    if (queued < 0) return -1;
    if (queued) return 0;
    /* Closing or lost: its socket may be closed and the descriptor reused by another. */
    value = PyObject_GetAttr(lane->transport, str_conn_lost);
    if (value == NULL) return -1;
    holds = value == Py_False || (PyLong_Check(value) && PyLong_AsLong(value) == 0);
    Py_DECREF(value);
    return holds;
}

static PyObject *Lane_sender_enabled(Lane *lane) {
    return PyObject_GetAttr(lane->sender, str_enabled);
}

PyDoc_STRVAR(forward_doc,
             "forward(lanes, payload, payload_type, seq, ts, marker, ext_value, ntp, in_order)"
             "\n\nSend one publisher packet to every lane. Returns (sent, sent_bytes, dropped, "
             "left) where left lists the indexes of the lanes whose copy Python must send.");

static PyObject *fanout_forward(PyObject *module, PyObject *args) {
    PyObject *lanes;
    Py_buffer payload;
    unsigned int pt, seq, marker;
    unsigned long ts;
    long long ext_value;
    unsigned long long ntp;
    int in_order;
    /* Where the VP8 descriptor holds the picture ID (-1: none; 15 bits if pid_long) and the
       TL0PICIDX (-1: none), and their values in this packet. */
    int pid_at = -1, pid_long = 0, tl0_at = -1;
    unsigned int pid = 0, tl0 = 0;
    if (!PyArg_ParseTuple(args, "O!y*IIkILKp|ipIiI", &PyTuple_Type, &lanes, &payload, &pt, &seq,
                          &ts, &marker, &ext_value, &ntp, &in_order, &pid_at, &pid_long, &pid,
                          &tl0_at, &tl0))
        return NULL;
    if (srtp_protect_fn == NULL || connected_state == NULL) {
        PyBuffer_Release(&payload);
        PyErr_SetString(PyExc_RuntimeError, "media._fanout.setup() was not called");
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(lanes);
    Py_ssize_t payload_size = payload.len;
    if (pid_at >= 0 && pid_at + (pid_long ? 2 : 1) > payload_size) pid_at = -1;
    if (tl0_at >= 0 && tl0_at >= payload_size) tl0_at = -1;
    long long sent = 0, sent_bytes = 0, dropped = 0;
    PyObject *left = NULL;
    seq &= 0xFFFF;
    pt &= 0x7F;
    uint32_t ext_word_value = ext_value >= 0 ? (uint32_t)ext_value : 0;
    unsigned char marker_bit = marker ? 0x80 : 0;

    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyTuple_GET_ITEM(lanes, i);
        if (!PyObject_TypeCheck(item, &LaneType)) {
            PyErr_SetString(PyExc_TypeError, "lanes must be Lane objects");
            goto error;
        }
        Lane *lane = (Lane *)item;
        if (!lane->ready || lane->header_size == 0) {
            dropped++;
            continue;
        }
        PyObject *enabled = Lane_sender_enabled(lane);
        if (enabled == NULL) goto error;
        int is_enabled = PyObject_IsTrue(enabled);
        Py_DECREF(enabled);
        if (is_enabled < 0) goto error;
        if (!is_enabled) {
            dropped++;
            continue;
        }
        if (!in_order && ((seq - lane->start_seq) & 0xFFFF) >= 0x8000) continue; /* before its start */
        unsigned char out_pt = lane->payload_types[pt];
        if (out_pt == NO_PAYLOAD_TYPE) {
            dropped++;
            continue;
        }
        Py_ssize_t size = lane->header_size + payload_size;
        int holds = size <= MAX_PLAIN ? lane_wire_holds(lane) : 0;
        if (holds < 0) goto error;
        if (!holds) {
            if (left == NULL && (left = PyList_New(0)) == NULL) goto error;
            PyObject *index = PyLong_FromSsize_t(i);
            if (index == NULL || PyList_Append(left, index) < 0) {
                Py_XDECREF(index);
                goto error;
            }
            Py_DECREF(index);
            continue;
        }
        unsigned int out_seq = (seq + lane->seq_offset) & 0xFFFF;
        uint32_t out_ts = (uint32_t)((ts + lane->ts_offset) & 0xFFFFFFFFUL);
        unsigned char *buffer = lane->buffer;
        memcpy(buffer, lane->header, lane->header_size);
        buffer[1] = marker_bit | out_pt;
        buffer[2] = out_seq >> 8;
        buffer[3] = out_seq & 0xFF;
        buffer[4] = out_ts >> 24;
        buffer[5] = (out_ts >> 16) & 0xFF;
        buffer[6] = (out_ts >> 8) & 0xFF;
        buffer[7] = out_ts & 0xFF;
        uint32_t word = lane->word_hi && ext_value >= 0 ? lane->word_hi | ext_word_value : 0;
        buffer[16] = word >> 24;
        buffer[17] = (word >> 16) & 0xFF;
        buffer[18] = (word >> 8) & 0xFF;
        buffer[19] = word & 0xFF;
        memcpy(buffer + lane->header_size, payload.buf, payload_size);
        int out_pid = -1, out_tl0 = -1;
        if (pid_at >= 0) {
            unsigned char *at = buffer + lane->header_size + pid_at;
            if (pid_long) {
                out_pid = (int)((pid + lane->pid_offset) & 0x7FFF);
                at[0] = 0x80 | (unsigned char)(out_pid >> 8);
                at[1] = out_pid & 0xFF;
            } else {
                out_pid = (int)((pid + lane->pid_offset) & 0x7F);
                at[0] = (unsigned char)out_pid;
            }
        }
        if (tl0_at >= 0) {
            out_tl0 = (int)((tl0 + lane->tl0_offset) & 0xFF);
            buffer[lane->header_size + tl0_at] = (unsigned char)out_tl0;
        }
        int length = (int)size;
        if (srtp_protect_fn(lane->srtp, buffer, &length) != 0) {
            dropped++; /* refused by libsrtp: gone, as a lost packet; NACK/PLI repair it */
            continue;
        }
        ssize_t written = sendto(lane->fd, buffer, (size_t)length, 0,
                                 (struct sockaddr *)&lane->sockaddr, lane->sockaddr_len);
        if (written < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ENOBUFS) {
                /* asyncio queues it and waits for the socket, keeping the order. */
                PyObject *data = PyBytes_FromStringAndSize((const char *)buffer, length);
                if (data == NULL) goto error;
                PyObject *result = PyObject_CallFunctionObjArgs(lane->queue_send, data, lane->addr, NULL);
                Py_DECREF(data);
                if (result == NULL) goto error;
                Py_DECREF(result);
            } else {
                dropped++; /* as asyncio: the datagram is lost, the transport lives */
                continue;
            }
        }
        lane->packets++;
        lane->octets += (unsigned long long)payload_size;
        lane->wire_packets++;
        lane->wire_bytes += (unsigned long long)length;
        if (in_order) {
            lane->seq = (int)out_seq;
            lane->rtp_timestamp = out_ts;
            lane->ntp = ntp;
            if (out_pid >= 0) lane->pid = out_pid;
            if (out_tl0 >= 0) lane->tl0 = out_tl0;
        }
        sent++;
        sent_bytes += size;
    }
    PyBuffer_Release(&payload);
    if (left == NULL) {
        left = Py_None;
        Py_INCREF(left);
    }
    return Py_BuildValue("LLLN", sent, sent_bytes, dropped, left);

error:
    PyBuffer_Release(&payload);
    Py_XDECREF(left);
    return NULL;
}

PyDoc_STRVAR(setup_doc,
             "setup(srtp_protect_address, connected_state)\n\nlibsrtp's srtp_protect (from "
             "pylibsrtp's binding) and aiortc's State.CONNECTED.");

static PyObject *fanout_setup(PyObject *module, PyObject *args) {
    unsigned long long address;
    PyObject *state;
    if (!PyArg_ParseTuple(args, "KO", &address, &state)) return NULL;
    if (address == 0) {
        PyErr_SetString(PyExc_ValueError, "srtp_protect address is 0");
        return NULL;
    }
    srtp_protect_fn = (protect_fn)(uintptr_t)address;
    Py_INCREF(state);
    Py_XSETREF(connected_state, state);
    Py_RETURN_NONE;
}

static PyMemberDef Lane_members[] = {
    {"ready", T_INT, offsetof(Lane, ready), 0, "Negotiated and not stopped."},
    {"packets", T_ULONGLONG, offsetof(Lane, packets), 0, "RTP packets sent (sender reports)."},
    {"octets", T_ULONGLONG, offsetof(Lane, octets), 0, "Payload octets sent (sender reports)."},
    {"wire_packets", T_ULONGLONG, offsetof(Lane, wire_packets), 0, "Datagrams sent from C."},
    {"wire_bytes", T_ULONGLONG, offsetof(Lane, wire_bytes), 0, "Bytes of those datagrams."},
    {"rtp_timestamp", T_ULONG, offsetof(Lane, rtp_timestamp), 0, "Last RTP timestamp sent."},
    {"ntp", T_ULONGLONG, offsetof(Lane, ntp), 0, "NTP time of that packet."},
    {"seq", T_INT, offsetof(Lane, seq), 0, "Highest sequence number sent, -1 before any."},
    {"pid", T_INT, offsetof(Lane, pid), 0, "VP8 picture ID of that packet, -1 if none yet."},
    {"tl0", T_INT, offsetof(Lane, tl0), 0, "VP8 TL0PICIDX of that packet, -1 if none yet."},
    {NULL},
};

static PyMethodDef Lane_methods[] = {
    {"configure", (PyCFunction)Lane_configure, METH_VARARGS, configure_doc},
    {"bind", (PyCFunction)Lane_bind, METH_VARARGS, bind_doc},
    {"adopt", (PyCFunction)Lane_adopt, METH_VARARGS, adopt_doc},
    {"drop", (PyCFunction)Lane_drop, METH_NOARGS, "Forget the wire (the next copy goes to Python)."},
    {NULL},
};

static PyTypeObject LaneType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "media._fanout.Lane",
    .tp_doc = PyDoc_STR("One forwarding sender's state for the C fan-out."),
    .tp_basicsize = sizeof(Lane),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Lane_init,
    .tp_dealloc = (destructor)Lane_dealloc,
    .tp_traverse = (traverseproc)Lane_traverse,
    .tp_clear = (inquiry)Lane_clear,
    .tp_members = Lane_members,
    .tp_methods = Lane_methods,
};

static PyMethodDef module_methods[] = {
    {"setup", fanout_setup, METH_VARARGS, setup_doc},
    {"forward", fanout_forward, METH_VARARGS, forward_doc},
    {NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "media._fanout",
    .m_doc = "The SFU's fan-out loop in C: header, SRTP protect and sendto for every copy.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__fanout(void) {
    if (PyType_Ready(&LaneType) < 0) return NULL;
    str_state = PyUnicode_InternFromString("_state");
    str_tx_srtp = PyUnicode_InternFromString("_tx_srtp");
    str_enabled = PyUnicode_InternFromString("_enabled");
    str_conn_lost = PyUnicode_InternFromString("_conn_lost");
    component_rtp = PyLong_FromLong(1);
    if (!str_state || !str_tx_srtp || !str_enabled || !str_conn_lost || !component_rtp)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) return NULL;
    Py_INCREF(&LaneType);
    if (PyModule_AddObject(module, "Lane", (PyObject *)&LaneType) < 0) {
        Py_DECREF(&LaneType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

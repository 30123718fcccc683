#include <string.h>
#include <sys/time.h>
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

/* rabbitmq-c's variadic calls and its structs of unions are awkward from Swift; these helpers build
 * them in C. Each only fills structs and calls the library: no state, no allocation that outlives
 * the call. */

/* amqp_login is variadic: fixed here to PLAIN user/password. */
static inline amqp_rpc_reply_t chronicle_amqp_login_plain(amqp_connection_state_t state, const char *vhost,
                                                           int channel_max, int frame_max, int heartbeat,
                                                           const char *user, const char *password) {
    return amqp_login(state, vhost, channel_max, frame_max, heartbeat, AMQP_SASL_METHOD_PLAIN, user, password);
}

/* A persistent JSON message with a message id, a type and an x-attempt header. */
static inline int chronicle_amqp_publish(amqp_connection_state_t conn, amqp_channel_t channel, const char *exchange,
                                         const char *routing_key, const char *message_id, const char *type,
                                         const void *body, size_t body_len, int attempt) {
    amqp_table_entry_t header;
    header.key = amqp_cstring_bytes("x-attempt");
    header.value.kind = AMQP_FIELD_KIND_I32;
    header.value.value.i32 = attempt;
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof props);
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
                   AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_HEADERS_FLAG;
    props.content_type = amqp_cstring_bytes("application/json");
    props.delivery_mode = 2; /* persistent */
    props.message_id = amqp_cstring_bytes(message_id);
    props.type = amqp_cstring_bytes(type);
    props.headers.num_entries = 1;
    props.headers.entries = &header;
    amqp_bytes_t payload;
    payload.len = body_len;
    payload.bytes = (void *)body;
    return amqp_basic_publish(conn, channel, amqp_cstring_bytes(exchange), amqp_cstring_bytes(routing_key), 0, 0,
                              &props, payload);
}

/* The messages ready in a queue (a passive declare), or -1 if it does not exist (which closes
 * the channel). Unacknowledged deliveries are not counted: they return to ready when their
 * consumer's connection closes. */
static inline long chronicle_amqp_queue_ready(amqp_connection_state_t conn, amqp_channel_t channel, const char *name) {
    amqp_queue_declare_ok_t *ok = amqp_queue_declare(conn, channel, amqp_cstring_bytes(name), 1, 0, 0, 0, amqp_empty_table);
    if (!ok || amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL) return -1;
    return (long)ok->message_count;
}

/* A durable queue; dead-letters to dlx_exchange/dlx_routing_key when given (NULL for none), and
 * expires messages after message_ttl_ms when positive (a retry delay queue). */
static inline int chronicle_amqp_queue_declare(amqp_connection_state_t conn, amqp_channel_t channel, const char *name,
                                               const char *dlx_exchange, const char *dlx_routing_key,
                                               int message_ttl_ms, int expires_ms) {
    amqp_table_entry_t entries[4];
    int count = 0;
    if (dlx_exchange) {
        entries[count].key = amqp_cstring_bytes("x-dead-letter-exchange");
        entries[count].value.kind = AMQP_FIELD_KIND_UTF8;
        entries[count].value.value.bytes = amqp_cstring_bytes(dlx_exchange);
        count++;
    }
    if (dlx_routing_key) {
        entries[count].key = amqp_cstring_bytes("x-dead-letter-routing-key");
        entries[count].value.kind = AMQP_FIELD_KIND_UTF8;
        entries[count].value.value.bytes = amqp_cstring_bytes(dlx_routing_key);
        count++;
    }
    if (message_ttl_ms > 0) {
        entries[count].key = amqp_cstring_bytes("x-message-ttl");
        entries[count].value.kind = AMQP_FIELD_KIND_I32;
        entries[count].value.value.i32 = message_ttl_ms;
        count++;
    }
    if (expires_ms > 0) {
        entries[count].key = amqp_cstring_bytes("x-expires");
        entries[count].value.kind = AMQP_FIELD_KIND_I32;
        entries[count].value.value.i32 = expires_ms;
        count++;
    }
    amqp_table_t arguments;
    arguments.num_entries = count;
    arguments.entries = entries;
    amqp_queue_declare(conn, channel, amqp_cstring_bytes(name), 0, 1, 0, 0, arguments);
    return amqp_get_rpc_reply(conn).reply_type == AMQP_RESPONSE_NORMAL ? 0 : -1;
}

static inline int chronicle_amqp_exchange_declare(amqp_connection_state_t conn, amqp_channel_t channel,
                                                  const char *name, const char *type) {
    amqp_exchange_declare(conn, channel, amqp_cstring_bytes(name), amqp_cstring_bytes(type), 0, 1, 0, 0,
                          amqp_empty_table);
    return amqp_get_rpc_reply(conn).reply_type == AMQP_RESPONSE_NORMAL ? 0 : -1;
}

static inline int chronicle_amqp_queue_bind(amqp_connection_state_t conn, amqp_channel_t channel, const char *queue,
                                            const char *exchange, const char *routing_key) {
    amqp_queue_bind(conn, channel, amqp_cstring_bytes(queue), amqp_cstring_bytes(exchange),
                    amqp_cstring_bytes(routing_key), amqp_empty_table);
    return amqp_get_rpc_reply(conn).reply_type == AMQP_RESPONSE_NORMAL ? 0 : -1;
}

/* Waits for one publisher confirm. Returns 0 with *tag/*multiple/*nack set, 1 on timeout, -1 when
 * the connection or channel failed. */
static inline int chronicle_amqp_wait_confirm(amqp_connection_state_t conn, int timeout_ms, uint64_t *tag,
                                              int *multiple, int *nack) {
    struct timeval tv;
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    amqp_frame_t frame;
    int status = amqp_simple_wait_frame_noblock(conn, &frame, &tv);
    if (status == AMQP_STATUS_TIMEOUT) return 1;
    if (status != AMQP_STATUS_OK || frame.frame_type != AMQP_FRAME_METHOD) return -1;
    if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
        amqp_basic_ack_t *ack = (amqp_basic_ack_t *)frame.payload.method.decoded;
        *tag = ack->delivery_tag;
        *multiple = ack->multiple;
        *nack = 0;
        return 0;
    }
    if (frame.payload.method.id == AMQP_BASIC_NACK_METHOD) {
        amqp_basic_nack_t *n = (amqp_basic_nack_t *)frame.payload.method.decoded;
        *tag = n->delivery_tag;
        *multiple = n->multiple;
        *nack = 1;
        return 0;
    }
    return -1;
}

/* Consumes one message. Returns 0 with the envelope filled (free it with amqp_destroy_envelope),
 * 1 on timeout, -1 when the connection failed. */
static inline int chronicle_amqp_consume(amqp_connection_state_t conn, amqp_envelope_t *envelope, int timeout_ms) {
    struct timeval tv;
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    amqp_maybe_release_buffers(conn);
    amqp_rpc_reply_t reply = amqp_consume_message(conn, envelope, &tv, 0);
    if (reply.reply_type == AMQP_RESPONSE_NORMAL) return 0;
    if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && reply.library_error == AMQP_STATUS_TIMEOUT) return 1;
    return -1;
}

/* The x-attempt header of a delivered message; 1 when absent. */
static inline int chronicle_amqp_envelope_attempt(const amqp_envelope_t *envelope) {
    const amqp_basic_properties_t *p = &envelope->message.properties;
    if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG)) return 1;
    for (int i = 0; i < p->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &p->headers.entries[i];
        if (e->key.len == 9 && memcmp(e->key.bytes, "x-attempt", 9) == 0) {
            if (e->value.kind == AMQP_FIELD_KIND_I32) return e->value.value.i32;
            if (e->value.kind == AMQP_FIELD_KIND_I64) return (int)e->value.value.i64;
        }
    }
    return 1;
}

static inline int chronicle_amqp_envelope_has_message_id(const amqp_envelope_t *envelope) {
    return (envelope->message.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) != 0;
}

static inline int chronicle_amqp_envelope_has_type(const amqp_envelope_t *envelope) {
    return (envelope->message.properties._flags & AMQP_BASIC_TYPE_FLAG) != 0;
}

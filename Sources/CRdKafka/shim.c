#include "CRdKafka.h"

rd_kafka_resp_err_t uc_produce(rd_kafka_t *rk, rd_kafka_topic_t *topic, int32_t partition,
                               const void *key, size_t key_len,
                               const void *value, size_t value_len,
                               rd_kafka_headers_t *headers, int64_t timestamp_ms,
                               void *msg_opaque) {
    rd_kafka_resp_err_t err;
    if (headers) {
        err = rd_kafka_producev(rk,
                                RD_KAFKA_V_RKT(topic),
                                RD_KAFKA_V_PARTITION(partition),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_KEY(key, key_len),
                                RD_KAFKA_V_VALUE((void *)value, value_len),
                                RD_KAFKA_V_HEADERS(headers),
                                RD_KAFKA_V_TIMESTAMP(timestamp_ms),
                                RD_KAFKA_V_OPAQUE(msg_opaque),
                                RD_KAFKA_V_END);
        if (err) rd_kafka_headers_destroy(headers);
    } else {
        err = rd_kafka_producev(rk,
                                RD_KAFKA_V_RKT(topic),
                                RD_KAFKA_V_PARTITION(partition),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_KEY(key, key_len),
                                RD_KAFKA_V_VALUE((void *)value, value_len),
                                RD_KAFKA_V_TIMESTAMP(timestamp_ms),
                                RD_KAFKA_V_OPAQUE(msg_opaque),
                                RD_KAFKA_V_END);
    }
    return err;
}

uintptr_t uc_message_token(const rd_kafka_message_t *msg) {
    return (uintptr_t)msg->_private;
}

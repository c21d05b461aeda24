#ifndef UNDERCURRENT_CRDKAFKA_H
#define UNDERCURRENT_CRDKAFKA_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stddef.h>
#include <stdint.h>

/// Produce one message. Wraps the variadic rd_kafka_producev, which Swift cannot call.
/// `headers` (may be NULL) is owned by librdkafka on success, and destroyed here on failure.
rd_kafka_resp_err_t uc_produce(rd_kafka_t *rk, rd_kafka_topic_t *topic, int32_t partition,
                               const void *key, size_t key_len,
                               const void *value, size_t value_len,
                               rd_kafka_headers_t *headers, int64_t timestamp_ms,
                               void *msg_opaque);

/// The message's opaque as an integer token (the `_private` field is not importable by name).
uintptr_t uc_message_token(const rd_kafka_message_t *msg);

#endif

/* Plain librdkafka produce/consume throughput through librdkafka's mock cluster: the baseline the
 * Swift layer is measured against (same properties, same message size, same process layout).
 * Usage: raw_kafka_bench MESSAGES PARTITIONS */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static long delivered = 0, failed = 0;
static void dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *o) { if (m->err) failed++; else delivered++; }
static void set(rd_kafka_conf_t *c, const char *k, const char *v) {
    char e[256]; if (rd_kafka_conf_set(c, k, v, e, sizeof e)) { fprintf(stderr, "%s: %s\n", k, e); exit(1); }
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    int parts = argc > 2 ? atoi(argv[2]) : 6;
    char err[512];
    rd_kafka_conf_t *mc = rd_kafka_conf_new(); set(mc, "log_level", "3");
    rd_kafka_t *owner = rd_kafka_new(RD_KAFKA_PRODUCER, mc, err, sizeof err);
    rd_kafka_mock_cluster_t *mock = rd_kafka_mock_cluster_new(owner, 1);
    const char *bs = rd_kafka_mock_cluster_bootstraps(mock);
    rd_kafka_mock_topic_create(mock, "bench", parts, 1);

    rd_kafka_conf_t *pc = rd_kafka_conf_new();
    set(pc, "bootstrap.servers", bs); set(pc, "enable.idempotence", "true"); set(pc, "compression.type", "lz4");
    set(pc, "partitioner", "murmur2_random"); set(pc, "linger.ms", "5"); set(pc, "queue.buffering.max.messages", "100000");
    set(pc, "batch.num.messages", "10000");
    rd_kafka_conf_set_dr_msg_cb(pc, dr);
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof err);
    rd_kafka_topic_t *t = rd_kafka_topic_new(p, "bench", NULL);
    char value[250]; memset(value, 'x', sizeof value);
    char key[32];
    double t0 = now();
    for (long i = 0; i < n; i++) {
        int kl = snprintf(key, sizeof key, "cus_%ld", i % 5000);
        memcpy(value, &i, sizeof i);
        rd_kafka_headers_t *h = rd_kafka_headers_new(2);
        rd_kafka_header_add(h, "event-type", -1, "payment.succeeded", -1);
        rd_kafka_header_add(h, "schema", -1, "1", 1);
        for (;;) {
            rd_kafka_resp_err_t e = rd_kafka_producev(p, RD_KAFKA_V_RKT(t), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_KEY(key, kl), RD_KAFKA_V_VALUE(value, sizeof value), RD_KAFKA_V_HEADERS(h),
                RD_KAFKA_V_TIMESTAMP(1741947751123LL + i), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) { rd_kafka_poll(p, 5); continue; }
            if (e) { fprintf(stderr, "produce: %s\n", rd_kafka_err2str(e)); return 1; }
            break;
        }
        rd_kafka_poll(p, 0);
    }
    rd_kafka_flush(p, 60000);
    double t1 = now();
    printf("raw-librdkafka produce: %ld messages in %.3f s = %.0f msg/s (delivered %ld, failed %ld)\n",
           n, t1 - t0, n / (t1 - t0), delivered, failed);

    rd_kafka_conf_t *cc = rd_kafka_conf_new();
    set(cc, "bootstrap.servers", bs); set(cc, "group.id", "bench"); set(cc, "enable.auto.commit", "false");
    set(cc, "auto.offset.reset", "error"); set(cc, "enable.partition.eof", "false");
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof err);
    rd_kafka_poll_set_consumer(c);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
    for (int i = 0; i < parts; i++) rd_kafka_topic_partition_list_add(l, "bench", i)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(c, l);
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(c);
    rd_kafka_message_t *buf[1000];
    long got = 0, bytes = 0; int64_t ts = 0;
    double t2 = now();
    while (got < n && now() - t2 < 120) {
        ssize_t k = rd_kafka_consume_batch_queue(q, 200, buf, 1000);
        for (ssize_t i = 0; i < k; i++) {
            if (!buf[i]->err) { got++; bytes += buf[i]->len + buf[i]->key_len; ts += rd_kafka_message_timestamp(buf[i], NULL); }
            rd_kafka_message_destroy(buf[i]);
        }
    }
    double t3 = now();
    printf("raw-librdkafka consume: %ld messages in %.3f s = %.0f msg/s\n", got, t3 - t2, got / (t3 - t2));
    rd_kafka_queue_destroy(q);
    rd_kafka_consumer_close(c); rd_kafka_destroy(c);
    rd_kafka_topic_destroy(t); rd_kafka_destroy(p);
    rd_kafka_mock_cluster_destroy(mock); rd_kafka_destroy(owner);
    return got == n ? 0 : 1;
}

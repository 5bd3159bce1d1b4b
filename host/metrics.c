/* /metrics: the Prometheus text exposition of the master's state. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "master_state.h"

static void metric_head(struct ios_buf *out, const char *name, const char *type,
                        const char *help)
{
    char line[512];
    int n = snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s %s\n", name, help,
                     name, type);
    ios_buf_append(out, line, (size_t)n);
}

/* Label values are our own model names and errno texts, but escape them
 * as the exposition format requires all the same. */
static void label_escape(char *dst, size_t len, const char *src)
{
    size_t j = 0;
    for (; *src && j + 2 < len; src++) {
        if (*src == '\\' || *src == '"') {
            dst[j++] = '\\';
            dst[j++] = *src;
        } else if (*src == '\n') {
            dst[j++] = ' ';
        } else {
            dst[j++] = *src;
        }
    }
    dst[j] = '\0';
}

static void metric_line(struct ios_buf *out, const char *name, const char *labels,
                        uint64_t value)
{
    char line[768];
    int n = snprintf(line, sizeof(line), "%s%s%s%s %llu\n", name, labels[0] ? "{" : "",
                     labels, labels[0] ? "}" : "", (unsigned long long)value);
    ios_buf_append(out, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static const struct counter_metric {
    const char *name, *help;
    size_t offset;
} counter_metrics[] = {
    {"ioserve_connections_accepted_total", "Connections accepted and kept.",
     offsetof(struct ios_counters, accepted)},
    {"ioserve_connections_refused_total", "Connections accepted and closed at once (a limit).",
     offsetof(struct ios_counters, refused)},
    {"ioserve_connections_closed_total", "Kept connections that have closed.",
     offsetof(struct ios_counters, closed)},
    {"ioserve_received_bytes_total", "Bytes received from clients.",
     offsetof(struct ios_counters, bytes_in)},
    {"ioserve_sent_bytes_total", "Bytes sent to clients.",
     offsetof(struct ios_counters, bytes_out)},
};

static uint64_t counter_at(const struct ios_counters *c, size_t offset)
{
    return __atomic_load_n((const uint64_t *)((const char *)c + offset), __ATOMIC_RELAXED);
}

/* One sample of the counter at `offset` per worker of every generation. */
static void worker_samples(struct ios_buf *out, const struct master *m, const char *name,
                           size_t offset)
{
    char model[160], labels[256];
    for (unsigned i = 0; i < MAX_GENERATIONS; i++) {
        const struct generation *g = m->gens[i];
        for (unsigned j = 0; g && g->counters && j < g->nslots; j++) {
            label_escape(model, sizeof(model), slot_model(g, j));
            snprintf(labels, sizeof(labels), "model=\"%s\",generation=\"%u\",worker=\"%u\"",
                     model, g->id, j);
            metric_line(out, name, labels, counter_at(&g->counters[j], offset));
        }
    }
}

/* Connections that closed on a draining generation, by model: those of
 * ended generations plus those of the ones draining now. */
static void finished_on_old(struct ios_buf *out, const struct master *m)
{
    static const char name[] = "ioserve_connections_finished_on_old_total";
    metric_head(out, name, "counter",
                "Connections that closed on a draining generation (not handed over).");
    struct finished_on_old sum[MAX_MODEL_TOTALS];
    memcpy(sum, m->stats.finished, sizeof(sum));
    for (unsigned i = 0; i < MAX_GENERATIONS; i++) {
        const struct generation *g = m->gens[i];
        for (unsigned j = 0; g && g->state == GEN_DRAINING && j < g->nslots; j++) {
            const char *model = slot_model(g, j);
            for (unsigned k = 0; k < MAX_MODEL_TOTALS; k++) {
                if (sum[k].model[0] && strcmp(sum[k].model, model) != 0)
                    continue;
                snprintf(sum[k].model, sizeof(sum[k].model), "%.63s", model);
                sum[k].n += gen_finished_while_draining(g, j);
                break;
            }
        }
    }
    char labels[256], model[160];
    for (unsigned k = 0; k < MAX_MODEL_TOTALS && sum[k].model[0]; k++) {
        label_escape(model, sizeof(model), sum[k].model);
        snprintf(labels, sizeof(labels), "model=\"%s\"", model);
        metric_line(out, name, labels, sum[k].n);
    }
}

static void hand_over(struct ios_buf *out, const struct master *m)
{
    static const char name[] = "ioserve_connections_handed_over_total";
    metric_head(out, name, "counter",
                "Connections handed over on reload, by the model they left and the one "
                "that adopted them.");
    char labels[512], from[160], to[160];
    for (size_t i = 0; i < m->relay.n_counts; i++) {
        const struct ho_count *c = &m->relay.counts[i];
        label_escape(from, sizeof(from), c->from);
        label_escape(to, sizeof(to), c->to);
        snprintf(labels, sizeof(labels), "from_model=\"%s\",to_model=\"%s\"", from, to);
        metric_line(out, name, labels, c->n);
    }
    finished_on_old(out, m);
    metric_head(out, "ioserve_last_drain_duration_seconds", "gauge",
                "How long the last generation to drain took (0 before any).");
    char line[128];
    int n = snprintf(line, sizeof(line), "ioserve_last_drain_duration_seconds %llu.%03llu\n",
                     (unsigned long long)(m->stats.last_drain_ms / 1000),
                     (unsigned long long)(m->stats.last_drain_ms % 1000));
    ios_buf_append(out, line, (size_t)n);
}

/* The serving generation's A/B split: the share its main workers route
 * now (0 while no canary worker can take them), absent without a split. */
static void canary_share(struct ios_buf *out, const struct master *m)
{
    static const char name[] = "ioserve_canary_share_percent";
    metric_head(out, name, "gauge",
                "Percent of new connections the canary model serves (canary.share; 0 while "
                "it cannot).");
    const struct generation *g = gen_find(m, GEN_ACTIVE);
    if (!g || !g->cfg->canary.model || !g->split)
        return;
    char labels[256], model[160];
    label_escape(model, sizeof(model), g->cfg->canary.model);
    snprintf(labels, sizeof(labels), "model=\"%s\"", model);
    metric_line(out, name, labels, __atomic_load_n(&g->split->share, __ATOMIC_RELAXED));
}

/*
 * ioserve_request_duration_seconds: one histogram per model and live
 * generation, the sum of its workers'.  An ended generation's series end
 * with it rather than fold into a generation="ended" total as the
 * counters do: its label set never comes back (ids are not reused), so no
 * series goes backwards, and a total that took in a whole generation at
 * once would look to rate() like a burst of requests in the last scrape
 * interval and pull histogram_quantile() towards the old generation's
 * latencies.  What an ending generation recorded after the last scrape
 * is not seen.
 */
static void latency_histograms(struct ios_buf *out, const struct master *m)
{
    static const char name[] = "ioserve_request_duration_seconds";
    metric_head(out, name, "histogram",
                "Requests from their first byte received to the last byte of the reply "
                "sent, by model and generation.");
    char labels[512], model[160], line[768];
    for (unsigned i = 0; i < MAX_GENERATIONS; i++) {
        const struct generation *g = m->gens[i];
        if (!g || !g->latency || !g->cfg->latency_histogram)
            continue;
        for (unsigned j = 0; j < g->nslots; j++) {
            const char *slot = slot_model(g, j);
            unsigned first = 0;
            while (strcmp(slot_model(g, first), slot) != 0)
                first++;
            if (first < j)
                continue; /* this model's workers were summed at `first` */
            struct lat_hist sum = {0};
            for (unsigned k = j; k < g->nslots; k++)
                if (strcmp(slot_model(g, k), slot) == 0)
                    lat_add(&sum, &g->latency[k]);
            label_escape(model, sizeof(model), slot);
            uint64_t cumulative = 0;
            for (unsigned b = 0; b < LAT_BUCKETS; b++) {
                cumulative += sum.bucket[b];
                snprintf(labels, sizeof(labels), "model=\"%s\",generation=\"%u\",le=\"%s\"",
                         model, g->id, lat_le[b]);
                metric_line(out, "ioserve_request_duration_seconds_bucket", labels, cumulative);
            }
            snprintf(labels, sizeof(labels), "model=\"%s\",generation=\"%u\"", model, g->id);
            int n = snprintf(line, sizeof(line), "%s_sum{%s} %llu.%09llu\n", name, labels,
                             (unsigned long long)(sum.sum_ns / 1000000000u),
                             (unsigned long long)(sum.sum_ns % 1000000000u));
            ios_buf_append(out, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
            metric_line(out, "ioserve_request_duration_seconds_count", labels, cumulative);
        }
    }
}

static const char *const gen_state_names[] = {"starting", "active", "draining", "failed"};

void metrics_render(void *ctx, struct ios_buf *out)
{
    const struct master *m = ctx;
    char labels[512], model[160];

    /* Per model and generation; ended generations under generation="ended". */
    for (size_t k = 0; k < sizeof(counter_metrics) / sizeof(counter_metrics[0]); k++) {
        const struct counter_metric *cm = &counter_metrics[k];
        metric_head(out, cm->name, "counter", cm->help);
        for (unsigned i = 0; i < MAX_MODEL_TOTALS && m->stats.retired[i].model[0]; i++) {
            label_escape(model, sizeof(model), m->stats.retired[i].model);
            snprintf(labels, sizeof(labels), "model=\"%s\",generation=\"ended\"", model);
            metric_line(out, cm->name, labels, counter_at(&m->stats.retired[i].c, cm->offset));
        }
        worker_samples(out, m, cm->name, cm->offset);
    }
    /* Every sample of a family must follow its own TYPE line. */
    metric_head(out, "ioserve_connections_active", "gauge", "Connections open now.");
    worker_samples(out, m, "ioserve_connections_active", offsetof(struct ios_counters, active));
    latency_histograms(out, m);
    metric_head(out, "ioserve_workers", "gauge", "Worker processes running, by generation.");
    for (unsigned i = 0; i < MAX_GENERATIONS; i++) {
        const struct generation *g = m->gens[i];
        if (!g)
            continue;
        snprintf(labels, sizeof(labels), "generation=\"%u\",state=\"%s\"", g->id,
                 gen_state_names[g->state]);
        metric_line(out, "ioserve_workers", labels, gen_live_workers(g));
    }
    hand_over(out, m);
    canary_share(out, m);
    metric_head(out, "ioserve_reloads_total", "counter", "Reloads requested (SIGHUP).");
    metric_line(out, "ioserve_reloads_total", "", m->stats.reloads);
    metric_head(out, "ioserve_reloads_failed_total", "counter",
                "Reloads refused: bad config, or the new generation did not start.");
    metric_line(out, "ioserve_reloads_failed_total", "", m->stats.reloads_failed);
    metric_head(out, "ioserve_upgrades_total", "counter",
                "Binary upgrades (-s upgrade, SIGUSR2): this master's, to a new one that "
                "served (succeeded: counted by both masters) or failed.");
    metric_line(out, "ioserve_upgrades_total", "result=\"succeeded\"", m->up.succeeded);
    metric_line(out, "ioserve_upgrades_total", "result=\"failed\"", m->up.failed);
    metric_head(out, "ioserve_worker_restarts_total", "counter",
                "Workers respawned after dying unexpectedly.");
    metric_line(out, "ioserve_worker_restarts_total", "", m->stats.worker_restarts);
    metric_head(out, "ioserve_model_fallbacks_total", "counter",
                "Models of a model list skipped for the next one, by reason.");
    for (unsigned i = 0; i < MAX_FALLBACKS && m->stats.fallbacks[i].model[0]; i++) {
        char reason[400];
        label_escape(model, sizeof(model), m->stats.fallbacks[i].model);
        label_escape(reason, sizeof(reason), m->stats.fallbacks[i].reason);
        snprintf(labels, sizeof(labels), "model=\"%s\",reason=\"%.300s\"", model, reason);
        metric_line(out, "ioserve_model_fallbacks_total", labels, m->stats.fallbacks[i].count);
    }
}
